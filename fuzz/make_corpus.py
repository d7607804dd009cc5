"""Write the small seed corpus of the fuzz targets (committed under fuzz/corpus/; rerun to refresh).

TIFF seeds: plain, ImageJ, OME, BigTIFF, big-endian, compressed, multi-series and odd shapes, each a few
frames of a few pixels with a spot (so that localize has work), all < 8 KiB.
Fit seeds: header bytes (box, n, model/estimator, psf_sigma flags) + pixel bytes.
"""
import os
import struct

import numpy as np
import tifffile

HERE = os.path.dirname(os.path.abspath(__file__))


def movie(frames, rows, cols, dtype="u2", seed=0):
    rng = np.random.default_rng(seed)
    a = rng.poisson(110, (frames, rows, cols)).astype(float)
    a[:, rows // 2, cols // 2] += 900
    if rows > 2 and cols > 2:
        a[:, rows // 2 - 1:rows // 2 + 2, cols // 2 - 1:cols // 2 + 2] += 300
    return a.astype(dtype)


def tiffs(d):
    os.makedirs(d, exist_ok=True)
    w = lambda name, data, **kw: tifffile.imwrite(os.path.join(d, name), data, **kw)  # noqa: E731
    w("plain_u2.tif", movie(3, 12, 12))
    w("plain_u1.tif", movie(2, 9, 11, "u1"))
    w("plain_f4.tif", movie(2, 10, 10, "f4"))
    w("plain_i2.tif", movie(2, 8, 8, "i2"))
    w("bigendian_u2.tif", movie(2, 10, 10, ">u2"), byteorder=">")
    w("bigtiff_u2.tif", movie(2, 10, 10), bigtiff=True)
    w("imagej_u2.tif", movie(4, 10, 10), imagej=True, metadata={"axes": "TYX"}, resolution=(10.0, 10.0))
    w("ome_u2.tif", movie(3, 10, 10), ome=True, metadata={"axes": "TYX", "PhysicalSizeX": 0.1})
    w("zlib_u2.tif", movie(2, 10, 10), compression="zlib")
    w("tiled_u2.tif", movie(1, 32, 32), tile=(16, 16))
    w("one_pixel.tif", movie(1, 1, 1))
    w("one_row.tif", movie(2, 1, 40))
    w("rgb.tif", np.zeros((6, 6, 3), np.uint8), photometric="rgb")
    with tifffile.TiffWriter(os.path.join(d, "two_series.tif")) as tw:
        tw.write(movie(1, 8, 8))
        tw.write(movie(1, 6, 6, "f4"))
    with open(os.path.join(d, "truncated_u2.tif"), "wb") as f:
        full = open(os.path.join(d, "plain_u2.tif"), "rb").read()
        f.write(full[:len(full) * 2 // 3])


def fits(d):
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(1)
    for i, (box_i, n, mode, flags) in enumerate([(2, 3, 0, 0), (2, 5, 1, 2), (0, 2, 2, 4), (6, 1, 3, 1),
                                                 (1, 9, 4, 3), (4, 16, 5, 6)]):
        sigma = struct.pack("<f", [1.3, 0.0, float("nan"), 1e-30, 7.0, -1.0][i])
        head = bytes([box_i, n, mode, flags]) + sigma
        k = [3, 5, 7, 9, 11, 15, 31][box_i]
        img = rng.poisson(20, (k, k)).astype(np.float32)
        img[k // 2, k // 2] += 500
        pix = img.tobytes() if flags & 2 else (np.clip(img / 16, 0, 255).astype(np.uint8).tobytes())
        with open(os.path.join(d, f"seed{i}.bin"), "wb") as f:
            f.write(head + pix)


if __name__ == "__main__":
    tiffs(os.path.join(HERE, "corpus", "tiff"))
    fits(os.path.join(HERE, "corpus", "fit"))
    for sub in ("tiff", "fit"):
        p = os.path.join(HERE, "corpus", sub)
        print(sub, sorted((f, os.path.getsize(os.path.join(p, f))) for f in os.listdir(p)))
