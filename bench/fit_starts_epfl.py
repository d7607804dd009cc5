"""fit_starts (every frame's starts fitted jointly) on EPFL 2013 Bundled Tubes HD, with the TRUE positions plus
N(0, noise) px as the starts: the refinement step's speed and accuracy, apart from any detector.

    python bench/fit_starts_epfl.py [--frames N] [--noise 0.3] [--repeats 3] [--prior-sigma 0.2] [--max-shift 2]
                                    [--max-iterations 40] [--tolerance 1e-4] [--window 3] [--cg-iterations 15]
                                    [--warmup 5]

One thread. Camera and psf_sigma as bench/epfl_hd.py; the StartsOptions defaults unless given (--prior-sigma 0:
a plain fit). Scored (epfl_hd.score) on the rows of converged frames and on all rows (converged and
max_iterations: the frame's status). Speed: rows per second of
fit_starts, median of the repeats, in wall time and in process CPU time (the per-core figure on a
shared machine, where the wall time also counts waiting for a CPU).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import epfl_hd  # noqa: E402


def starts(truth, rows: int, cols: int, noise: float, seed: int = 0):
    """(frame, x, y) of the truths plus Gaussian noise, kept inside the frame."""
    rng = np.random.default_rng(seed)
    x = truth.x.to_numpy() + rng.normal(0, noise, len(truth))
    y = truth.y.to_numpy() + rng.normal(0, noise, len(truth))
    x = np.clip(x, -0.5, np.nextafter(np.float32(cols - 0.5), np.float32(0)))
    y = np.clip(y, -0.5, np.nextafter(np.float32(rows - 0.5), np.float32(0)))
    return truth.frame.to_numpy(np.int64), x.astype(np.float32), y.astype(np.float32)


def main(argv=None) -> int:
    import pandas as pd
    import spotfit
    from spotfit import _spotcore
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--noise", type=float, default=0.3)
    ap.add_argument("--repeats", type=int, default=3)
    defaults = _spotcore.StartsOptions()
    fields = ("prior_sigma", "max_shift", "max_iterations", "tolerance", "window", "cg_iterations", "warmup")
    for f in fields:
        v = getattr(defaults, f)
        ap.add_argument("--" + f.replace("_", "-"), type=type(v), default=v)
    a = ap.parse_args(argv)
    movie, truth = epfl_hd.load(a.frames)
    truth = truth.sort_values("frame", kind="stable").reset_index(drop=True)
    frame, x, y = starts(truth, movie.shape[1], movie.shape[2], a.noise)
    o = _spotcore.LocalizeOptions()
    o.fit.psf_sigma = epfl_hd.PSF_SIGMA
    o.fit.threads = 1
    so = _spotcore.StartsOptions()
    for f in fields:
        setattr(so, f, getattr(a, f))
    camera = spotfit.Camera(**epfl_hd.CAMERA)
    times, cpu = [], []
    for _ in range(a.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        rec, group, n_in_group = _spotcore.fit_starts(movie, camera, o, frame, x, y, so, 0)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    good = rec[rec["status"] == int(_spotcore.FitStatus.converged)]
    sec = float(np.median(times))
    settings = " ".join(f"{f}={getattr(a, f)}" for f in fields)
    print(f"fit_starts {settings} noise={a.noise}: {len(movie)} frames, {len(truth)} starts, "
          f"{len(rec)} rows, {len(good)} converged; {sec:.2f} s (median of {a.repeats}: "
          f"{', '.join(f'{t:.2f}' for t in times)}), {len(good) / sec:.0f} converged locs/s, "
          f"{len(rec) / sec:.0f} rows/s (1 thread); CPU time {np.median(cpu):.2f} s (median; wall time on a loaded "
          f"machine waits for the CPU): {len(good) / np.median(cpu):.0f} converged locs/s per core")
    for label, r in (("rows of converged frames", good), ("all rows", rec)):
        s = epfl_hd.score(truth, pd.DataFrame({"frame": r["frame"], "x": r["x"], "y": r["y"]}))
        print(f"  {label}: J250 {s['j250']:.3f} J100 {s['j100']:.3f} RMSE {s['rmse_nm']:.1f} nm E {s['efficiency']:.1f} "
              f"recall {s['recall']:.3f} precision {s['precision']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
