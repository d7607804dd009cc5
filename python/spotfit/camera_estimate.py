"""A camera's offset and gain from a movie's own pixel statistics (:meth:`spotfit.Camera.estimate`).

Each pixel's counts over a short block of frames are ``offset + g * photoelectrons + read noise``. Their
cumulants then obey, for any brightness ``m`` (the block's mean, ADU):

    k2 = c2 g (m - o) + r,   k3 = c3 g^2 (m - o),   k4 = c4 g^3 (m - o)

with ``g`` in ADU per photoelectron, ``o`` the offset, ``r`` the read-noise variance (Gaussian: no k3, k4),
and ``c = (1, 1, 1)`` for CCD/sCMOS, ``(2, 6, 24)`` for an EMCCD, whose multiplication register turns each
electron into an exponential number of counts (compound Poisson: k_n = n! g^n lambda; Basden et al. 2003,
MNRAS 345:985). Over pixels of different brightness the k2 slope gives ``g`` (the photon transfer curve,
Janesick 2007); on a flat background k4/k3 does. k3 then places the offset, which the k2 intercept alone
cannot tell from read noise.

Why it is unbiased: the cumulants are Fisher's k-statistics (unbiased for any sample size) over one half of
a block's frames (even or odd), grouped by the *other* half's mean, so the grouping never selects noise.
Samples near spots are left out by a test on the pixel's neighbours only (never the pixel itself), so the
cut does not bias the pixel's statistics either. Blocks of 32 frames keep a slow bleaching trend out of
the variance. The uncertainties are a jackknife over 16 random groups of pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

#: Cumulant factors (c2, c3, c4) of the electron-to-count step.
CUMULANT_FACTORS = {"ccd": (1.0, 1.0, 1.0), "emccd": (2.0, 6.0, 24.0)}
BLOCK_FRAMES = 32
_MIN_PER_HALF = 5          # k4 needs 4 samples; 5 keeps its variance finite
_REFERENCE_FRAMES = 64     # per-pixel median and spread for the spot test
_SPOT_Z = 3.0              # neighbour sums above 3 sd: a spot (0.3 % of pure-noise samples lost)
_BINS = 24
_GROUPS = 16


@dataclass(frozen=True)
class CameraEstimate:
    """What :meth:`spotfit.Camera.estimate` measured, with jackknife standard errors (``*_error``).

    Attributes
    ----------
    baseline : float
        Offset, ADU.
    gain : float
        ADU per photoelectron at the output (EM gain included for an EMCCD).
    read_noise : float
        Read-noise rms, ADU (NaN where the fit puts its variance below 0).
    sensitivity : float
        Photoelectrons per ADU as :class:`spotfit.Camera` takes it: ``em_gain / gain``.
    em_gain : float
        The EM gain given (1 for CCD/sCMOS); it is not measured, only divided out.
    noise_model : {"ccd", "emccd"}
    fit_chi2 : float
        Chi-square per degree of freedom of the cumulant model over the brightness bins: ~1 when the model
        holds; well above 1 when it does not (EMCCD data read as CCD, flickering background, dim spots).
    brightness_range : tuple of float
        The 5th and 95th percentile of the pixels' mean counts, ADU: a wide range pins the gain by the
        slope of the variance; a narrow one leaves it to the higher moments (less precise).
    frames, pixels : int
        Frames read; pixels used (hot, dead and edge-less pixels are left out).
    spot_fraction : float
        Fraction of pixel samples left out as near a spot.
    camera : spotfit.Camera
        The estimated baseline and sensitivity (and the EM gain given) as a camera for
        :func:`spotfit.localize`.
    """

    baseline: float
    baseline_error: float
    gain: float
    gain_error: float
    read_noise: float
    read_noise_error: float
    sensitivity: float
    sensitivity_error: float
    em_gain: float
    noise_model: str
    fit_chi2: float
    brightness_range: tuple
    frames: int
    pixels: int
    spot_fraction: float
    camera: object = None

    @property
    def precise(self) -> bool:
        """The gain is known to 3 % (one standard error)."""
        return self.gain_error <= 0.03 * self.gain

    @property
    def model_fits(self) -> bool:
        """The cumulant model describes the data (chi2/dof <= 3 over the brightness bins)."""
        return self.fit_chi2 <= 3

    def __str__(self) -> str:
        lo, hi = self.brightness_range
        lines = [
            f"baseline:    {self.baseline:.2f} +- {self.baseline_error:.2f} ADU",
            f"sensitivity: {self.sensitivity:.4g} +- {self.sensitivity_error:.2g} e-/ADU "
            f"(gain {self.gain:.4g} +- {self.gain_error:.2g} ADU/e-"
            + (f", EM gain {self.em_gain:g} given)" if self.noise_model == "emccd" else ")"),
            f"read noise:  {self.read_noise:.3g} +- {self.read_noise_error:.2g} ADU rms",
            f"model:       {self.noise_model}, chi2/dof {self.fit_chi2:.2f} over the brightness bins",
            f"data:        {self.frames} frames, {self.pixels} pixels, mean counts {lo:.1f}-{hi:.1f} ADU "
            f"(5-95 %), {100 * self.spot_fraction:.1f} % of samples left out near spots",
        ]
        if not self.precise:
            lines.append("note:        the gain is uncertain by more than 3 %: use more frames or pixels (a flat "
                         "background leaves it to the higher moments; an uneven illumination pins it)")
        if not self.model_fits:
            lines.append("warning:     the noise model does not fit these statistics (chi2/dof > 3): the movie "
                         "may be EMCCD data (give em_gain), have a flickering background, or many dim spots")
        return "\n".join(lines)


def _neighbour_z(z: np.ndarray, size: int) -> np.ndarray:
    """Sum of z over a size x size window without its centre, in units of its sd (frames, rows, cols)."""
    from scipy.ndimage import uniform_filter
    # constant 0 outside the frame: a mirrored edge would put the centre pixel back in its own window
    box = uniform_filter(z, size=(1, size, size), mode="constant", cval=0.0) * (size * size)
    return (box - z) / np.sqrt(size * size - 1.0)


def _k_statistics(x: np.ndarray, keep: np.ndarray):
    """Per pixel: n, mean and k2, k3, k4 of the kept samples of x (axis 0)."""
    n = keep.sum(axis=0).astype(np.float64)
    safe = np.maximum(n, 4.0)
    mean = np.where(keep, x, 0.0).sum(axis=0) / np.maximum(n, 1.0)
    d = np.where(keep, x - mean, 0.0)
    d2 = d * d
    s2 = d2.sum(axis=0)
    s3 = (d2 * d).sum(axis=0)
    s4 = (d2 * d2).sum(axis=0)
    # Fisher's k-statistics from central power sums (unbiased cumulant estimators; Kendall & Stuart ch. 12)
    k2 = s2 / (safe - 1.0)
    k3 = safe * s3 / ((safe - 1.0) * (safe - 2.0))
    k4 = (safe * (safe + 1.0) * s4 - 3.0 * (safe - 1.0) * s2 * s2) / ((safe - 1.0) * (safe - 2.0) * (safe - 3.0))
    return n, mean, k2, k3, k4


def _frames_of(movie):
    shape = getattr(movie, "shape", None)
    if shape is None:
        movie = np.asarray(movie)
        shape = movie.shape
    if len(shape) != 3:
        raise ValueError(f"a movie (frames, rows, cols) is needed to estimate the camera, got shape {tuple(shape)}")
    return movie, tuple(int(s) for s in shape)


def estimate(movie, *, em_gain: float = 1.0, frames: Optional[int] = None, progress: bool = False) -> CameraEstimate:
    """See :meth:`spotfit.Camera.estimate`."""
    movie, (n_frames, rows, cols) = _frames_of(movie)
    em_gain = float(em_gain)
    if not (np.isfinite(em_gain) and em_gain >= 1.0):
        raise ValueError(f"em_gain must be >= 1 (1 for a CCD or sCMOS camera), got {em_gain}")
    model = "emccd" if em_gain > 1.0 else "ccd"
    if frames is not None:
        if isinstance(frames, bool) or int(frames) != frames or frames < 1:
            raise ValueError(f"frames must be a positive whole number, got {frames!r}")
        n_frames = min(n_frames, int(frames))
    if n_frames < 2 * _MIN_PER_HALF:
        raise ValueError(f"estimating the camera needs at least {2 * _MIN_PER_HALF} frames, got {n_frames}")
    if rows < 8 or cols < 8:
        raise ValueError(f"estimating the camera needs frames of at least 8x8 pixels, got {rows}x{cols}")

    first = np.asarray(movie[:min(n_frames, _REFERENCE_FRAMES)], dtype=np.float64)
    if not np.isfinite(first).all():
        raise ValueError("the movie has NaN or infinite pixels")
    reference = np.median(first, axis=0)
    spread = 1.4826 * np.median(np.abs(first - reference), axis=0)
    usable = _usable_pixels(reference, spread, factor=3.0 if len(first) >= 48 else 10.0)
    if usable.sum() < 64:
        raise ValueError("too few pixels vary the way photon noise does to estimate the camera (a constant, dark, "
                         "saturated or already smoothed movie?)")
    del first

    # The grouping variable's bins: quantiles of the reference level (fixed numbers before any block).
    level = reference[usable]
    edges = np.unique(np.quantile(level, np.linspace(0, 1, _BINS + 1)[1:-1]))
    group = np.random.default_rng(0).integers(0, _GROUPS, size=(rows, cols))
    n_cells = (len(edges) + 1) * _GROUPS
    sums = np.zeros((9, n_cells))          # count, M, K2, K3, K4, M^2, K2^2, K3^2, K4^2
    kept = total = 0

    block = min(BLOCK_FRAMES, n_frames)
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n_frames, unit="frame", desc="camera")
    try:
        for a in range(0, n_frames - 2 * _MIN_PER_HALF + 1, block):
            b = min(a + block, n_frames)
            if n_frames - b < 2 * _MIN_PER_HALF:   # a short tail joins the last block
                b = n_frames
            x = np.asarray(movie[a:b], dtype=np.float64) - reference
            if not np.isfinite(x).all():
                raise ValueError(f"the movie has NaN or infinite pixels (frames {a}-{b - 1})")
            # the spot test against this block's own level, so a bleaching background does not hide spots
            level_now = np.median(x, axis=0)
            z = (x - level_now) / np.maximum(1.4826 * np.median(np.abs(x - level_now), axis=0), 0.5)
            keep = (_neighbour_z(z, 3) < _SPOT_Z) & (_neighbour_z(z, 7) < _SPOT_Z) & usable
            kept += int(keep.sum())
            total += int(usable.sum()) * (b - a)
            halves = [_k_statistics(x[h::2], keep[h::2]) for h in (0, 1)]
            for h in (0, 1):
                n, mean, k2, k3, k4 = halves[h]
                n_other, mean_other = halves[1 - h][:2]
                ok = (n >= _MIN_PER_HALF) & (n_other >= _MIN_PER_HALF)
                cell = np.searchsorted(edges, (reference + mean_other)[ok]) * _GROUPS + group[ok]
                m = (reference + mean)[ok]
                for i, v in enumerate((np.ones_like(m), m, k2[ok], k3[ok], k4[ok],
                                       m * m, k2[ok] ** 2, k3[ok] ** 2, k4[ok] ** 2)):
                    sums[i] += np.bincount(cell, weights=v, minlength=n_cells)
            if bar is not None:
                bar.update(b - a)
            if b == n_frames:
                break
    finally:
        if bar is not None:
            bar.close()

    sums = sums.reshape(9, len(edges) + 1, _GROUPS)
    c = CUMULANT_FACTORS[model]
    theta, chi2 = _fit(sums.sum(axis=2), c)
    jack = np.array([_fit(sums.sum(axis=2) - sums[:, :, j], c, start=theta)[0] for j in range(_GROUPS)])
    error = np.sqrt((_GROUPS - 1) / _GROUPS * ((jack - jack.mean(axis=0)) ** 2).sum(axis=0))
    g, o, r = theta
    g_err, o_err, r_err = error
    read_noise = float(np.sqrt(r)) if r > 0 else float("nan")
    read_noise_error = float(r_err / (2 * np.sqrt(r))) if r > 0 else float("nan")
    lo, hi = np.percentile(level, [5, 95])
    return CameraEstimate(
        baseline=float(o), baseline_error=float(o_err), gain=float(g), gain_error=float(g_err),
        read_noise=read_noise, read_noise_error=read_noise_error,
        sensitivity=float(em_gain / g), sensitivity_error=float(em_gain * g_err / g ** 2), em_gain=em_gain,
        noise_model=model, fit_chi2=float(chi2), brightness_range=(float(lo), float(hi)), frames=n_frames,
        pixels=int(usable.sum()), spot_fraction=float(1.0 - kept / max(total, 1)))


def _usable_pixels(reference: np.ndarray, spread: np.ndarray, factor: float) -> np.ndarray:
    """Pixels whose noise variance is within ``factor`` of others at the same level (not hot, dead or
    flickering). Wide enough that a normal pixel is never cut by the noise of its own spread estimate
    (~20 % on 64 frames: factor 3; ~50 % on a dozen: factor 10), which would bias its statistics."""
    order = np.argsort(reference, axis=None)
    var = (spread * spread).ravel()[order]
    # the running median of the variance over ~1 % of the pixels, by level
    from scipy.ndimage import median_filter
    width = max(5, (var.size // 100) | 1)
    typical = np.empty_like(var)
    typical[order] = median_filter(var, size=width, mode="nearest")
    typical = typical.reshape(reference.shape)
    pixel_var = spread * spread
    return (pixel_var <= factor * typical) & (pixel_var >= typical / factor) & (typical > 0)


def _fit(cells: np.ndarray, c, start=None):
    """Least-squares (g, o, r) of the cumulant model over the brightness bins; and its chi2 per dof."""
    from scipy.optimize import least_squares
    count, sm, s2, s3, s4, qm, q2, q3, q4 = cells
    ok = count >= 20
    if ok.sum() < 2:
        raise ValueError("too few pixel samples away from spots to estimate the camera (is the movie crowded "
                         "or tiny?)")
    count = count[ok]
    means = [s[ok] / count for s in (sm, s2, s3, s4)]
    errors = [np.sqrt(np.maximum(q[ok] / count - mu * mu, 1e-300) / (count - 1))
              for q, mu in zip((qm, q2, q3, q4), means)]
    m, k2, k3, k4 = means
    _, e2, e3, e4 = errors
    c2, c3, c4 = c
    if start is None:
        start = _start(m, k2, k3, k4, c)

    def residuals(p):
        g, o, r = p
        x = m - o
        return np.concatenate([(k2 - (c2 * g * x + r)) / e2, (k3 - c3 * g * g * x) / e3,
                               (k4 - c4 * g ** 3 * x) / e4])

    fit = least_squares(residuals, np.asarray(start, dtype=np.float64), x_scale="jac", method="lm")
    g = fit.x[0]
    if not (np.isfinite(fit.x).all() and g > 0):
        raise ValueError("the pixel statistics show no photon noise to measure a gain from (a dark, "
                         "saturated or already converted movie?)")
    dof = max(3 * len(m) - 3, 1)
    return fit.x, float(2 * fit.cost / dof)


def _start(m, k2, k3, k4, c):
    c2, c3, c4 = c
    w = np.ones_like(m)
    g = None
    if np.ptp(m) > 0:
        slope = np.polyfit(m, k2, 1, w=w)[0] / c2
        if np.isfinite(slope) and slope > 0:
            g = slope
    ratio = (k4.sum() / c4) / (k3.sum() / c3)
    if g is None or (np.isfinite(ratio) and ratio > 0 and np.ptp(m) < 3 * np.sqrt(k2.mean())):
        g = ratio if np.isfinite(ratio) and ratio > 0 else 1.0
    o = float(np.mean(m - k3 / (c3 * g * g)))
    r = float(np.mean(k2 - c2 * g * (m - o)))
    return g, o, r
