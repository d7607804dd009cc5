"""Learned sub-pixel centroid estimators (ridge, Keras linear, Keras CNN) trained on simulated truth.

A spot's centre is estimated directly from its pixels by a regression model trained on simulated
patches with exact ground truth (:func:`training_set`), instead of by an iterative fit. Each patch
is first normalized on its own (:func:`normalize`): the mean of its outer one-pixel ring is taken as
the background and subtracted, and the remainder is divided by its sum (the spot's photon count), so
that the model sees the shape of the spot, not its brightness, the camera offset or the gain. The
optional fourth-root transform compresses the bright core before normalizing.

The linear models (``"ridge"``, ``"tf-linear"``) predict with numpy only (the normalization and the
weights fold into one matrix product), so their packaged default weights work without scikit-learn
or TensorFlow; those are needed only to train (``pip install spotfit[ml]`` / ``spotfit[tf]``).
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import pandas as pd

from .. import _kernels
from .._shared import validate as _validate
from .._shared.optional import need
from ..camera import Camera
from ..core import cut_boxes
from ..simulate import integrated_gaussian

KINDS = ("ridge", "tf-linear", "tf-cnn")
TRANSFORMS = ("none", "fourth_root")
MODEL_DIR = Path(__file__).resolve().parent.parent / "models"
DEFAULT_MODELS = {"ridge": "ridge_default.npz", "tf-linear": "tf_linear_default.npz"}
_FORMAT = 1


# --------------------------------------------------------------------------------------------- data
def _range(name, value, *, positive=True) -> Tuple[float, float]:
    lo, hi = (value, value) if np.isscalar(value) else tuple(value)
    lo, hi = float(lo), float(hi)
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi or lo < 0 or (positive and lo <= 0):
        raise ValueError(f"{name} must be a number or a (low, high) pair with "
                         f"{'0 <' if positive else '0 <='} low <= high, got {value!r}")
    return lo, hi


def training_set(n: int, size: int = 9, psf_sigma: Union[float, Tuple[float, float]] = 1.3,
                 photons: Union[float, Tuple[float, float]] = (500.0, 5000.0),
                 background: Union[float, Tuple[float, float]] = 20.0, camera: Optional[Camera] = None,
                 seed=None, max_offset: float = 0.5, log_photons: bool = False) -> Tuple[np.ndarray, pd.DataFrame]:
    """Simulated spot patches with exact ground truth, for training and evaluating estimators.

    Each patch holds one pixel-integrated Gaussian spot (Smith et al. 2010, Nat. Methods 7:373) on a
    flat background, with Poisson noise; the centre is uniform within ``±max_offset`` px of the
    middle pixel's centre. A scalar parameter is fixed, a ``(low, high)`` pair is drawn uniformly per
    patch (photons log-uniformly if ``log_photons``).

    Parameters
    ----------
    n : int
        Number of patches.
    size : int
        Odd side of the square patch, pixels.
    psf_sigma : float or (low, high)
        PSF standard deviation, pixels.
    photons : float or (low, high)
        Photons per spot.
    background : float or (low, high)
        Background, photons per pixel.
    camera : Camera, optional
        If given, the photon counts are converted to ADU with ``camera.to_adu`` and rounded (raw
        counts, as a camera records them); otherwise patches are in photons. sCMOS maps are refused.
    seed : int or numpy Generator, optional
    max_offset : float
        Half-width of the uniform distribution of the centre around the middle pixel, pixels.

    Returns
    -------
    patches : ndarray (n, size, size) float32
    truth : DataFrame with ``x``, ``y`` (offset of the centre from the middle pixel's centre, px;
        x along columns, y along rows), ``photons``, ``background`` (photons/pixel), ``sigma`` (px).
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    size = _validate.odd_box(size)
    s_lo, s_hi = _range("psf_sigma", psf_sigma)
    p_lo, p_hi = _range("photons", photons)
    b_lo, b_hi = _range("background", background, positive=False)
    max_offset = _validate.positive("max_offset", max_offset, allow_zero=True)
    if camera is not None and not isinstance(camera, Camera):
        raise TypeError(f"camera must be a spotfit.Camera, got {type(camera).__name__}")
    if camera is not None and camera.is_scmos:
        raise ValueError("training_set needs a camera with a scalar baseline/sensitivity, not sCMOS maps")
    rng = np.random.default_rng(seed)
    x = rng.uniform(-max_offset, max_offset, n)
    y = rng.uniform(-max_offset, max_offset, n)
    if log_photons and p_lo < p_hi:
        ph = np.exp(rng.uniform(np.log(p_lo), np.log(p_hi), n))
    else:
        ph = rng.uniform(p_lo, p_hi, n)
    bg = rng.uniform(b_lo, b_hi, n)
    sig = rng.uniform(s_lo, s_hi, n)
    c = size // 2
    ex = integrated_gaussian(c + x, sig[:, None], size)      # (n, size) along columns
    ey = integrated_gaussian(c + y, sig[:, None], size)      # (n, size) along rows
    mu = bg[:, None, None] + ph[:, None, None] * ey[:, :, None] * ex[:, None, :]
    counts = rng.poisson(mu).astype(np.float64)
    if camera is not None:
        counts = np.rint(camera.to_adu(counts))
    truth = pd.DataFrame({"x": x, "y": y, "photons": ph, "background": bg, "sigma": sig})
    return counts.astype(np.float32), truth


