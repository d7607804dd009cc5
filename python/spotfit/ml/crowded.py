"""A learned detector for crowded fields: a small convolutional network proposes where emitters are, the
C++ core then fits the proposals jointly (:func:`spotfit.localize` with ``detector=``).

Overlapping spots defeat peak finding: two emitters under one pixel apart make one peak. The network sees the
whole neighbourhood and marks, on a grid twice as fine as the pixels, each cell that holds an emitter's centre,
with the centre's offset from the cell (the output of DECODE, Speiser et al. 2021, Nat. Methods 18:1082, on a
finer grid; a U-Net, Ronneberger et al. 2015, as its body). It is trained only on simulated frames with exact
truth (:func:`crowded_training_set`): emitters along random curves (filaments) plus scattered ones, pixel-
integrated Gaussian spots, Poisson noise times an excess-noise factor (EMCCD-like). Its proposals start the
joint fits (``spotcore::fit_starts``), which give each emitter its position, photons and Cramer-Rao bound.

The packaged default (:meth:`CrowdedDetector.default`) was trained by ``bench/train_crowded_model.py`` on the
ranges in :data:`DEFAULT_RANGES`; retrain (same function, other ranges) for data outside them. TensorFlow is
needed to train and to detect (``pip install spotfit[tf]``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from .._shared import validate as _validate
from .._shared.atomic import atomic_path
from .._shared.optional import need
from ..simulate import expected_image

MODEL_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_FILE = "crowded_default.npz"
_FORMAT = 1
UPSAMPLE = 2                 # output cells per pixel along each axis
# Simulated training frames of the packaged model: PSF sigma px, median photons and the spread of their log,
# the fraction of dim emitters (x0.3: partly on in the frame), background photons/px, the noise variance over
# the mean (EMCCD excess noise x gain), emitters per pixel.
DEFAULT_RANGES = dict(psf_sigma=(0.95, 1.2), photons=3000.0, log_photons_sd=0.35, dim_fraction=0.08,
                      background=(20.0, 60.0), noise_factor=(3.0, 5.0), density=(0.02, 0.09))


def _require_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return need("tensorflow", "the crowded-field detector (CrowdedDetector)")


# --------------------------------------------------------------------------------------------- data
def _filament_positions(rng, size: int, count: int) -> Tuple[np.ndarray, np.ndarray]:
    """``count`` emitters: 85 % on 1-4 smooth random curves (jittered 0.1-0.35 px off them), 15 % uniform."""
    n_curves = int(rng.integers(1, 5))
    per = rng.multinomial(count, np.r_[np.full(n_curves, 0.85 / n_curves), 0.15])
    xs, ys = [], []
    steps = 200
    for c in range(n_curves):
        turn = rng.uniform(0, 2 * np.pi) + rng.normal(0, 2.0) * np.linspace(0, 1, steps)
        cx = np.cumsum(np.cos(turn)) * 3 * size / steps
        cy = np.cumsum(np.sin(turn)) * 3 * size / steps
        cx += rng.uniform(0, size) - cx.mean()
        cy += rng.uniform(0, size) - cy.mean()
        inside = np.flatnonzero((cx > -2) & (cx < size + 1) & (cy > -2) & (cy < size + 1))
        if len(inside) < 2:     # the curve missed the frame: a straight one through the middle
            cx, cy, inside = np.linspace(0, size, steps), np.full(steps, size / 2), np.arange(steps)
        pick = rng.choice(inside, per[c])
        jitter = rng.uniform(0.1, 0.35)
        xs.append(cx[pick] + rng.normal(0, jitter, per[c]))
        ys.append(cy[pick] + rng.normal(0, jitter, per[c]))
    xs.append(rng.uniform(-1, size, per[-1]))
    ys.append(rng.uniform(-1, size, per[-1]))
    return np.concatenate(xs) - 0.5, np.concatenate(ys) - 0.5


def _cell_targets(size: int, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(size*U, size*U, 3): 1 where a cell holds an emitter's centre, and that centre's offset (px) from the
    cell's centre. Two emitters in one cell: the later one is kept (cells are 1/U px wide)."""
    m = size * UPSAMPLE
    t = np.zeros((m, m, 3), np.float32)
    fx, fy = (x + 0.5) * UPSAMPLE, (y + 0.5) * UPSAMPLE
    cx, cy = np.floor(fx).astype(int), np.floor(fy).astype(int)
    ok = (cx >= 0) & (cx < m) & (cy >= 0) & (cy < m)
    cx, cy, fx, fy = cx[ok], cy[ok], fx[ok], fy[ok]
    t[cy, cx, 0] = 1.0
    t[cy, cx, 1] = (fx - cx - 0.5) / UPSAMPLE
    t[cy, cx, 2] = (fy - cy - 0.5) / UPSAMPLE
    return t


