"""Screening speed and accuracy of the spot quality classifier (spotfit.ml.SpotClassifier).

    python bench/bench_classify.py [--patches 262144] [--sites 8000] [--repeat 3]

Simulates a labelled set (``simulate_quality_set(--sites, seed=1)``: good spots, close pairs,
defocused and dim spots, hot pixels), trains each model kind on the rule labels of half of it
(svm-poly on 1200 spots) and scores the other half against the simulation's truth (accuracy, ROC
AUC). Then times ``predict_proba`` and ``predict`` on ``--patches`` 9x9 patches (the held-out spots
resampled with random flips/transposes), best of ``--repeat``, with 1 thread and with all cores,
next to scikit-learn's own ``pipeline.predict_proba`` on the same patches and to the former
default (hgb on ``features="moments"`` through the pipeline). Last, the cost of
``spotfit.localize(..., classifier=clf)`` over a plain ``localize`` of the simulated movie, and with
``drop_bad=True``, which screens the detections before the fit and fits only the good ones.
"""
import argparse
import os
import time

import numpy as np
from threadpoolctl import threadpool_limits

import spotfit
from spotfit.ml import SpotClassifier, label_spots, quality_report, simulate_quality_set


def best(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def resample(patches, n, seed=0):
    rng = np.random.default_rng(seed)
    p = patches[rng.integers(0, len(patches), n)]
    k = rng.integers(0, 8, n)  # the 8 symmetries of the square: spots stay spots, rows differ in memory
    p[k & 1 == 1] = p[k & 1 == 1, :, ::-1]
    p[k & 2 == 2] = p[k & 2 == 2, ::-1, :]
    p[k & 4 == 4] = p[k & 4 == 4].transpose(0, 2, 1)
    return np.ascontiguousarray(p, dtype=np.float32)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patches", type=int, default=262144)
    ap.add_argument("--sites", type=int, default=8000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cores = os.cpu_count()
    q = simulate_quality_set(args.sites, seed=1)
    good = label_spots(q.locs)[0].to_numpy()
    truth = q.locs["truth"].to_numpy()
    n = len(good)
    idx = np.random.default_rng(0).permutation(n)
    train, test = idx[: n // 2], idx[n // 2:]
    big = resample(q.patches[test], args.patches)
    flat = big.reshape(len(big), -1)
    print(f"{n} localizations ({good.mean():.1%} good by the rules, rules vs truth {np.mean(good == truth):.3f}); "
          f"timing on {len(big)} {big.shape[1]}x{big.shape[2]} patches, best of {args.repeat}, {cores} cores\n")
    print(f"{'model':<18}{'features':<9}{'acc':>7}{'AUC':>8}{'fit s':>7} | patches/s: "
          f"{'proba 1 thr':>12}{'proba all':>11}{'predict all':>12}{'sklearn all':>12}")
    clfs = {}
    former = dict(max_iter=100, max_depth=None, learning_rate=0.1)  # scikit-learn's defaults, used until now
    rows = [("hgb", "shape", {}), ("logistic", "shape", {}), ("svm-poly", "shape", {}), ("hgb", "moments", former)]
    for model, features, params in rows:
        clf = SpotClassifier(model, features=features, **params)  # imports the model: threadpool_limits sees its OpenMP
        with threadpool_limits(1):  # small fits: threads only spin (see tests/test_classify.py)
            t = time.perf_counter()
            trn = train[:1200] if model == "svm-poly" else train
            clf.fit(q.patches[trn], good[trn])
            fit_s = time.perf_counter() - t
        rep = quality_report(truth[test], clf.predict_proba(q.patches[test]))
        with threadpool_limits(1):
            one = best(lambda: clf.predict_proba(big), args.repeat)
        allc = best(lambda: clf.predict_proba(big), args.repeat)
        pred = best(lambda: clf.predict(big), args.repeat)
        sk = best(lambda: clf.pipeline.predict_proba(flat), args.repeat)
        clfs[(model, features)] = clf
        name = model + (" (former)" if params else "")
        print(f"{name:<18}{features:<9}{rep['accuracy']:7.4f}{rep['roc_auc']:8.4f}{fit_s:7.2f} | {'':11}"
              f"{len(big) / one:12.0f}{len(big) / allc:11.0f}{len(big) / pred:12.0f}{len(big) / sk:12.0f}")
    print("\n(sklearn all = clf.pipeline.predict_proba on the whole array: the former predict_proba; hgb (former) = "
          "the former default model: 100 trees of <= 31 leaves on the 89 'moments' features)")

    # localize with and without the classifier (the default hgb/shape), on the simulated movie
    clf = clfs[("hgb", "shape")]
    kw = dict(camera=q.camera, psf_sigma=1.3, model="elliptical", threshold=6.0, threshold_mode="absolute")
    plain = best(lambda: spotfit.localize(q.movie, **kw), args.repeat)
    both = best(lambda: spotfit.localize(q.movie, classifier=clf, **kw), args.repeat)
    locs = spotfit.localize(q.movie, classifier=clf, **kw)
    g = locs["good"].to_numpy()
    dropped = best(lambda: spotfit.localize(q.movie, classifier=clf, drop_bad=True, **kw), args.repeat)
    plain1 = best(lambda: spotfit.localize(q.movie, threads=1, **kw), args.repeat)
    both1 = best(lambda: spotfit.localize(q.movie, classifier=clf, threads=1, **kw), args.repeat)
    dropped1 = best(lambda: spotfit.localize(q.movie, classifier=clf, drop_bad=True, threads=1, **kw), args.repeat)
    ms = 1e3
    print(f"\nlocalize {q.movie.shape} ({len(locs)} spots, {g.mean():.1%} good), best of {args.repeat}:")
    for label, t0, t1, t2 in (("all cores", plain, both, dropped), ("1 thread", plain1, both1, dropped1)):
        print(f"  {label:<9}: plain {t0 * ms:5.0f} ms | classifier= (fit all, then classify) {t1 * ms:5.0f} ms "
              f"({t1 / t0 - 1:+.0%}) | classifier=, drop_bad=True (screen, fit the good) {t2 * ms:5.0f} ms "
              f"({t2 / t0 - 1:+.0%})")


if __name__ == "__main__":
    main()
