"""Precision and resolution of a localization table: NeNA and Fourier ring correlation."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from .._shared import validate as _validate

__all__ = ["NenaResult", "FRCResult", "nena", "frc", "FRC_THRESHOLD"]

#: The fixed FRC threshold of Nieuwenhuizen et al. 2013 (Nat. Methods 10:557).
FRC_THRESHOLD = 1.0 / 7.0


def _xyf(locs):
    _validate.localization_table(locs, "measure")
    f = locs["frame"].to_numpy()
    if f.dtype.kind not in "iuf" or (f.dtype.kind == "f" and (~np.isfinite(f) | (f != np.round(f))).any()):
        raise ValueError("frame must hold whole numbers")
    x = locs["x"].to_numpy(np.float64)
    y = locs["y"].to_numpy(np.float64)
    bad = ~(np.isfinite(x) & np.isfinite(y))
    if bad.any():
        raise ValueError(f"x or y is NaN or infinite in {int(bad.sum())} row(s) (first at row {int(np.argmax(bad))})")
    return f.astype(np.int64), x, y


def _median_uncertainty(locs) -> Optional[float]:
    cols = [c for c in ("uncertainty_x", "uncertainty_y") if c in locs.columns]
    if not cols:
        return None
    u = locs[cols].to_numpy(np.float64).ravel()
    u = u[np.isfinite(u) & (u > 0)]
    return float(np.median(u)) if len(u) else None


# ------------------------------------------------------------------------------------------------ NeNA

@dataclass
class NenaResult:
    """What :func:`nena` found.

    precision : the fitted localization precision per axis, px (``precision_nm`` in nm when the pixel size
        is known).
    curve : table ``distance`` (px, bin centre), ``density`` (histogram of next-frame nearest-neighbour
        distances, normalised to unit area over [0, max_distance]), ``fit`` (the fitted density).
    fraction_same : fitted share of pairs that are the same emitter (the rest are random neighbours).
    uncertainty_scale : with ``uncertainty_x/y`` columns, the factor k that makes the reported uncertainties
        fit the distances (each pair's Rayleigh scale k * sqrt(u_i^2 + u_j^2)): 1 when they are right.
    median_precision : k x the median reported uncertainty, px: the median precision when precisions vary
        (the single-scale fit lies between the median and the rms of a wide spread of precisions).
    n_pairs : pairs within ``max_distance``.
    """
    precision: float
    precision_nm: Optional[float]
    curve: pd.DataFrame
    fraction_same: float
    n_pairs: int
    max_distance: float
    uncertainty_scale: Optional[float] = None
    median_precision: Optional[float] = None


def _nena_pdf(d, sigma, a, dmax):
    # Endesfelder et al. 2014 (Histochem. Cell Biol. 141:629): the distance between two localizations of one
    # emitter (each N(0, sigma^2) per axis) is Rayleigh with scale sqrt(2) sigma:
    # d / (2 sigma^2) exp(-d^2 / (4 sigma^2)); random neighbours add a term linear in d. Both are normalised
    # on [0, dmax] (the paper's short-range Gaussian term is left out).
    same = d / (2 * sigma ** 2) * np.exp(-d ** 2 / (4 * sigma ** 2)) / -np.expm1(-dmax ** 2 / (4 * sigma ** 2))
    return a * same + (1 - a) * 2 * d / dmax ** 2


def next_frame_distances(frame, x, y, max_distance: float):
    """Distance from each localization to its nearest neighbour in the next frame, where one lies within
    ``max_distance`` (px): (distances, row of the localization, row of the neighbour)."""
    from scipy.spatial import cKDTree
    # One tree over (x, y, frame * step): a step longer than max_distance keeps other frames out of reach.
    step = 2.0 * max_distance + 1.0
    z = (frame - frame.min()).astype(np.float64) * step
    tree = cKDTree(np.column_stack([x, y, z]), balanced_tree=False, compact_nodes=False)
    d, j = tree.query(np.column_stack([x, y, z + step]), k=1, distance_upper_bound=max_distance, workers=-1)
    ok = np.isfinite(d) & (d > 0)
    return d[ok], np.nonzero(ok)[0], j[ok]


def nena(locs: pd.DataFrame, *, max_distance: Optional[float] = None, bins: int = 60,
         pixel_size_nm: Optional[float] = None) -> NenaResult:
    """Localization precision from the distances of next-frame nearest neighbours (NeNA; Endesfelder et al.
    2014, Histochem. Cell Biol. 141:629).

    A localization and its nearest neighbour in the next frame are mostly the same emitter (a blink lasting
    two frames or more): their distances follow a Rayleigh law of scale ``sqrt(2) * precision``, plus a term
    linear in the distance for random neighbours. Both are fitted by maximum likelihood to the distances
    themselves (no binning); the histogram is only for the curve.

    Parameters
    ----------
    locs : pandas.DataFrame
        ``frame``, ``x``, ``y`` (px); unlinked localizations (after drift correction if the drift is fast).
    max_distance : float, optional
        Largest distance fitted, px. Default: 12 x the median ``uncertainty_x/y`` when present, else 1 px.
    bins : int
        Bins of the curve.
    pixel_size_nm : float, optional
        Camera pixel size, nm, for ``precision_nm``; default ``locs.attrs["spotfit"]["pixel_size_nm"]``.

    Returns
    -------
    NenaResult
    """
    frame, x, y = _xyf(locs)
    if len(np.unique(frame)) < 2:
        raise ValueError("NeNA needs localizations in at least two consecutive frames; the table has one frame")
    if max_distance is None:
        med = _median_uncertainty(locs)
        max_distance = 12.0 * med if med else 1.0
    max_distance = _validate.positive("max_distance", max_distance)
    bins = _validate.integer("bins", bins, 2, 100_000)
    d, rows_i, rows_j = next_frame_distances(frame, x, y, max_distance)
    if len(d) < 20:
        raise ValueError(f"NeNA found only {len(d)} next-frame neighbour pairs within {max_distance:g} px: too few "
                         "to fit (are there blinks longer than one frame? raise max_distance?)")
    from scipy.optimize import minimize

    def nll(p):
        sigma, a = np.exp(p[0]), 1 / (1 + np.exp(-p[1]))
        return -np.sum(np.log(_nena_pdf(d, sigma, a, max_distance) + 1e-300))

    # Start: the Rayleigh median is 1.177 * sqrt(2) sigma.
    s0 = np.clip(np.median(d) / 1.665, 1e-4 * max_distance, 0.5 * max_distance)
    best = None
    for start in (s0, 0.5 * s0, 0.2 * max_distance):
        res = minimize(nll, [np.log(start), 1.0], method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-6,
                                                                                   "maxiter": 2000})
        if best is None or res.fun < best.fun:
            best = res
    sigma, a = float(np.exp(best.x[0])), float(1 / (1 + np.exp(-best.x[1])))
    scale = median_precision = None
    if {"uncertainty_x", "uncertainty_y"} <= set(locs.columns):
        u2 = 0.5 * (locs["uncertainty_x"].to_numpy(np.float64) ** 2 + locs["uncertainty_y"].to_numpy(np.float64) ** 2)
        v = u2[rows_i] + u2[rows_j]      # per-axis variance of each pair's difference, up to k^2
        if np.isfinite(v).all() and (v > 0).all():
            scale = _fit_scale(d, v, a, max_distance)
            median_precision = scale * float(np.median(np.sqrt(u2[np.isfinite(u2)])))
    edges = np.linspace(0.0, max_distance, bins + 1)
    hist, _ = np.histogram(d, edges, density=True)
    centres = 0.5 * (edges[1:] + edges[:-1])
    curve = pd.DataFrame({"distance": centres, "density": hist, "fit": _nena_pdf(centres, sigma, a, max_distance)})
    px = pixel_size_nm if pixel_size_nm is not None else _pixel_nm(locs)
    if px is not None:
        px = _validate.pixel_size_nm(px)
    return NenaResult(precision=sigma, precision_nm=None if px is None else sigma * px, curve=curve,
                      fraction_same=a, n_pairs=int(len(d)), max_distance=float(max_distance),
                      uncertainty_scale=scale, median_precision=median_precision)


def _fit_scale(d, v, a0, dmax) -> float:
    """k of the pairwise Rayleigh law d / (k^2 v) exp(-d^2 / (2 k^2 v)) (+ the linear term of random pairs)."""
    from scipy.optimize import minimize

    def nll(p):
        k2, a = np.exp(2 * p[0]), 1 / (1 + np.exp(-p[1]))
        kv = k2 * v
        same = d / kv * np.exp(-d ** 2 / (2 * kv)) / -np.expm1(-dmax ** 2 / (2 * kv))
        return -np.sum(np.log(a * same + (1 - a) * 2 * d / dmax ** 2 + 1e-300))

    a0 = min(max(a0, 0.01), 0.99)
    res = minimize(nll, [0.0, np.log(a0 / (1 - a0))], method="Nelder-Mead",
                   options={"xatol": 1e-6, "fatol": 1e-6, "maxiter": 2000})
    return float(np.exp(res.x[0]))


def _pixel_nm(locs) -> Optional[float]:
    md = locs.attrs.get("spotfit") if isinstance(getattr(locs, "attrs", None), dict) else None
    px = md.get("pixel_size_nm") if isinstance(md, dict) else None
    return float(px) if px else None


# ------------------------------------------------------------------------------------------------- FRC

@dataclass
class FRCResult:
    """What :func:`frc` found.

    resolution_nm : 1 / (spatial frequency where the smoothed FRC first falls below 1/7), nm; NaN if it never
        does within the image's frequencies.
    curve : table ``frequency`` (1/nm), ``frc``, ``frc_smooth``.
    render_pixel_nm : pixel of the two images, nm. block_frames : frames per block of the split (0: random).
    """
    resolution_nm: float
    curve: pd.DataFrame
    threshold: float
    render_pixel_nm: float
    block_frames: int
    n_locs: tuple = field(default=(0, 0))


def _ring_sums(a: np.ndarray, r: np.ndarray, n: int) -> np.ndarray:
    return np.bincount(r.ravel(), a.ravel(), minlength=n)[:n]


def frc(locs: pd.DataFrame, *, pixel_size_nm: Optional[float] = None, render_pixel_nm: Optional[float] = None,
        block_frames: Optional[int] = None, split: str = "blocks", seed=0, max_image: int = 4096,
        smooth: Optional[int] = None) -> FRCResult:
    """Image resolution by Fourier ring correlation (Nieuwenhuizen et al. 2013, Nat. Methods 10:557) at the
    fixed 1/7 threshold.

    The localizations are split into two halves, two histogram images are rendered, and the correlation of
    their Fourier transforms over rings of equal spatial frequency is the curve. By default the halves are
    alternate blocks of ``block_frames`` frames, so that the localizations of one blink (consecutive frames)
    fall in one half: a random split of the rows puts one blink on both sides, which correlates the halves
    beyond the structure and reports a better resolution than the data hold.

    Parameters
    ----------
    locs : pandas.DataFrame
        ``frame``, ``x``, ``y`` (px), drift-corrected.
    pixel_size_nm : float
        Camera pixel size, nm (default ``locs.attrs["spotfit"]["pixel_size_nm"]``; required).
    render_pixel_nm : float, optional
        Pixel of the rendered images, nm. Default: half the median ``uncertainty_x/y`` (else 10 nm), made larger
        if the image would exceed ``max_image`` pixels a side.
    block_frames : int, optional
        Frames per block; default ``max(20, frames // 20)``. There must be at least two blocks.
    split : {"blocks", "random"}
        ``"random"``: a random half of the rows (as Picasso does), for comparison.
    seed : int
        Seed of the random split.
    max_image : int
        Largest image side, pixels.
    smooth : int, optional
        Width (rings) of the running mean of the curve; default max(3, side // 100), odd.

    Returns
    -------
    FRCResult
    """
    frame, x, y = _xyf(locs)
    px = pixel_size_nm if pixel_size_nm is not None else _pixel_nm(locs)
    if px is None:
        raise ValueError("frc needs the camera pixel size: pass pixel_size_nm= (nm)")
    px = _validate.pixel_size_nm(px)
    split = _validate.choice("split", split, ("blocks", "random"))
    max_image = _validate.integer("max_image", max_image, 16, 65536)
    f0, f1 = int(frame.min()), int(frame.max())
    if split == "blocks":
        if block_frames is None:
            block_frames = max(20, (f1 - f0 + 1) // 20)
        block_frames = _validate.integer("block_frames", block_frames, 1)
        block = (frame - f0) // block_frames
        if block.max() < 1:
            raise ValueError(f"frc splits the frames into blocks of {block_frames}: the table spans "
                             f"{f1 - f0 + 1} frame(s), fewer than two blocks (lower block_frames)")
        half = (block % 2).astype(bool)
    else:
        block_frames = 0
        rng = np.random.default_rng(seed)
        half = np.zeros(len(x), bool)
        half[rng.permutation(len(x))[: len(x) // 2]] = True
    if half.all() or not half.any() or len(x) < 4:
        raise ValueError("frc needs localizations in both halves")
    if render_pixel_nm is None:
        med = _median_uncertainty(locs)
        render_pixel_nm = 0.5 * med * px if med else 10.0
    render = _validate.positive("render_pixel_nm", render_pixel_nm) / px   # px
    # A square field around the localizations (the FFT of a square image has circular rings).
    lo = np.array([x.min(), y.min()])
    side = float(max(x.max() - lo[0], y.max() - lo[1])) + render
    n = int(np.ceil(side / render))
    if n > max_image:
        render = side / max_image
        n = max_image
    imgs = []
    for h in (False, True):
        sel = half == h
        col = np.minimum(((x[sel] - lo[0]) / render).astype(np.int64), n - 1)
        row = np.minimum(((y[sel] - lo[1]) / render).astype(np.int64), n - 1)
        imgs.append(np.bincount(row * n + col, minlength=n * n).reshape(n, n).astype(np.float64))
    from scipy.signal.windows import tukey
    win = tukey(n, 0.25)
    window = np.outer(win, win)   # suppresses the edges' spurious high frequencies
    from scipy import fft as _fft
    # Real images: the half-plane of rfft2 holds every ring (F(-q) = conj F(q)), at half the cost.
    f_a = _fft.rfft2(imgs[0] * window, workers=-1)
    f_b = _fft.rfft2(imgs[1] * window, workers=-1)
    del imgs
    c = n // 2
    fy = np.fft.fftfreq(n) * n
    fx = np.arange(f_a.shape[1], dtype=np.float64)
    r = np.rint(np.hypot(fy[:, None], fx[None, :])).astype(np.int64)
    rings = c + 1   # full rings only
    num = _ring_sums(np.real(f_a * np.conj(f_b)), r, rings)
    den = np.sqrt(_ring_sums(np.abs(f_a) ** 2, r, rings) * _ring_sums(np.abs(f_b) ** 2, r, rings))
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = np.where(den > 0, num / den, 0.0)
    if smooth is None:
        smooth = max(3, n // 100)
    smooth = _validate.integer("smooth", smooth, 1)
    smooth += smooth % 2 == 0
    pad = np.pad(curve, smooth // 2, mode="edge")
    smoothed = np.convolve(pad, np.ones(smooth) / smooth, mode="valid")
    freq = np.arange(rings) / (n * render * px)   # 1/nm
    resolution = np.nan
    below = np.nonzero(smoothed[1:] < FRC_THRESHOLD)[0]
    if len(below):
        i = below[0] + 1
        # linear interpolation of the crossing between rings i-1 and i
        t = (smoothed[i - 1] - FRC_THRESHOLD) / (smoothed[i - 1] - smoothed[i])
        q = freq[i - 1] + t * (freq[i] - freq[i - 1])
        resolution = float(1.0 / q) if q > 0 else np.nan
    table = pd.DataFrame({"frequency": freq, "frc": curve, "frc_smooth": smoothed})
    return FRCResult(resolution_nm=resolution, curve=table, threshold=FRC_THRESHOLD,
                     render_pixel_nm=float(render * px), block_frames=int(block_frames),
                     n_locs=(int((~half).sum()), int(half.sum())))
