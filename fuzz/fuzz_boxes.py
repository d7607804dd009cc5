"""Fuzz target: arbitrary centres, sizes, borders and cameras -> spotfit.cut_boxes (the core's one box cutter).

The bytes choose the stack (shape, pixel type, values), the camera (scalar or sCMOS maps), the centres (in
range or not, repeated, unsorted), the box size, the border rule, neighbour masking and the thread count.
Contract: invalid input raises ValueError/TypeError; valid input gives (n, s, s) boxes whose `inside` mask
is exactly the in-image, unmasked pixels; without a mask and with the edge rule each pixel is the clamped
pixel of Camera.to_photons; the result does not depend on the order of the centres or the threads.
Seeds: fuzz/corpus/boxes.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import instrumented, main  # noqa: E402

with instrumented("spotfit"):
    import spotfit  # noqa: E402

import numpy as np  # noqa: E402

DTYPES = [np.uint8, np.uint16, np.int16, np.uint32, np.int32, np.float32, np.float64]


def test_one_input(data: bytes):
    if len(data) < 8:
        return
    b = [int(v) for v in data[:8]]
    frames, rows, cols = 1 + b[0] % 4, 1 + b[1] % 24, 1 + b[2] % 24
    dtype = DTYPES[b[3] % len(DTYPES)]
    size = b[4] % 12 - 1                    # -1..10: even, zero and negative sizes included
    border = ["nan", "edge", "zero"][b[5] % 3]
    mask = bool(b[6] & 1)
    threads = 1 + (b[6] >> 1) % 3
    body = np.frombuffer(data[8:] + bytes(8), np.uint8)
    pixels = np.resize(body, frames * rows * cols).reshape(frames, rows, cols).astype(dtype) + dtype(100)
    camera = spotfit.Camera(baseline=100, sensitivity=0.5)
    if b[7] & 1:
        camera = spotfit.Camera(offset_map=np.resize(body, (rows, cols)).astype(np.float32) * 0.1 + 95,
                                gain_map=np.full((rows, cols), 2.0), variance_map=np.full((rows, cols), 3.0))
    n = (b[7] >> 1) % 9
    cen = np.resize(body[::-1], 3 * n).astype(np.int64).reshape(3, n) if n else np.zeros((3, 0), np.int64)
    f, r, c = cen[0] % (frames + 1), cen[1] % (rows + 1) - (cen[1] % 5 == 0), cen[2] % (cols + 1)
    valid = (size >= 1 and size % 2 == 1 and border != "zero" and (f < frames).all() and (r >= 0).all()
             and (r < rows).all() and (c < cols).all())
    try:
        boxes, var, inside = spotfit.cut_boxes(pixels, f, r, c, size, camera=camera, border=border,
                                               mask_neighbours=mask, threads=threads)
    except (ValueError, TypeError):
        assert not valid, "a valid request was refused"
        return
    assert valid, "an invalid request was accepted"
    assert boxes.shape == inside.shape == (n, size, size) and (var is None) == (not camera.is_scmos)
    h = size // 2
    off = np.arange(size) - h
    rr, cc = r[:, None] + off, c[:, None] + off
    in_image = ((rr >= 0) & (rr < rows))[:, :, None] & ((cc >= 0) & (cc < cols))[:, None, :]
    assert not (inside & ~in_image).any()
    if not mask:
        assert np.array_equal(inside, in_image)
        if border == "edge":
            ph = camera.to_photons(pixels)
            ref = ph[f[:, None, None], np.clip(rr, 0, rows - 1)[:, :, None], np.clip(cc, 0, cols - 1)[:, None, :]]
            assert np.array_equal(boxes, ref, equal_nan=True)
    if n > 1:
        perm = np.arange(n)[::-1]
        again, _, inside2 = spotfit.cut_boxes(pixels, f[perm], r[perm], c[perm], size, camera=camera, border=border,
                                              mask_neighbours=mask, threads=1)
        assert np.array_equal(again, boxes[perm], equal_nan=True) and np.array_equal(inside2, inside[perm])


if __name__ == "__main__":
    main(test_one_input)
