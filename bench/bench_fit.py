"""Fits per second of the C++ Levenberg–Marquardt fitter (7x7 boxes by default).

    python bench/bench_fit.py [--n 200000] [--box 7] [--repeat 5]

Prints the median over repeats for LSQ and MLE, 1 and 2 threads, and the mean iterations.
"""
import argparse
import time

import numpy as np

import spotfit
from spotfit.simulate import integrated_gaussian


def make_boxes(n, box, psf_sigma=1.3, background=20.0, seed=0):
    rng = np.random.default_rng(seed)
    c = (box - 1) / 2
    x = c + rng.uniform(-0.5, 0.5, n)
    y = c + rng.uniform(-0.5, 0.5, n)
    photons = rng.uniform(500, 5000, n)
    ex = integrated_gaussian(x, psf_sigma, box)
    ey = integrated_gaussian(y, psf_sigma, box)
    mu = background + photons[:, None, None] * ey[:, :, None] * ex[:, None, :]
    return rng.poisson(mu).astype(np.float32), x, y


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--box", type=int, default=7)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--model", default="gauss")
    a = p.parse_args(argv)
    boxes, _, _ = make_boxes(a.n, a.box)
    print(f"fit_spots: {a.n} boxes {a.box}x{a.box}, model {a.model}, median of {a.repeat}")
    for est in ("lsq", "mle"):
        for threads in (1, 2):
            spotfit.fit_spots(boxes[:1000], estimator=est, model=a.model, threads=threads)
            times = []
            for _ in range(a.repeat):
                t = time.perf_counter()
                res = spotfit.fit_spots(boxes, estimator=est, model=a.model, threads=threads)
                times.append(time.perf_counter() - t)
            dt = float(np.median(times))
            print(f"  {est:>3}  threads={threads}  {a.n / dt:>12,.0f} fits/s   "
                  f"iterations {res.iterations.mean():.2f}  converged {np.mean(res.status == 'converged'):.4f}")


if __name__ == "__main__":
    main()
