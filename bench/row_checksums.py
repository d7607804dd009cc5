"""SHA-256 of the rows `localize` returns on the default simulated movie, per pipeline.

A structural change to the Python layer must leave these unchanged (bit-identical rows). Run before and
after the change on the same machine and compare: ``python bench/row_checksums.py``.
"""
from __future__ import annotations

import hashlib
import sys

import numpy as np

import spotfit


def digest(locs) -> str:
    h = hashlib.sha256()
    for name in locs.columns:
        col = locs[name]
        data = col.cat.codes.to_numpy() if hasattr(col, "cat") else col.to_numpy()
        h.update(name.encode())
        h.update(np.ascontiguousarray(data).tobytes())
    return h.hexdigest()[:16]


def main() -> int:
    camera = spotfit.Camera(baseline=100, sensitivity=0.5)
    movie, _ = spotfit.simulate(camera=camera, seed=1)        # the default movie: 100 frames of 256x256
    rows = {
        "mle": spotfit.localize(movie, camera=camera),
        "lsq": spotfit.localize(movie, camera=camera, estimator="lsq"),
        "elliptical": spotfit.localize(movie, camera=camera, model="elliptical"),
    }
    rng = np.random.default_rng(3)
    shape = movie.shape[1:]
    scmos = spotfit.Camera(offset_map=rng.uniform(95, 105, shape), gain_map=rng.uniform(1.8, 2.2, shape),
                           variance_map=rng.uniform(1, 9, shape))
    rows["scmos"] = spotfit.localize(movie, camera=scmos)
    from spotfit.ml import SpotClassifier, simulate_quality_set
    qs = simulate_quality_set(1500, seed=0)
    clf = SpotClassifier().fit(qs.patches, qs.locs["kind"].to_numpy() == "good")
    rows["classified"] = spotfit.localize(movie, camera=camera, classifier=clf)
    rows["drop_bad"] = spotfit.localize(movie, camera=camera, classifier=clf, drop_bad=True)
    rows["ridge"] = spotfit.localize(movie, camera=camera, estimator="ridge")   # detection may change (issue: one detection)
    for name, locs in rows.items():
        print(f"{name:12s} {len(locs):6d} rows  {digest(locs)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