def crowded_training_set(n: int, size: int = 32, seed: Optional[int] = None, **ranges):
    """``n`` simulated frames for training a :class:`CrowdedDetector`: ``(frames (n, size, size) float32 in
    photons above the camera offset, targets (n, size*2, size*2, 3), truth list of (x, y, photons) arrays)``.
    ``ranges`` override :data:`DEFAULT_RANGES`."""
    n = _validate.integer("n", n, 1)
    size = _validate.integer("size", size, 8, 4096)
    r = {**DEFAULT_RANGES, **ranges}
    unknown = set(ranges) - set(DEFAULT_RANGES)
    if unknown:
        raise ValueError(f"unknown training ranges {sorted(unknown)}; known: {sorted(DEFAULT_RANGES)}")
    rng = np.random.default_rng(seed)
    frames = np.empty((n, size, size), np.float32)
    targets = np.empty((n, size * UPSAMPLE, size * UPSAMPLE, 3), np.float32)
    truth = []
    for i in range(n):
        count = int(rng.poisson(rng.uniform(*r["density"]) * size * size))
        x, y = _filament_positions(rng, size, count)
        photons = np.exp(rng.normal(np.log(r["photons"]), r["log_photons_sd"], count))
        photons *= np.where(rng.random(count) < r["dim_fraction"], 0.3, 1.0)
        sigma = rng.uniform(*r["psf_sigma"])
        gain = rng.uniform(*r["noise_factor"])
        mu = expected_image((size, size), x, y, photons, rng.uniform(*r["background"]), sigma)
        frames[i] = gain * rng.poisson(mu / gain) + rng.normal(0.0, 2.0, mu.shape)
        targets[i] = _cell_targets(size, x, y)
        truth.append(np.column_stack([x, y, photons]))
    return frames, targets, truth


