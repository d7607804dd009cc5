"""Spot quality data and reports: a simulated set of good and bad spots with truth labels, and the
classification report (accuracy, per-class precision/recall, ROC AUC, confusion matrix, PNG grid).

Used with :mod:`spotfit.classify` (which re-exports these names).
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import pandas as pd

from .._shared.optional import need
from .._shared.warnings import SpotfitWarning
from ..camera import Camera
from ..core import localize
from ..simulate import expected_image
from .patches import extract_patches


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------

def quality_report(labels, p_good, *, threshold: float = 0.5, patches=None, png=None, n_examples: int = 16,
                   seed: int = 0) -> dict:
    """Accuracy, precision/recall per class, ROC AUC and confusion matrix; optionally a PNG.

    Parameters
    ----------
    labels : (n,) bool, reference labels (True = good)
    p_good : (n,) float, predicted probability of good (or bool predictions)
    patches : (n, size, size), optional; with ``png``, a grid of ``n_examples`` good and bad spots
        (tiles framed green where the prediction agrees with the label, red where not) is written
        with matplotlib. Without matplotlib the PNG is skipped with a warning and the reason is
        put in ``report["png_skipped"]``.

    Returns
    -------
    dict with n, accuracy, roc_auc (NaN with one class), per_class (DataFrame: precision, recall,
    f1, support for "bad"/"good"), confusion (DataFrame, rows = label, columns = predicted), png.
    """
    y = np.asarray(labels).astype(bool)
    p = np.asarray(p_good, dtype=np.float64)
    if y.ndim != 1 or p.shape != y.shape:
        raise ValueError(f"labels and p_good must be 1D of the same length, got {y.shape} and {p.shape}")
    pred = p >= threshold
    names = ["bad", "good"]
    conf = pd.DataFrame([[int(np.sum(~y & ~pred)), int(np.sum(~y & pred))], [int(np.sum(y & ~pred)), int(np.sum(y & pred))]],
                        index=pd.Index(names, name="label"), columns=pd.Index(names, name="predicted"))
    rows = []
    for k, cls in enumerate((False, True)):
        tp = conf.iloc[k, k]
        prec = tp / max(conf.iloc[:, k].sum(), 1)
        rec = tp / max(conf.iloc[k, :].sum(), 1)
        rows.append({"precision": prec, "recall": rec, "f1": 2 * prec * rec / max(prec + rec, 1e-12),
                     "support": int(conf.iloc[k, :].sum())})
    auc = float("nan")
    if y.any() and not y.all():
        from scipy.stats import rankdata  # Mann-Whitney form of the ROC AUC (Hanley & McNeil 1982)
        r = rankdata(p)
        auc = float((r[y].sum() - y.sum() * (y.sum() + 1) / 2) / (y.sum() * (~y).sum()))
    rep = {"n": int(len(y)), "accuracy": float(np.mean(pred == y)) if len(y) else float("nan"), "roc_auc": auc,
           "per_class": pd.DataFrame(rows, index=names), "confusion": conf, "png": None}
    if png is not None:
        if patches is None:
            raise ValueError("png needs the patches")
        try:
            need("matplotlib", "the PNG of examples")
        except ImportError:
            rep["png_skipped"] = "matplotlib is not installed: no PNG written (`pip install spotfit[plot]`)"
            warnings.warn(rep["png_skipped"], SpotfitWarning, stacklevel=2)
        else:
            rep["png"] = str(_example_grid(np.asarray(patches), y, p, pred, Path(png), n_examples, seed))
    return rep


def format_report(rep: dict) -> str:
    """Plain-text table of a :func:`quality_report` result."""
    lines = [f"spots {rep['n']}   accuracy {rep['accuracy']:.4f}   ROC AUC {rep['roc_auc']:.4f}", "",
             rep["per_class"].to_string(float_format=lambda v: f"{v:.4f}"), "", "confusion matrix:",
             rep["confusion"].to_string()]
    if rep.get("png"):
        lines.append(f"examples: {rep['png']}")
    if rep.get("png_skipped"):
        lines.append(rep["png_skipped"])
    return "\n".join(lines)


def _example_grid(patches, y, p, pred, path: Path, n_examples: int, seed: int) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    rng = np.random.default_rng(seed)
    cols = 8
    groups = []
    for cls, title in ((True, "labelled good"), (False, "labelled bad")):
        idx = np.flatnonzero(y == cls)
        wrong, right = idx[pred[idx] != cls], idx[pred[idx] == cls]
        k_wrong = min(len(wrong), n_examples // 4)  # show some mistakes, mostly typical spots
        pick = np.concatenate([rng.permutation(wrong)[:k_wrong], rng.permutation(right)[:n_examples - k_wrong]])
        groups.append((title, pick))
    nrows = sum(max(1, -(-len(g) // cols)) for _, g in groups)
    fig = Figure(figsize=(cols * 1.2, nrows * 1.35 + 0.6))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(nrows, cols, hspace=0.45, wspace=0.1)
    row = 0
    for title, pick in groups:
        for j, i in enumerate(pick):
            ax = fig.add_subplot(grid[row + j // cols, j % cols])
            ax.imshow(patches[i], cmap="gray", interpolation="nearest")
            ok = pred[i] == y[i]
            for s in ax.spines.values():
                s.set_color("tab:green" if ok else "tab:red")
                s.set_linewidth(2.5)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"p={p[i]:.2f}", fontsize=7, color="black" if ok else "tab:red")
            if j == 0:
                ax.set_ylabel(title, fontsize=8)
        row += max(1, -(-len(pick) // cols))
    fig.suptitle("spot examples: p = P(good); red frame = classifier disagrees with label", fontsize=9)
    fig.savefig(path, dpi=110)
    return path


# --------------------------------------------------------------------------
# simulation with truth labels
# --------------------------------------------------------------------------

class QualitySet(NamedTuple):
    """Result of :func:`simulate_quality_set`."""

    movie: np.ndarray     #: (frames, rows, cols) uint16 ADU
    camera: Camera        #: the camera used
    sites: pd.DataFrame   #: one row per simulated site: frame, x, y, kind, photons, sigma, separation
    locs: pd.DataFrame    #: localize() output + "kind" (site kind or "spurious") and "truth" (bool)
    patches: np.ndarray   #: (len(locs), size, size) photons around each localization


KINDS = ("good", "double", "defocus", "dim", "hot")


def simulate_quality_set(n: int = 3000, seed: Optional[int] = None, *, psf_sigma: float = 1.3,
                         background: float = 20.0, fractions=(0.5, 0.125, 0.125, 0.125, 0.125), size: int = 9,
                         spacing: int = 12, grid: int = 8, camera: Optional[Camera] = None) -> QualitySet:
    """Simulate good and bad spots with truth labels, localize them and cut their patches.

    ``n`` sites are laid on a ``grid`` x ``grid`` lattice (``spacing`` px, positions jittered by
    ±0.5 px) in each frame, on a uniform background (photons/px), with Poisson noise; each site is
    one of (``fractions`` in this order):

    - ``good``: one emitter, photons log-uniform in [800, 5000], sigma = ``psf_sigma``;
    - ``double``: two emitters 1.5-2.5 px apart (1.15-1.9 sigma), photons N and 0.6-1.0 N. Closer
      pairs differ from one Gaussian by less than the shot noise and cannot be labelled per spot;
    - ``defocus``: sigma 1.5-2.0x ``psf_sigma``, photons log-uniform in [1500, 8000];
    - ``dim``: one emitter of 100-300 photons;
    - ``hot``: one pixel 200-2000 photons above background (a camera defect, no PSF).

    The movie is localized with ``model="elliptical"`` and an absolute detection threshold of
    6 photons on the W2 wavelet plane (≈1.5 std of W1 on the background; the default relative
    threshold would be raised by the dense lattice of bright spots). Each localization takes the
    kind of the nearest site within 3 px ("spurious" otherwise); ``truth`` is kind == "good".
    """
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.shape != (len(KINDS),) or (fr < 0).any() or fr.sum() <= 0:
        raise ValueError(f"fractions must be {len(KINDS)} non-negative numbers for {KINDS}")
    if spacing < size + 2:
        raise ValueError(f"spacing {spacing} must be >= size + 2 = {size + 2}")
    camera = Camera(baseline=100, sensitivity=0.5) if camera is None else camera
    rng = np.random.default_rng(seed)
    kinds = rng.choice(len(KINDS), size=int(n), p=fr / fr.sum())
    per = grid * grid
    shape = (grid * spacing, grid * spacing)
    frames = -(-int(n) // per)
    movie = np.empty((frames,) + shape, np.uint16)
    sites = []
    for f in range(frames):
        mu = np.full(shape, float(background))
        xs, ys, ns = [], [], []
        for j, k in enumerate(kinds[f * per:(f + 1) * per]):
            cy = (j // grid + 0.5) * spacing - 0.5 + rng.uniform(-0.5, 0.5)
            cx = (j % grid + 0.5) * spacing - 0.5 + rng.uniform(-0.5, 0.5)
            kind, sep, sigma = KINDS[k], 0.0, psf_sigma
            if kind == "good":
                ph = np.exp(rng.uniform(np.log(800), np.log(5000)))
                em = [(cx, cy, ph)]
            elif kind == "double":
                sep, ang = rng.uniform(1.5, 2.5), rng.uniform(0, np.pi)
                ph = np.exp(rng.uniform(np.log(800), np.log(5000)))
                dx, dy = sep / 2 * np.cos(ang), sep / 2 * np.sin(ang)
                em = [(cx + dx, cy + dy, ph), (cx - dx, cy - dy, ph * rng.uniform(0.6, 1.0))]
                ph = em[0][2] + em[1][2]
            elif kind == "defocus":
                sigma = psf_sigma * rng.uniform(1.5, 2.0)
                ph = np.exp(rng.uniform(np.log(1500), np.log(8000)))
                em = [(cx, cy, ph)]
            elif kind == "dim":
                ph = rng.uniform(100, 300)
                em = [(cx, cy, ph)]
            else:
                ph, em = rng.uniform(200, 2000), []
                cx, cy = float(np.rint(cx)), float(np.rint(cy))
                mu[int(cy), int(cx)] += ph
            if kind == "defocus":
                mu += expected_image(shape, [cx], [cy], [ph], 0.0, sigma)
            else:
                for x, y, p in em:
                    xs.append(x), ys.append(y), ns.append(p)
            sites.append((f, cx, cy, kind, ph, sigma, sep))
        if xs:
            mu += expected_image(shape, np.array(xs), np.array(ys), np.array(ns), 0.0, psf_sigma)
        movie[f] = np.clip(np.rint(camera.to_adu(rng.poisson(mu))), 0, 65535)
    sites = pd.DataFrame(sites, columns=["frame", "x", "y", "kind", "photons", "sigma", "separation"])
    sites["kind"] = pd.Categorical(sites["kind"], categories=KINDS)
    locs = localize(movie, camera=camera, psf_sigma=psf_sigma, model="elliptical", threshold=6.0,
                         threshold_mode="absolute", threads=None)
    from scipy.spatial import cKDTree
    big = 4.0 * max(shape)  # frames stacked far apart along y: one tree for all frames
    tree = cKDTree(np.c_[sites["x"], sites["y"] + sites["frame"] * big])
    dist, idx = tree.query(np.c_[locs["x"], locs["y"] + locs["frame"] * big])
    kind = np.where(dist < 3, sites["kind"].astype(str).to_numpy()[np.minimum(idx, len(sites) - 1)], "spurious")
    locs["kind"] = pd.Categorical(kind, categories=KINDS + ("spurious",))
    locs["truth"] = kind == "good"
    return QualitySet(movie, camera, sites, locs, extract_patches(movie, locs, size, camera=camera))
