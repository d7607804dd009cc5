"""Frames per second of spotfit.distributed.localize on a local Dask cluster, against plain localize.

    python bench/bench_dask.py [--frames 2048] [--files 2] [--chunks 256] [--repeat 3] [--keep DIR]

Simulates a movie (256x256, ~15 spots/frame, 500-5000 photons, 20 photons/px background), writes it as
``--files`` ImageJ TIFFs, then times, on the same files:
  * plain ``spotfit.localize(spotfit.io.read_movie(paths))`` with all cores (OpenMP), reading included,
  * ``spotfit.distributed.localize(paths, chunks=...)`` + ``.compute()`` on a LocalCluster of 1 and of
    2 worker processes (1 Dask thread each; OpenMP threads per task = cores // workers),
  * the same with ``to_parquet`` (each worker writes its partitions).
The cluster is started and warmed up (one small run) before timing; cluster start-up is reported
apart. Overhead = time / plain time - 1, from the best of ``--repeat`` interleaved runs.
"""
import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import spotfit
import spotfit.distributed as sd
from spotfit._shared.threads import usable_cores
import spotfit.io


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=2048)
    p.add_argument("--files", type=int, default=2)
    p.add_argument("--chunks", type=int, default=256)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--keep", help="directory for the movie files (kept); default a temporary one")
    a = p.parse_args(argv)
    import distributed
    import tifffile

    cam = spotfit.Camera(baseline=100, sensitivity=0.5)
    work = Path(a.keep or tempfile.mkdtemp(prefix="spotfit-bench-dask-"))
    work.mkdir(parents=True, exist_ok=True)
    paths = [work / f"movie_{i}.tif" for i in range(a.files)]
    if not all(q.exists() for q in paths):
        movie, _ = spotfit.simulate(frames=a.frames, shape=(256, 256), density=15, camera=cam, seed=0)
        per = -(-a.frames // a.files)
        for i, q in enumerate(paths):
            tifffile.imwrite(q, movie[i * per:(i + 1) * per], imagej=True)
        del movie
    paths = [str(q) for q in paths]
    n = spotfit.io.movie_info(paths).n_frames
    cores = usable_cores()
    print(f"movie: {n} frames 256x256 in {a.files} TIFF files; {cores} cores; chunks {a.chunks} frames; "
          f"median of {a.repeat}")

    def plain():  # spotfit.localize takes one path; a list of files is read with spotfit.io
        return spotfit.localize(spotfit.io.read_movie(paths), camera=cam, chunk_frames=a.chunks)

    def timed(fn):
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    ref = plain()
    print(f"{len(ref)} spots; times are the best of {a.repeat} runs, plain and Dask runs interleaved "
          "(robust to other load on the machine)")
    for w in a.workers:
        t0 = time.perf_counter()
        with distributed.LocalCluster(n_workers=w, threads_per_worker=1, processes=True,
                                      dashboard_address=":0") as cluster, distributed.Client(cluster):
            t_start = time.perf_counter() - t0
            got = sd.localize(paths, camera=cam, chunks=a.chunks).compute().reset_index(drop=True)  # warm-up
            if not got.equals(ref):
                print("WARNING: the Dask result differs from plain localize")
            out = work / "bench.parquet"

            def write():
                shutil.rmtree(out, ignore_errors=True)
                sd.to_parquet(sd.localize(paths, camera=cam, chunks=a.chunks), out)
            tp, td, tq = [], [], []
            for _ in range(a.repeat):
                tp.append(timed(plain))
                td.append(timed(lambda: sd.localize(paths, camera=cam, chunks=a.chunks).compute()))
                tq.append(timed(write))
            shutil.rmtree(out, ignore_errors=True)
        t_plain, t, t_pq = min(tp), min(td), min(tq)
        print(f"plain read_movie + localize, {cores} OpenMP threads:      {n / t_plain:6.0f} frames/s")
        print(f"dask {w} worker(s) x {max(1, cores // w)} OpenMP thread(s), compute():   {n / t:6.0f} frames/s  "
              f"overhead {100 * (t / t_plain - 1):+5.1f}%   (cluster start {t_start:.1f} s)")
        print(f"dask {w} worker(s), to_parquet by the workers:     {n / t_pq:6.0f} frames/s  "
              f"overhead {100 * (t_pq / t_plain - 1):+5.1f}%")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    main()
