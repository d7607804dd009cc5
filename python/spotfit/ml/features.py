"""Features of spot images for the classifier: a scikit-learn transformer over flattened patches."""
from __future__ import annotations

from functools import lru_cache

import numpy as np


class PatchFeatures:
    """scikit-learn transformer: flattened patches (n, size*size) photons -> features (float32).

    All kinds but ``"raw"`` subtract the background ``b`` (median of the outer ring of pixels) and
    sum the signal ``s = patch - b`` over the disk of radius ``size//2 - 0.5`` px: total ``N``,
    centroid ``(mx, my)`` and second moments, all from one matrix product with fixed weights.

    - ``kind="shape"`` (default, 14 numbers): log N, log b, peak fraction s[centre]/N, mx, my,
      trace of the second-moment matrix (px², 2 sigma² for a Gaussian), anisotropy
      ``sqrt((vxx-vyy)² + 4 vxy²) / trace``, noise-to-signal ``sqrt(b) * size / sqrt(N)``, and the
      squares of the last six (so that a linear model can keep a band, e.g. sizes between those of
      hot pixels and of defocused spots).
    - ``kind="moments"`` (size² + 8): the patch normalized by N, plus the first eight numbers above.
    - ``kind="raw"``: the photons as they are.
    """

    KINDS = ("shape", "moments", "raw")

    def __init__(self, kind: str = "shape"):
        self.kind = kind

    def get_params(self, deep=True):
        return {"kind": self.kind}

    def set_params(self, **params):
        for k, v in params.items():
            if k != "kind":
                raise ValueError(f"PatchFeatures has no parameter {k!r}")
            self.kind = v
        return self

    def fit(self, X, y=None):
        if self.kind not in self.KINDS:
            raise ValueError(f"features must be one of {self.KINDS}, got {self.kind!r}")
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def fit_transform(self, X, y=None):
        return self.fit(X, y).transform(X)

    def transform(self, X):
        X = np.ascontiguousarray(X, dtype=np.float32)
        if self.kind == "raw":
            return X
        size = int(round(np.sqrt(X.shape[1])))
        base, bg, inv = _shape_numbers(X, size)
        if self.kind == "shape":
            return np.concatenate([base, np.square(base[:, 2:])], axis=1)
        s = X - bg[:, None]
        s *= inv[:, None]
        return np.concatenate([s, base], axis=1)


@lru_cache(maxsize=16)
def _geometry(size: int):
    """Disk weights (size², 6) for N, Σx, Σy, Σx², Σy², Σxy; ring indices; centre index."""
    h = size // 2
    yy, xx = np.mgrid[-h:h + 1, -h:h + 1].astype(np.float64)
    disk = (xx ** 2 + yy ** 2 <= (h - 0.5) ** 2).astype(np.float64)
    w = np.stack([disk, disk * xx, disk * yy, disk * xx * xx, disk * yy * yy, disk * xx * yy], axis=-1)
    edge = np.ones((size, size), bool)
    edge[1:-1, 1:-1] = False
    return w.reshape(size * size, 6).astype(np.float32), w.sum(axis=(0, 1)).astype(np.float32), \
        np.flatnonzero(edge), h * size + h


def _shape_numbers(X, size: int):
    """(n, size²) float32 -> (n, 8) shape numbers of :class:`PatchFeatures`, background b, 1/N."""
    w, wsum, ring, centre = _geometry(size)
    r = np.take(X, ring, axis=1)
    k = len(ring)  # 4 (size - 1), even: the median is the mean of the two middle values
    r.sort(axis=1)  # numpy's SIMD sort of short rows: ~10x faster than partition here
    bg = (r[:, k // 2 - 1] + r[:, k // 2]) * np.float32(0.5)
    m = X @ w
    m -= bg[:, None] * wsum
    inv = np.float32(1) / np.maximum(m[:, 0], np.float32(1))
    m *= inv[:, None]
    mx, my = m[:, 1], m[:, 2]
    vxx, vyy, vxy = m[:, 3] - mx * mx, m[:, 4] - my * my, m[:, 5] - mx * my
    tr = vxx + vyy
    out = np.empty((len(X), 8), np.float32)
    np.log(np.float32(1) / inv, out=out[:, 0])
    np.log(np.maximum(bg, np.float32(0.1)), out=out[:, 1])
    np.multiply(X[:, centre] - bg, inv, out=out[:, 2])
    out[:, 3], out[:, 4], out[:, 5] = mx, my, tr
    out[:, 6] = np.sqrt(np.square(vxx - vyy) + 4 * vxy * vxy) / np.maximum(np.abs(tr), np.float32(1e-3))
    out[:, 7] = np.sqrt(np.maximum(bg, 0) * inv) * np.float32(size)
    return out, bg, inv