def _batch(rows: int, cols: int) -> int:
    """Frames per network call: ~2 M input pixels (the finest activations are 128 x that in bytes)."""
    return max(1, (1 << 21) // max(1, rows * cols))


def _merge(frame, x, y, weight, distance):
    """Points of one frame closer than ``distance`` (chains included) become their weighted mean."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree
    # frames apart by more than the distance: one tree over (x, y, frame * far) keeps them from merging
    far = 4.0 * distance + float(max(np.ptp(x), np.ptp(y))) + 10.0
    pts = np.column_stack([x, y, frame * far])
    pairs = cKDTree(pts).query_pairs(distance, output_type="ndarray")
    n = len(x)
    adj = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    count, label = connected_components(adj, directed=False)
    w = np.bincount(label, weight, count)
    first = np.full(count, n)
    np.minimum.at(first, label, np.arange(n))      # each group keeps its first member's frame and order
    order = np.argsort(first, kind="stable")
    mx = np.bincount(label, weight * x, count) / w
    my = np.bincount(label, weight * y, count) / w
    return frame[first][order], mx[order], my[order]


# --------------------------------------------------------------------------------------------- model
def _build(tf, channels: int):
    L = tf.keras.layers

    def block(h, c):
        h = L.Conv2D(c, 3, padding="same", activation="relu")(h)
        return L.Conv2D(c, 3, padding="same", activation="relu")(h)

    c = channels
    inp = tf.keras.Input((None, None, 1))
    d0 = block(inp, c)
    d1 = block(L.MaxPool2D()(d0), 2 * c)
    d2 = block(L.MaxPool2D()(d1), 4 * c)
    u1 = block(L.Concatenate()([L.UpSampling2D()(d2), d1]), 2 * c)
    u0 = block(L.Concatenate()([L.UpSampling2D()(u1), d0]), c)
    fine = L.Conv2DTranspose(c, UPSAMPLE, strides=UPSAMPLE, activation="relu")(u0)
    fine = L.Conv2D(c, 3, padding="same", activation="relu")(fine)
    return tf.keras.Model(inp, L.Conv2D(3, 1)(fine))   # logit of "a centre here", offset x, offset y


def _loss(tf):
    def loss(truth, out):
        occupied = truth[..., 0]
        # Emitters fill ~1 % of the cells: weight them up so the net does not learn "nothing anywhere".
        bce = tf.nn.weighted_cross_entropy_with_logits(occupied, out[..., 0], pos_weight=4.0)
        offset = occupied * (tf.square(out[..., 1] - truth[..., 1]) + tf.square(out[..., 2] - truth[..., 2]))
        return tf.reduce_mean(bce) + tf.reduce_sum(offset) / 0.02 / (tf.reduce_sum(occupied) + 1.0)
    return loss


class CrowdedDetector:
    """Proposes emitter centres in crowded frames (see the module's text). ``threshold``: a cell whose
    probability of holding a centre exceeds it is a proposal; ``merge_distance`` (px): proposals of neighbouring
    cells that decode to points this close are one emitter (an emitter near a cell border lights both cells),
    placed at their probability-weighted mean; ``scale``: the network's input is photons x scale.
    """

    def __init__(self, *, channels: int = 32, threshold: float = 0.58, merge_distance: float = 0.25,
                 scale: float = 1e-3):
        self.channels = _validate.integer("channels", channels, 4, 256)
        self.threshold = float(threshold)
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.merge_distance = _validate.positive("merge_distance", merge_distance, allow_zero=True)
        self.scale = _validate.positive("scale", scale)
        self.info: dict = {}
        self._model = None

    # ------------------------------------------------------------------ training
    def fit(self, steps: int = 5000, batch: int = 32, size: int = 32, seed: Optional[int] = 0,
            validation: int = 500, verbose: int = 0, **ranges) -> "CrowdedDetector":
        """Train on fresh simulated frames (:func:`crowded_training_set`, a new batch every step; above 1,000
        steps the count is rounded down to whole epochs of 1,000). ``ranges`` override :data:`DEFAULT_RANGES`."""
        tf = _require_tf()
        steps = _validate.integer("steps", steps, 1)
        batch = _validate.integer("batch", batch, 1)
        if _validate.integer("size", size, 8, 4096) % 4:
            raise ValueError(f"size must be a multiple of 4 (two poolings), got {size}")
        if seed is not None:
            tf.keras.utils.set_random_seed(int(seed))
        model = _build(tf, self.channels)
        base = 0 if seed is None else int(seed) * 1_000_003

        def batches():
            k = 0
            while True:
                k += 1
                x, t, _ = crowded_training_set(batch, size, seed=base + k, **ranges)
                yield x[..., None] * self.scale, t

        xv, tv, _ = crowded_training_set(validation, size, seed=base + 999_983, **ranges)
        per_epoch = min(steps, 1000)
        epochs = max(1, steps // per_epoch)
        schedule = tf.keras.optimizers.schedules.CosineDecay(2e-3, epochs * per_epoch)
        model.compile(tf.keras.optimizers.Adam(schedule), loss=_loss(tf))
        hist = model.fit(batches(), steps_per_epoch=per_epoch, epochs=epochs, verbose=verbose, shuffle=False,
                         validation_data=(xv[..., None] * self.scale, tv))
        self._model = model
        self.info = {"steps": epochs * per_epoch, "batch": batch, "size": size, "seed": seed,
                     "ranges": {k: list(v) if isinstance(v, tuple) else v for k, v in {**DEFAULT_RANGES, **ranges}.items()},
                     "val_loss": float(hist.history["val_loss"][-1])}
        return self

    # ------------------------------------------------------------------ detection
    def _check(self):
        if self._model is None:
            raise ValueError("this CrowdedDetector is not trained: call fit(), load() or default()")

    def probabilities(self, photons) -> np.ndarray:
        """The network's output for frames in photons above the offset, (frames, rows, cols) or one frame:
        (frames, rows*2, cols*2, 3) float32 = probability of a centre in the cell, offset x, offset y (px)."""
        self._check()
        a = np.asarray(photons, dtype=np.float32)
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3 or a.shape[1] < 4 or a.shape[2] < 4:
            raise ValueError(f"photons must be a frame or a stack of frames at least 4x4, got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ValueError("photons hold NaN or infinite values")
        rows, cols = a.shape[1:]
        pr, pc = (-rows) % 4, (-cols) % 4     # two poolings: sides that are multiples of 4
        x = np.pad(a, ((0, 0), (0, pr), (0, pc)), mode="reflect" if min(rows, cols) > 4 else "edge")
        from scipy.special import expit
        out = np.empty((len(a), rows * UPSAMPLE, cols * UPSAMPLE, 3), np.float32)
        step = _batch(rows, cols)
        for s in range(0, len(a), step):
            y = self._model(x[s:s + step, :, :, None] * self.scale, training=False).numpy()
            out[s:s + step] = y[:, :rows * UPSAMPLE, :cols * UPSAMPLE]
        out[..., 0] = expit(out[..., 0])
        return out

    def candidates(self, photons, first_frame: int = 0):
        """Proposed centres: ``(frame int64, x float32, y float32)`` (pixels, pixel-centre convention), frames
        counted from ``first_frame``, in frame order."""
        a = np.asarray(photons)
        if a.ndim == 2:
            a = a[None]
        if a.ndim != 3:
            raise ValueError(f"photons must be a frame or a stack of frames, got shape {a.shape}")
        rows, cols = a.shape[1:]
        parts = []
        step = _batch(rows, cols)
        for s in range(0, len(a), step):   # batches: the fine-grid output of a long chunk would not fit in memory
            out = self.probabilities(a[s:s + step])
            f, r, c = np.nonzero(out[..., 0] > self.threshold)
            x = (c + 0.5) / UPSAMPLE - 0.5 + out[f, r, c, 1]
            y = (r + 0.5) / UPSAMPLE - 0.5 + out[f, r, c, 2]
            if self.merge_distance > 0 and len(f):
                f, x, y = _merge(f, x, y, out[f, r, c, 0], self.merge_distance)
            parts.append((f + s, x, y))
        f = np.concatenate([p[0] for p in parts]).astype(np.int64)
        # inside the frame as float32 (the core rejects a point at cols - 0.5)
        x = np.clip(np.concatenate([p[1] for p in parts]).astype(np.float32), np.float32(-0.5),
                    np.nextafter(np.float32(cols - 0.5), np.float32(0)))
        y = np.clip(np.concatenate([p[2] for p in parts]).astype(np.float32), np.float32(-0.5),
                    np.nextafter(np.float32(rows - 0.5), np.float32(0)))
        return f + int(first_frame), x, y

    # ------------------------------------------------------------------ files
    def save(self, path) -> None:
        """Write weights and settings to a ``.npz`` file (no pickle), atomically."""
        self._check()
        meta = {"format": _FORMAT, "kind": "crowded-detector", "channels": self.channels,
                "threshold": self.threshold, "merge_distance": self.merge_distance, "scale": self.scale,
                "upsample": UPSAMPLE, "info": self.info}
        arrays = {f"w{i:03d}": w for i, w in enumerate(self._model.get_weights())}
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez_compressed(fh, meta=np.array(json.dumps(meta)), **arrays)

    @classmethod
    def load(cls, path) -> "CrowdedDetector":
        """Read a detector written by :meth:`save`."""
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read a CrowdedDetector from {path}: {exc}") from exc
        meta = json.loads(str(data["meta"])) if "meta" in data else {}
        if meta.get("kind") != "crowded-detector":
            raise ValueError(f"{path} is not a spotfit CrowdedDetector file")
        if meta.get("format") != _FORMAT or meta.get("upsample") != UPSAMPLE:
            raise ValueError(f"{path}: unsupported detector format {meta.get('format')}")
        missing = {"channels", "threshold", "merge_distance", "scale"} - set(meta)
        if missing:
            raise ValueError(f"{path}: settings missing from the file: {sorted(missing)}")
        self = cls.__new__(cls)
        state = {k: meta[k] for k in ("channels", "threshold", "merge_distance", "scale")}
        state.update(info=meta.get("info", {}), weights=[data[k] for k in sorted(k for k in data if k.startswith("w"))])
        try:
            self.__setstate__(state)
        except ValueError as exc:
            raise ValueError(f"{path}: weights do not match a {state['channels']}-channel detector: {exc}") from exc
        return self

    @classmethod
    def default(cls) -> "CrowdedDetector":
        """The packaged detector (trained by ``bench/train_crowded_model.py`` on :data:`DEFAULT_RANGES`)."""
        return cls.load(MODEL_DIR / DEFAULT_FILE)

    # Pickled as settings and weights (a Keras model does not pickle): Dask sends detectors to its workers.
    def __getstate__(self) -> dict:
        weights = self._model.get_weights() if self._model is not None else None
        return {"channels": self.channels, "threshold": self.threshold, "merge_distance": self.merge_distance,
                "scale": self.scale, "info": self.info, "weights": weights}

    def __setstate__(self, state: dict) -> None:
        self.__init__(channels=state["channels"], threshold=state["threshold"],
                      merge_distance=state["merge_distance"], scale=state["scale"])
        self.info = state["info"]
        if state["weights"] is not None:
            self._model = _build(_require_tf(), self.channels)
            self._model.set_weights(state["weights"])

    def __repr__(self) -> str:
        state = "trained" if self._model is not None else "untrained"
        return (f"CrowdedDetector(channels={self.channels}, threshold={self.threshold}, "
                f"merge_distance={self.merge_distance}, {state})")
