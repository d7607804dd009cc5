"""Throughput of the learned centroid estimators and latency of Localizer.process.

    python bench/bench_realtime.py [--cnn]

Prints patches/s for ridge, tf-linear (packaged weights, numpy inference), the LM MLE fit
(spotfit.fit_spots) and, with --cnn, a tf-cnn trained here (30k patches, 8 epochs); held-out RMSE of
each against ground truth and the Cramér–Rao bound (9x9, sigma 1.3; 500-5000 photons on 20 photons/px
and 200-1000 photons on 50 photons/px; patches/s on the first);
and the median latency of Localizer.process on 256x256 frames with ~15 spots (ridge).
"""
import argparse
import time

import numpy as np

import spotfit
from spotfit.ml import Localizer
from spotfit.ml import CentroidRegressor, training_set


def rate(fn, x, repeat=5):
    fn(x[:1000])
    best = min(_timed(fn, x) for _ in range(repeat))
    return len(x) / best


def _timed(fn, x):
    t = time.perf_counter()
    fn(x)
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cnn", action="store_true", help="also train and time a tf-cnn (needs TensorFlow)")
    ap.add_argument("--frames", type=int, default=500)
    args = ap.parse_args()
    models = {"ridge": CentroidRegressor.pretrained("ridge"), "tf-linear": CentroidRegressor.pretrained("tf-linear")}
    if args.cnn:
        pc, tc = training_set(30000, psf_sigma=1.3, photons=(150, 6000), background=(5, 80), log_photons=True, seed=11)
        models["tf-cnn"] = CentroidRegressor("tf-cnn", epochs=8, seed=0).fit(pc, tc)
    # The condition (bright) and the dim one; patches/s measured on the bright set.
    for label, photons, bg, seed in (("500-5000 photons, 20 photons/px", (500, 5000), 20.0, 1),
                                     ("200-1000 photons, 50 photons/px", (200, 1000), 50.0, 2)):
        p, t = training_set(50000, psf_sigma=1.3, photons=photons, background=bg, seed=seed)
        truth = t[["x", "y"]].to_numpy()
        bound = np.sqrt(np.mean(spotfit.crlb(t.photons.to_numpy()[:3000], bg, 1.3, box=9, model="fixed_sigma")["x"] ** 2))
        timed = seed == 1
        big = np.tile(p, (8, 1, 1))                                  # 400k patches
        print(f"\n{label}: CRLB (RMS over the set): {bound:.4f} px")
        print(f"{'estimator':<12} {'RMSE px':>8} {'/CRLB':>6} {'bias x':>8} {'bias y':>8} {'patches/s':>12}")
        for name, m in models.items():
            e = m.predict(p) - truth
            r = rate(m.predict, big if name != "tf-cnn" else big[:100000], repeat=3) if timed else float("nan")
            print(f"{name:<12} {np.sqrt(np.mean(e**2)):8.4f} {np.sqrt(np.mean(e**2))/bound:6.2f} {e[:, 0].mean():8.4f} "
                  f"{e[:, 1].mean():8.4f} {r:12,.0f}")
        fit = spotfit.fit_spots(p, psf_sigma=1.3)
        e = np.column_stack([fit.x - 4, fit.y - 4]) - truth
        r = rate(lambda x: spotfit.fit_spots(x, psf_sigma=1.3), p, repeat=2) if timed else float("nan")
        print(f"{'LM MLE fit':<12} {np.sqrt(np.mean(e**2)):8.4f} {np.sqrt(np.mean(e**2))/bound:6.2f} {e[:, 0].mean():8.4f} "
              f"{e[:, 1].mean():8.4f} {r:12,.0f}")
    print()

    cam = spotfit.Camera(baseline=100, sensitivity=1.0)
    movie, _ = spotfit.simulate(frames=args.frames, shape=(256, 256), density=15, seed=2, camera=cam)
    for est in ("ridge", "mle"):
        loc = Localizer(camera=cam, estimator=est)
        lat = []
        n = 0
        for f in movie:
            n += len(loc.process(f))
            lat.append(loc.last_latency)
        lat = np.array(lat[10:]) * 1e3
        print(f"Localizer.process 256x256 ({est}): median {np.median(lat):.3f} ms, 95th pct "
              f"{np.percentile(lat, 95):.3f} ms, {n / len(movie):.1f} spots/frame, {len(lat)} frames")


if __name__ == "__main__":
    main()
