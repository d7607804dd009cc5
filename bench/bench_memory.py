"""Peak memory of ``spotfit.localize(path, chunk_frames=C)`` for movies 1x and 4x the chunk size.

Writes a simulated movie to TIFF files of ``C`` and ``4C`` frames (and optionally ``16C``), then runs
``spotfit.localize`` on each in a fresh Python process and reads that process's peak resident set size
(``VmHWM`` of ``/proc/self/status``; ``ru_maxrss`` where there is no ``/proc``: on Linux a child's
``ru_maxrss`` starts at its parent's RSS at fork, which would hide the child's own figure). Movies stream through in chunks, so the peak must not
grow with the movie's length: ``peak(4C) - peak(C)`` should be a small fraction of the extra
``3C`` frames' size (the localization table grows, by ~150 bytes per spot).

Two TIFF layouts are measured: ``contiguous`` (plain uncompressed stack, read through a memory map) and
``pages`` (zlib-compressed pages, read page by page with tifffile).

    python bench/bench_memory.py                       # 64-frame chunks of 512x512 uint16 (32 MiB)
    python bench/bench_memory.py --chunk 32 --size 256 --ratios 1 4 16
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, sys, time

def peak_bytes():
    # VmHWM: peak RSS of this process's own address space. ru_maxrss is not used on Linux because the
    # kernel carries the parent's RSS at fork into the child's ru_maxrss across exec.
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)

import spotfit
path, chunk = sys.argv[1], int(sys.argv[2])
before = peak_bytes()
t = time.perf_counter()
locs = spotfit.localize(path, camera=spotfit.Camera(baseline=100, sensitivity=0.5), chunk_frames=chunk,
                        threads=1)
dt = time.perf_counter() - t
print(json.dumps({"import_peak": before, "peak": peak_bytes(), "n_locs": len(locs), "seconds": dt}))
"""


def measure(path: str, chunk: int) -> dict:
    """Run localize on `path` in a fresh interpreter; return its peak RSS figures (bytes)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", CHILD, path, str(chunk)], capture_output=True, text=True,
                         env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def write_movie(path: str, frames: int, size: int, chunk: int, layout: str, seed: int = 0) -> None:
    """A simulated movie written one chunk at a time (so this process never holds it all)."""
    import numpy as np
    import tifffile

    import spotfit
    cam = spotfit.Camera(baseline=100, sensitivity=0.5)
    block, _ = spotfit.simulate(frames=min(chunk, frames), shape=(size, size), density=8, camera=cam,
                                seed=seed)
    kwargs = {"compression": "zlib"} if layout == "pages" else {}

    def blocks():
        done = 0
        while done < frames:
            n = min(block.shape[0], frames - done)
            # Shift the same spots around so the chunks differ.
            yield np.roll(block[:n], done % size, axis=2)
            done += n

    def pages():
        for b in blocks():
            yield from b

    # One series written from an iterator of frames: tifffile never needs the whole movie in memory.
    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(pages(), shape=(frames, size, size), dtype=np.uint16, photometric="minisblack", **kwargs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--chunk", type=int, default=64, help="chunk_frames (default 64)")
    p.add_argument("--size", type=int, default=512, help="frame side, px (default 512)")
    p.add_argument("--ratios", type=int, nargs="+", default=[1, 4], help="movie lengths in chunks")
    p.add_argument("--layouts", nargs="+", default=["contiguous", "pages"], choices=["contiguous", "pages"])
    p.add_argument("--json", default=None, help="also write the figures here")
    args = p.parse_args(argv)
    mib = 2.0 ** 20
    chunk_mib = args.chunk * args.size * args.size * 2 / mib
    print(f"chunk_frames={args.chunk}, {args.size}x{args.size} uint16: one chunk = {chunk_mib:.1f} MiB")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for layout in args.layouts:
            base = None
            for r in args.ratios:
                path = os.path.join(tmp, f"{layout}_{r}.tif")
                write_movie(path, r * args.chunk, args.size, args.chunk, layout)
                m = measure(path, args.chunk)
                file_mib = os.path.getsize(path) / mib
                os.unlink(path)
                base = m["peak"] if base is None else base
                row = {"layout": layout, "chunks": r, "frames": r * args.chunk, "file_mib": file_mib,
                       "raw_mib": r * chunk_mib, "import_peak_mib": m["import_peak"] / mib,
                       "peak_mib": m["peak"] / mib, "growth_mib": (m["peak"] - base) / mib,
                       "n_locs": m["n_locs"], "seconds": m["seconds"]}
                rows.append(row)
                print(f"{layout:10s} {r:3d}x chunk ({row['frames']:5d} frames, {row['raw_mib']:6.1f} MiB raw, "
                      f"file {file_mib:6.1f} MiB): peak RSS {row['peak_mib']:7.1f} MiB "
                      f"(after imports {row['import_peak_mib']:6.1f}), growth over 1x "
                      f"{row['growth_mib']:+6.1f} MiB, {row['n_locs']} locs, {row['seconds']:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