def _patch_array(patches, size: Optional[int] = None) -> np.ndarray:
    p = np.asarray(patches)
    if p.dtype.kind not in "uif":
        raise TypeError(f"patches must hold numbers, got dtype {p.dtype}")
    if p.ndim == 2:
        p = p[None]
    if p.ndim != 3 or p.shape[1] != p.shape[2] or p.shape[1] % 2 == 0 or p.shape[1] < 3:
        raise ValueError(f"patches must have shape (n, size, size) with an odd size >= 3, got {p.shape}")
    if size is not None and p.shape[1] != size:
        raise ValueError(f"this model was trained on {size}x{size} patches, got {p.shape[1]}x{p.shape[2]}")
    p = np.ascontiguousarray(p, dtype=np.float32)
    if p.size and not np.isfinite(p).all():
        raise ValueError("patches contain NaN or inf (fill pixels outside the image, see frame_patches)")
    return p


def _ring(size: int) -> np.ndarray:
    m = np.zeros((size, size), bool)
    m[0, :] = m[-1, :] = m[:, 0] = m[:, -1] = True
    return m


def _kernel(size: int, psf_sigma: float) -> np.ndarray:
    """Matched filter k = g / (g.g) for a centred PSF g: ``d @ k`` is the least-squares amplitude (photons)."""
    g1 = integrated_gaussian(np.array([size // 2], float), psf_sigma, size)[0]
    g = np.outer(g1, g1).ravel()
    return (g / g.dot(g)).astype(np.float32)


def normalize(patches, psf_sigma: float = 1.3, transform: str = "none",
              floor: float = 3.0) -> Tuple[np.ndarray, pd.DataFrame]:
    """Per-patch normalization used by every estimator.

    The background ``b`` is the mean of the patch's outer one-pixel ring and the pixel noise its
    standard deviation. The spot amplitude ``A`` (≈ photons) is the least-squares (matched-filter)
    amplitude of a centred Gaussian of ``psf_sigma`` on ``p - b``, which is far less noisy than the
    plain sum at low signal; it is floored at ``floor`` times its own noise so that faint patches do
    not blow up. ``q = (p - b) / A``, or with ``transform="fourth_root"``
    ``max(p - b, 0) ** 0.25`` scaled to unit sum.

    Parameters
    ----------
    patches : array (n, size, size)
        Photons or raw counts (offset and gain cancel).

    Returns
    -------
    q : ndarray (n, size, size) float32
    stats : DataFrame with ``background`` (input unit per pixel), ``noise`` (pixel std), ``amplitude``
        (input unit), ``snr`` (amplitude over its noise std) and ``total`` (sum of ``p - b``).
    """
    p = _patch_array(patches)
    n, size = p.shape[0], p.shape[1]
    _validate.choice("transform", transform, TRANSFORMS)
    flat = p.reshape(n, -1)
    kernel = _kernel(size, _validate.positive("psf_sigma", psf_sigma))
    # One pass per patch in Cython (sums in float64); numpy reference in tests/test_cython.py.
    q, st = _kernels.normalize(flat, kernel, _ring(size).ravel().view(np.uint8), float(floor),
                               transform == "fourth_root")
    stats = pd.DataFrame({"background": st[0], "noise": st[1], "amplitude": st[2], "snr": st[3],
                          "total": st[4]})
    return q.reshape(n, size, size), stats


def frame_patches(image, rows, cols, size: int = 9) -> np.ndarray:
    """Cut ``(n, size, size)`` patches centred on pixels ``(rows[i], cols[i])`` of a 2D image (photons).

    Pixels outside the image are filled as :func:`fill_outside` does, so a spot near the border is neither
    mirrored nor biased toward the edge. The result is NaN-free.
    """
    size = _validate.odd_box(size)
    img = np.asarray(image, dtype=np.float32)
    if img.ndim != 2:
        raise ValueError(f"image must be 2D, got shape {img.shape}")
    rows = np.asarray(rows, dtype=np.intp).ravel()
    cols = np.asarray(cols, dtype=np.intp).ravel()
    if rows.shape != cols.shape:
        raise ValueError("rows and cols must have the same length")
    if rows.size and (rows.min() < 0 or cols.min() < 0 or rows.max() >= img.shape[0] or cols.max() >= img.shape[1]):
        raise ValueError("a patch centre lies outside the image")
    boxes, _, _ = cut_boxes(img, np.zeros(rows.size, np.int64), rows, cols, size, camera=_PHOTONS)
    return fill_outside(boxes)


_PHOTONS = Camera(baseline=0.0, sensitivity=1.0)   # the identity conversion: the image is photons already


def fill_outside(boxes) -> np.ndarray:
    """Boxes with NaN (outside the image) replaced by the box's background estimate: the median of its
    in-image ring pixels, or of all its in-image pixels. The normalization then removes that level."""
    out = np.array(boxes, dtype=np.float32)
    bad = np.flatnonzero(np.isnan(out).any(axis=(1, 2)))
    if len(bad):
        ring = _ring(out.shape[1])
        for i in bad:
            ok = ~np.isnan(out[i])
            vals = out[i][ok & ring] if (ok & ring).any() else out[i][ok]
            out[i][~ok] = np.median(vals)
    return out


# ------------------------------------------------------------------------------------------ models
def _require_sklearn():
    return need("sklearn.linear_model", "training a ridge model").RidgeCV


def _require_tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf = need("tensorflow", "the TensorFlow estimators ('tf-linear' training, 'tf-cnn')")
    return tf, tf.keras


_BLOCK = 65536        # patches per block in the linear fast path (bounds temporary memory)
_QSCALE = 10.0        # Keras inputs are q * _QSCALE (values of order 1)
_CNN_TARGET_WEIGHTS = np.array([1.0, 1.0, 0.3, 0.3])


def _targets(targets, n: int, need: int) -> np.ndarray:
    if isinstance(targets, pd.DataFrame):
        cols = ["x", "y", "photons", "background"][:need]
        missing = [c for c in cols if c not in targets.columns]
        if missing:
            raise ValueError(f"targets lacks columns {missing}")
        t = targets[cols].to_numpy(np.float64)
    else:
        t = np.asarray(targets, dtype=np.float64)
        if t.ndim != 2 or t.shape[1] < need:
            raise ValueError(f"targets must be (n, {need}) [x, y{', photons, background' if need == 4 else ''}] "
                             f"or a DataFrame from training_set, got shape {t.shape}")
        t = t[:, :need]
    if len(t) != n:
        raise ValueError(f"{n} patches but {len(t)} targets")
    if not np.isfinite(t).all():
        raise ValueError("targets contain NaN or inf")
    return t


class CentroidRegressor:
    """Learned estimator of a spot's sub-pixel centre from its pixels.

    Parameters
    ----------
    kind : {"ridge", "tf-linear", "tf-cnn"}
        ``"ridge"``: scikit-learn ``RidgeCV`` (alpha by efficient leave-one-out cross-validation) on
        normalized patches, one linear model per signal-to-noise bin. ``"tf-linear"``: the same
        piecewise-linear model trained with Keras (Adam, mean squared error). ``"tf-cnn"``: a small
        Keras convolutional network that also predicts photons and background.
    size : int
        Odd patch side, pixels (the spot near the middle pixel).
    psf_sigma : float
        Nominal PSF sigma (px) of the matched filter used by :func:`normalize`; the model itself learns
        whatever sigma range it is trained on.
    transform : {"none", "fourth_root"}
        Normalization variant for the linear models (``"none"`` is faster and more precise here).
    snr_bins : int
        Number of signal-to-noise bins (quantiles of the training set) with their own linear weights.
    alphas : sequence of float, optional
        Ridge penalties tried by cross-validation (default ``logspace(-8, 3, 23)``).
    epochs, batch_size, learning_rate, seed, verbose
        Keras training settings; ``seed`` also seeds TensorFlow globally (``keras.utils.set_random_seed``).

    Attributes
    ----------
    info : dict
        Free-form metadata saved with the model (training ranges, RMSE, ...).
    """

    def __init__(self, kind: str = "ridge", *, size: int = 9, psf_sigma: float = 1.3, transform: str = "none",
                 snr_bins: int = 5, alphas: Optional[Sequence[float]] = None, epochs: int = 20,
                 batch_size: int = 256, learning_rate: Optional[float] = None, seed: Optional[int] = 0,
                 verbose: int = 0):
        self.kind = _validate.choice("kind", kind, KINDS)
        self.size = _validate.odd_box(size)
        self.psf_sigma = _validate.positive("psf_sigma", psf_sigma)
        self.transform = _validate.choice("transform", transform, TRANSFORMS)
        if isinstance(snr_bins, bool) or not isinstance(snr_bins, (int, np.integer)) or not 1 <= snr_bins <= 32:
            raise ValueError(f"snr_bins must be an integer in 1..32, got {snr_bins!r}")
        if kind == "tf-cnn" and transform != "none":
            raise ValueError("tf-cnn uses transform='none'")
        self.snr_bins = int(snr_bins)
        self.alphas = np.logspace(-8, 3, 23) if alphas is None else np.asarray(alphas, dtype=float)
        if int(epochs) < 1 or int(batch_size) < 1:
            raise ValueError("epochs and batch_size must be >= 1")
        self.epochs, self.batch_size = int(epochs), int(batch_size)
        self.learning_rate = learning_rate
        self.seed, self.verbose = seed, int(verbose)
        self.info: dict = {}
        self._lin = None      # dict(W (B,F,2), c (B,2), edges (B-1,)) for the linear kinds
        self._cnn = None      # dict(model, weights list, tmean, tstd) for tf-cnn
        self._kernel = _kernel(self.size, self.psf_sigma)

    def __repr__(self):
        state = "fitted" if self.fitted else "not fitted"
        return f"CentroidRegressor(kind={self.kind!r}, size={self.size}, psf_sigma={self.psf_sigma}, {state})"

    @property
    def fitted(self) -> bool:
        return self._lin is not None or self._cnn is not None

    # ---------------------------------------------------------------------------------- training
    def fit(self, patches, targets, *, validation_split: float = 0.1) -> "CentroidRegressor":
        """Train on patches with known centres.

        Parameters
        ----------
        patches : array (n, size, size)
            Photons (or raw counts for the linear kinds).
        targets : DataFrame from :func:`training_set`, or array (n, 2) [x, y] offsets in px from the
            middle pixel's centre; ``tf-cnn`` needs (n, 4) [x, y, photons, background].
        validation_split : float
            Fraction held out by Keras to report validation loss (TF kinds).
        """
        p = _patch_array(patches, self.size)
        need = 4 if self.kind == "tf-cnn" else 2
        t = _targets(targets, len(p), need)
        if len(p) < 20 * self.snr_bins:
            raise ValueError(f"need at least {20 * self.snr_bins} patches to train, got {len(p)}")
        q, st = normalize(p, self.psf_sigma, self.transform)
        if self.kind == "tf-cnn":
            self._fit_cnn(q, st, t, validation_split)
            return self
        snr = st["snr"].to_numpy()
        edges = np.quantile(snr, np.linspace(0, 1, self.snr_bins + 1)[1:-1]).astype(np.float32)
        b = np.searchsorted(edges, snr)
        qf = q.reshape(len(q), -1)
        if self.kind == "ridge":
            RidgeCV = _require_sklearn()
            W, c, alphas = [], [], []
            for i in range(self.snr_bins):
                m = RidgeCV(alphas=self.alphas).fit(qf[b == i], t[b == i])
                W.append(m.coef_.T)
                c.append(m.intercept_)
                alphas.append(float(m.alpha_))
            self.info["alpha"] = alphas
            self._lin = {"W": np.array(W, np.float32), "c": np.array(c, np.float32), "edges": edges}
        else:
            self._fit_tf_linear(qf, b, t, validation_split, edges)
        return self

    def _keras_setup(self):
        tf, keras = _require_tf()
        if self.seed is not None:
            keras.utils.set_random_seed(int(self.seed))
        return tf, keras

    def _fit_tf_linear(self, qf, b, t, validation_split, edges):
        tf, keras = self._keras_setup()
        nb, nf = self.snr_bins, qf.shape[1]
        x_in = keras.Input((nf,), name="q")
        oh_in = keras.Input((nb,), name="bin")
        lin = keras.layers.Dense(2 * nb, name="linear")(x_in)
        out = keras.layers.Lambda(lambda a: tf.reduce_sum(tf.reshape(a[0], (-1, nb, 2)) * a[1][:, :, None], axis=1),
                                  output_shape=(2,))([lin, oh_in])
        model = keras.Model([x_in, oh_in], out)
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate or 3e-3), loss="mse")
        onehot = np.eye(nb, dtype=np.float32)[b]
        hist = model.fit([qf * _QSCALE, onehot], t.astype(np.float32), epochs=self.epochs,
                         batch_size=self.batch_size, validation_split=validation_split, verbose=self.verbose)
        kern, bias = model.get_layer("linear").get_weights()
        W = (kern * _QSCALE).reshape(nf, nb, 2).transpose(1, 0, 2)
        self.info["history"] = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        self._lin = {"W": np.ascontiguousarray(W, np.float32), "c": bias.reshape(nb, 2).astype(np.float32),
                     "edges": edges}

    def _build_cnn(self):
        tf, keras = _require_tf()
        L = keras.layers
        img = keras.Input((self.size, self.size, 1), name="q")
        aux = keras.Input((1,), name="log_snr")
        h = L.Conv2D(16, 3, activation="relu")(img)
        h = L.Conv2D(32, 3, activation="relu")(h)
        h = L.Concatenate()([L.Flatten()(h), aux])
        h = L.Dense(64, activation="relu")(h)
        out = L.Dense(4)(h)
        return keras.Model([img, aux], out)

    @staticmethod
    def _cnn_inputs(q, st):
        log_snr = np.log(np.clip(st["snr"].to_numpy(np.float32), 1.0, 1e4))[:, None] / 4.0
        return [q[..., None] * np.float32(_QSCALE), log_snr.astype(np.float32)]

    def _fit_cnn(self, q, st, t, validation_split):
        tf, keras = self._keras_setup()
        amp = np.maximum(st["amplitude"].to_numpy(np.float64), 3.0 * st["noise"].to_numpy() *
                         np.sqrt(float(self._kernel.dot(self._kernel))))
        y = np.column_stack([t[:, 0], t[:, 1], np.log(np.maximum(t[:, 2], 1e-3) / amp),
                             (t[:, 3] - st["background"].to_numpy()) / st["noise"].to_numpy()])
        tmean, tstd = y.mean(axis=0), y.std(axis=0) + 1e-9
        tmean[:2], tstd[:2] = 0.0, 1.0
        z = (y - tmean) / tstd * _CNN_TARGET_WEIGHTS
        model = self._build_cnn()
        lr = self.learning_rate or 2e-3
        steps = self.epochs * int(np.ceil(len(q) * (1 - validation_split) / self.batch_size))
        sched = keras.optimizers.schedules.CosineDecay(lr, max(steps, 1), alpha=0.02)
        model.compile(optimizer=keras.optimizers.Adam(sched), loss="mse")
        hist = model.fit(self._cnn_inputs(q, st), z.astype(np.float32), epochs=self.epochs,
                         batch_size=self.batch_size, validation_split=validation_split, verbose=self.verbose)
        self.info["history"] = {k: [float(v) for v in vals] for k, vals in hist.history.items()}
        self._cnn = {"model": model, "tmean": tmean, "tstd": tstd}

    # -------------------------------------------------------------------------------- prediction
    def _check_fitted(self):
        if not self.fitted:
            raise RuntimeError("this CentroidRegressor is not trained: call fit() or load()")

    def predict(self, patches) -> np.ndarray:
        """Centre offsets ``(n, 2)`` [x, y] in px from the centre of each patch's middle pixel.

        ``patches`` is ``(n, size, size)`` photons (or raw counts for the linear kinds), NaN-free.
        """
        return self._predict(patches)[0]

    def estimate(self, patches) -> pd.DataFrame:
        """``x``, ``y`` (as :meth:`predict`), ``photons``, ``background`` (per pixel) and ``snr`` per patch.

        Linear kinds: photons = sum of the background-subtracted patch, background = ring mean (same
        unit as the input). ``tf-cnn`` predicts both (in photons; train it on photons).
        """
        xy, extra = self._predict(patches)
        return pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], **extra})

    def estimate_boxes(self, boxes) -> pd.DataFrame:
        """:meth:`estimate` of boxes whose pixels outside the image are NaN (filled by :func:`fill_outside`);
        what :func:`spotfit.localize` calls with the boxes detection cut."""
        return self.estimate(fill_outside(boxes))

    def _predict(self, patches):
        self._check_fitted()
        p = _patch_array(patches, self.size)
        if self._cnn is not None:
            return self._predict_cnn(p)
        if self.transform == "none":
            flat = p.reshape(len(p), -1)
            if len(flat) <= _BLOCK:
                return self._predict_linear_fast(flat)
            parts = [self._predict_linear_fast(flat[i:i + _BLOCK]) for i in range(0, len(flat), _BLOCK)]
            return (np.concatenate([a for a, _ in parts]),
                    {k: np.concatenate([b[k] for _, b in parts]) for k in parts[0][1]})
        q, st = normalize(p, self.psf_sigma, self.transform)
        snr = st["snr"].to_numpy()
        b = np.searchsorted(self._lin["edges"], snr)
        allp = np.einsum("nf,bfk->nbk", q.reshape(len(q), -1), self._lin["W"]) + self._lin["c"][None]
        xy = allp[np.arange(len(q)), b].astype(np.float64)
        return xy, {"photons": st["total"].to_numpy(), "background": st["background"].to_numpy(), "snr": snr}

    def _fold(self):
        """One (F, 3 + 2B) matrix: matched filter, ring mean, plain sum and every bin's weights."""
        if "fold" not in self._lin:
            W = self._lin["W"]
            nb, nf = W.shape[0], W.shape[1]
            ring = _ring(self.size).ravel()
            cols = [self._kernel, ring / ring.sum(), np.ones(nf)] + [W.transpose(1, 0, 2).reshape(nf, 2 * nb)[:, j]
                                                                       for j in range(2 * nb)]
            self._lin["fold"] = np.ascontiguousarray(np.column_stack(cols), np.float32)
            self._lin["Wsum"] = W.sum(axis=1)          # (B, 2)
        return self._lin["fold"]

    def _predict_linear_fast(self, flat):
        M = self._fold()
        n = len(flat)
        nb = self._lin["W"].shape[0]
        z = flat @ M
        bg = z[:, 1]
        ring = _ring(self.size).ravel()
        r = flat[:, ring]
        var = np.maximum(np.einsum("ij,ij->i", r, r) / np.float32(ring.sum()) - bg * bg, np.float32(1e-6))
        amp = z[:, 0] - bg * np.float32(self._kernel.sum())
        noise = np.sqrt(var * np.float32(self._kernel.dot(self._kernel)))
        amp_f = np.maximum(amp, 3.0 * noise)
        snr = amp / noise
        b = np.searchsorted(self._lin["edges"], snr)
        idx = np.arange(n)
        num = z[:, 3:].reshape(n, nb, 2)[idx, b] - bg[:, None] * self._lin["Wsum"][b]
        xy = num / amp_f[:, None] + self._lin["c"][b]
        total = z[:, 2] - bg * np.float32(flat.shape[1])
        return xy.astype(np.float64), {"photons": total, "background": bg, "snr": snr}

    def _predict_cnn(self, p):
        q, st = normalize(p, self.psf_sigma, "none")
        model = self._cnn["model"]
        inputs = self._cnn_inputs(q, st)
        if len(p) <= 4096:
            z = np.asarray(model(inputs, training=False))
        else:
            z = model.predict(inputs, batch_size=4096, verbose=0)
        y = z / _CNN_TARGET_WEIGHTS * self._cnn["tstd"] + self._cnn["tmean"]
        amp = np.maximum(st["amplitude"].to_numpy(np.float64), 3.0 * st["noise"].to_numpy() *
                         np.sqrt(float(self._kernel.dot(self._kernel))))
        photons = np.exp(y[:, 2]) * amp
        background = st["background"].to_numpy() + y[:, 3] * st["noise"].to_numpy()
        return y[:, :2].astype(np.float64), {"photons": photons, "background": background,
                                             "snr": st["snr"].to_numpy()}

    # ---------------------------------------------------------------------------------- storage
    def save(self, path) -> None:
        """Write the model to a ``.npz`` file (weights and metadata; no pickle)."""
        self._check_fitted()
        meta = {"format": _FORMAT, "kind": self.kind, "size": self.size, "psf_sigma": self.psf_sigma,
                "transform": self.transform, "snr_bins": self.snr_bins, "info": self.info}
        arrays = {}
        if self._lin is not None:
            arrays.update(W=self._lin["W"], c=self._lin["c"], edges=self._lin["edges"])
        else:
            arrays.update(tmean=self._cnn["tmean"], tstd=self._cnn["tstd"])
            for i, w in enumerate(self._cnn["model"].get_weights()):
                arrays[f"keras_{i:03d}"] = w
        np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)

    @classmethod
    def load(cls, path) -> "CentroidRegressor":
        """Read a model written by :meth:`save` (``tf-cnn`` needs TensorFlow)."""
        try:
            with np.load(path, allow_pickle=False) as f:
                data = {k: f[k] for k in f.files}
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read a CentroidRegressor from {path}: {exc}") from exc
        if "meta" not in data:
            raise ValueError(f"{path} is not a spotfit CentroidRegressor file")
        meta = json.loads(str(data["meta"]))
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path}: unsupported model format {meta.get('format')}")
        self = cls(meta["kind"], size=meta["size"], psf_sigma=meta["psf_sigma"], transform=meta["transform"],
                   snr_bins=meta["snr_bins"])
        self.info = meta.get("info", {})
        if "W" in data:
            self._lin = {"W": data["W"].astype(np.float32), "c": data["c"].astype(np.float32),
                         "edges": data["edges"].astype(np.float32)}
        else:
            model = self._build_cnn()
            model.set_weights([data[k] for k in sorted(k for k in data if k.startswith("keras_"))])
            self._cnn = {"model": model, "tmean": data["tmean"], "tstd": data["tstd"]}
        return self

    @classmethod
    def pretrained(cls, kind: str = "ridge") -> "CentroidRegressor":
        """The default model shipped with spotfit (see ``model.info`` for its training ranges)."""
        if kind not in DEFAULT_MODELS:
            raise ValueError(f"pretrained models exist for {sorted(DEFAULT_MODELS)}, got {kind!r}")
        path = MODEL_DIR / DEFAULT_MODELS[kind]
        if not path.exists():
            raise FileNotFoundError(f"{path} is missing: run bench/train_default_models.py")
        return cls.load(path)


def as_regressor(estimator) -> CentroidRegressor:
    """A CentroidRegressor from an instance, a default-model name or a saved ``.npz`` path."""
    if isinstance(estimator, CentroidRegressor):
        estimator._check_fitted()
        return estimator
    if isinstance(estimator, str) and estimator in DEFAULT_MODELS:
        return CentroidRegressor.pretrained(estimator)
    if isinstance(estimator, (str, os.PathLike)) and str(estimator).endswith(".npz"):
        return CentroidRegressor.load(estimator)
    if not isinstance(estimator, (str, os.PathLike)) and hasattr(estimator, "size") \
            and hasattr(estimator, "estimate_boxes"):
        return estimator   # any object with the regressor protocol of spotfit.core
    raise TypeError(f"estimator must be 'mle', 'lsq', a CentroidRegressor, one of {sorted(DEFAULT_MODELS)} or a "
                    f"saved regressor (.npz), got {estimator!r}")
