"""Cython kernels vs vectorized numpy, ratios measured in one run (issue 11).

    python bench/bench_kernels.py [--n 1000000] [--size 2560] [--patches 200000] [--repeat 3]

Render: n localizations into a size x size image: histogram vs numpy.histogram2d (identical counts),
Gaussian splatting with per-localization widths vs numpy np.add.at over patches (<= 1e-5 relative).
Patches: extraction (9x9, edge-replicated, camera conversion) + normalization of `--patches` patches vs
numpy fancy indexing + regress.normalize's numpy formulas (identical extraction output).
Best of `--repeat` wall times; threads: OpenMP default (OMP_NUM_THREADS).
"""
import argparse
import math
import os
import sys
import time

import numpy as np
from scipy.special import erf

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from test_cython import cut_ref, normalize_ref  # noqa: E402  (the references the tests check against)

from spotfit import _kernels, regress  # noqa: E402
from spotfit.camera import Camera  # noqa: E402


def best(fn, repeat):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def gaussian_add_at(u, v, s, height, width, block=200_000):
    """np.add.at over each localization's (2r+1)^2 window, grouped by radius."""
    img = np.zeros((height, width), np.float64)
    radius = np.ceil(3.0 * s).astype(np.int64)
    for r in np.unique(radius):
        sel = np.flatnonzero(radius == r)
        k = 2 * int(r) + 1
        for a in range(0, len(sel), block):
            b = sel[a:a + block]

            def weights(c):
                first = np.floor(c).astype(np.int64) - r
                edges = first[:, None] + np.arange(k + 1)
                w = 0.5 * np.diff(erf((edges - c[:, None]) / (math.sqrt(2.0) * s[b][:, None])), axis=1)
                return first, w / w.sum(axis=1, keepdims=True)

            x0, wx = weights(u[b])
            y0, wy = weights(v[b])
            rows = (y0[:, None] + np.arange(k))[:, :, None]
            cols = (x0[:, None] + np.arange(k))[:, None, :]
            w = wy[:, :, None] * wx[:, None, :]
            inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
            rr, cc = np.broadcast_to(rows, w.shape)[inside], np.broadcast_to(cols, w.shape)[inside]
            np.add.at(img, (rr, cc), w[inside])
    return img.astype(np.float32)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--size", type=int, default=2560)
    ap.add_argument("--patches", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    n, hw = a.n, a.size
    # 256x256-pixel camera frames at zoom 10; uncertainties 5-25 nm of 100-nm pixels -> 0.5-2.5 rendered px.
    u, v = rng.uniform(0, hw, n), rng.uniform(0, hw, n)
    s = rng.uniform(0.5, 2.5, n)
    print(f"threads: {os.environ.get('OMP_NUM_THREADS', os.cpu_count())}")

    t_np, h_np = best(lambda: np.histogram2d(v, u, bins=(hw, hw), range=((0, hw), (0, hw)))[0], a.repeat)
    t_cy, h_cy = best(lambda: _kernels.histogram(u, v, hw, hw), a.repeat)
    print(f"histogram   {n} locs -> {hw}x{hw}: numpy.histogram2d {t_np:.3f} s, Cython {t_cy:.4f} s, "
          f"x{t_np / t_cy:.1f}, identical: {np.array_equal(h_np, h_cy)}")

    t_np, g_np = best(lambda: gaussian_add_at(u, v, s, hw, hw), 1)
    t_cy, g_cy = best(lambda: _kernels.gaussian(u, v, s, hw, hw), a.repeat)
    rel = float(np.max(np.abs(g_cy - g_np)) / np.max(np.abs(g_np)))
    print(f"gaussian    {n} locs, sigma 0.5-2.5 px: numpy np.add.at {t_np:.2f} s, Cython {t_cy:.3f} s, "
          f"x{t_np / t_cy:.1f}, max rel diff {rel:.1e}")

    m = a.patches
    movie = rng.integers(90, 4000, (200, 256, 256)).astype(np.uint16)
    # sorted by frame, as extract_patches processes them (and localize emits them)
    f, r, c = np.sort(rng.integers(0, 200, m)), rng.integers(0, 256, m), rng.integers(0, 256, m)
    cam = Camera(baseline=100, sensitivity=0.5)
    kern = regress._kernel(9, 1.3)
    ring = regress._ring(9).ravel().view(np.uint8)

    def numpy_path():
        p, _ = cut_ref(movie, f, r, c, 9, cam)
        return p, normalize_ref(p.reshape(m, -1), kern, 3.0, False)

    def cython_path():
        p, _ = _kernels.cut_patches(movie, f, r, c, 9, np.float32(0.5), np.float32(-50.0))
        return p, _kernels.normalize(p.reshape(m, -1), kern, ring, 3.0, False)

    t_np, (p_np, (q_np, _)) = best(numpy_path, a.repeat)
    t_cy, (p_cy, (q_cy, _)) = best(cython_path, a.repeat)
    rel = float(np.max(np.abs(q_cy - q_np)))
    print(f"patches     {m} 9x9 extract+normalize: numpy {t_np:.3f} s, Cython {t_cy:.4f} s, x{t_np / t_cy:.1f}, "
          f"patches identical: {np.array_equal(p_np, p_cy)}, max |dq| {rel:.1e}")


if __name__ == "__main__":
    main()
