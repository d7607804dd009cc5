"""Simulated SMLM experiments with known truth: structures, blinking and stage drift.

Every post-processing step (drift correction, linking, NeNA, FRC) is tested against these: the table of
localizations comes with the true site, event and drift of every row, and the same emitters can be drawn
as a movie for the end-to-end path (movie -> localize -> undrift -> link -> render).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np
import pandas as pd

from ._shared import validate as _validate
from .camera import Camera

STRUCTURES = ("grid", "lines", "points")


@dataclass
class SMLMSimulation:
    """What :func:`simulate_smlm` made.

    locs : localizations as ``spotfit.localize`` reports them (``frame, x, y, photons, background, sigma,
        uncertainty_x, uncertainty_y``), in frame order, drifted and with localization noise.
    truth : one row per localization (same index as ``locs``): ``site``, ``event`` (one blink: consecutive
        on-frames of a site), ``x``, ``y`` (true position without drift), ``drift_x``, ``drift_y``.
    drift : one row per frame: ``frame, x, y``, the stage drift added to every position of that frame.
    sites : (n, 2) array of the structure's binding sites, columns x, y (px). For ``lines`` the sites are
        points along the lines and each blink lies at a random site.
    movie : (frames, rows, cols) ADU, only when asked for (``movie=True``); its spots are the true,
        drifted positions with the photons of ``locs``.
    """
    locs: pd.DataFrame
    truth: pd.DataFrame
    drift: pd.DataFrame
    sites: np.ndarray
    movie: Optional[np.ndarray] = None


def structure(kind: str = "grid", *, shape: Tuple[int, int] = (128, 128), count: int = 40,
              spacing: float = 0.6, border: float = 6.0, seed=None) -> np.ndarray:
    """Binding sites of a test structure, (n, 2) array of x, y in pixels.

    ``grid``: ``count`` DNA-origami-like 3x4 grids of sites ``spacing`` px apart, at random places at
    least 6 grid widths apart. ``lines``: ``count`` smooth microtubule-like curves sampled every 0.05 px.
    ``points``: ``count`` uniform random sites.
    """
    if kind not in STRUCTURES:
        raise ValueError(f"structure must be one of {STRUCTURES}, got {kind!r}")
    rows, cols = int(shape[0]), int(shape[1])
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count}")
    rng = np.random.default_rng(seed)
    lo = np.array([border, border])
    hi = np.array([cols - 1 - border, rows - 1 - border])
    if (hi <= lo).any():
        raise ValueError(f"border {border} leaves no room in a {rows}x{cols} field")
    if kind == "points":
        return rng.uniform(lo, hi, (count, 2))
    if kind == "grid":
        gx, gy = np.meshgrid(np.arange(4) - 1.5, np.arange(3) - 1.0)
        cell = np.column_stack([gx.ravel(), gy.ravel()]) * spacing
        centres = _spread(rng, count, lo + 2 * spacing, hi - 2 * spacing, 6 * 4 * spacing)
        return (centres[:, None, :] + cell[None]).reshape(-1, 2)
    out = []
    for _ in range(count):   # lines: a random walk of the direction, smoothed
        start = rng.uniform(lo, hi)
        steps = 400
        angle = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.02, steps))
        pts = start + np.cumsum(np.column_stack([np.cos(angle), np.sin(angle)]) * 0.05, axis=0)
        inside = ((pts >= lo) & (pts <= hi)).all(axis=1)
        out.append(pts[inside])
    return np.concatenate(out)


def _spread(rng, n, lo, hi, min_distance):
    """n points in [lo, hi] at least ``min_distance`` apart where the field allows (then closer)."""
    pts = []
    for _ in range(n):
        for _try in range(200):
            p = rng.uniform(lo, hi)
            if all(np.hypot(*(p - q)) >= min_distance for q in pts):
                break
        pts.append(p)
    return np.array(pts)


def drift_trajectory(frames: int, *, random_walk: float = 0.002, linear: Tuple[float, float] = (0.5, -0.3),
                     sine: Tuple[float, float] = (0.3, 0.0), jump: Optional[Tuple[int, float, float]] = None,
                     seed=None) -> pd.DataFrame:
    """Stage drift per frame (px): random walk (rms step ``random_walk`` per axis and frame, the AIM
    paper's benchmark) + a linear drift of ``linear`` px over the movie + a slow sine of amplitude
    ``sine[0]`` px over one movie length (phase ``sine[1]``), + an optional sudden ``jump = (frame, dx, dy)``
    from that frame on. Starts at 0 in frame 0.
    """
    frames = int(frames)
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / max(frames - 1, 1)
    d = np.cumsum(rng.normal(0.0, random_walk, (frames, 2)), axis=0)
    d -= d[0]
    d += np.outer(t, linear)
    amp, phase = sine
    d[:, 0] += amp * (np.sin(2 * np.pi * t + phase) - np.sin(phase))
    d[:, 1] += amp * (np.cos(2 * np.pi * t + phase) - np.cos(phase))
    if jump is not None:
        f, dx, dy = jump
        d[int(f):] += (dx, dy)
    return pd.DataFrame({"frame": np.arange(frames, dtype=np.int64), "x": d[:, 0], "y": d[:, 1]})


def blink(n_sites: int, frames: int, *, mean_on: float = 3.0, mean_off: float = 2000.0,
          seed=None) -> pd.DataFrame:
    """On-events of two-state blinking: each site alternates off and on periods with geometric lengths of
    mean ``mean_off`` and ``mean_on`` frames (a first-order kinetic scheme sampled once a frame), starting
    at a random phase. Returns one row per event: ``site``, ``start``, ``length`` (frames, >= 1), in start
    order, clipped to the movie."""
    if mean_on < 1 or mean_off < 1:
        raise ValueError(f"mean_on and mean_off must be >= 1 frame, got {mean_on}, {mean_off}")
    rng = np.random.default_rng(seed)
    cycle = mean_on + mean_off
    k = int(np.ceil(frames / cycle * 1.5 + 6 * np.sqrt(frames / cycle + 1) + 4))   # cycles per site, generous
    off = rng.geometric(1.0 / mean_off, (n_sites, k))
    on = rng.geometric(1.0 / mean_on, (n_sites, k))
    # Random phase: start somewhere inside the first cycle so that frame 0 is not special.
    start = np.cumsum(off + on, axis=1) - on - rng.integers(0, int(np.ceil(cycle)) + 1, (n_sites, 1))
    site = np.broadcast_to(np.arange(n_sites)[:, None], start.shape)
    end = np.minimum(start + on, frames)
    start = np.maximum(start, 0)
    keep = end > start
    ev = pd.DataFrame({"site": site[keep], "start": start[keep], "length": (end - start)[keep]})
    return ev.sort_values(["start", "site"], kind="stable").reset_index(drop=True)


def simulate_smlm(structure_kind: Union[str, np.ndarray] = "grid", *, frames: int = 2000,
                  shape: Tuple[int, int] = (64, 64), count: int = 12, spacing: float = 0.6,
                  mean_on: float = 3.0, mean_off: Optional[float] = None, photons: float = 3000.0,
                  background: float = 20.0, psf_sigma: float = 1.0,
                  drift: Union[None, str, pd.DataFrame] = "default", movie: bool = False,
                  camera: Optional[Camera] = None, seed=None, partial_frames: bool = True) -> SMLMSimulation:
    """A simulated SMLM experiment: a structure, blinking emitters, localizations with their precision,
    and stage drift.

    ``structure_kind``: ``"grid"``, ``"lines"``, ``"points"`` (see :func:`structure`) or an (n, 2) array of
    sites. ``mean_off`` defaults to keeping ~2 % of sites on per frame. ``photons`` is the photons of a
    whole on-frame (first and last frames of a blink get a uniform fraction of it, unless ``partial_frames``
    is False: then every localization has ``photons`` and the same precision). ``drift``:
    ``"default"`` (random walk 0.002 px/frame + linear + slow sine, :func:`drift_trajectory`), ``None``
    (no drift) or a table ``frame, x, y`` covering every frame.

    Each localization is the true drifted position plus Gaussian noise of its Mortensen precision (eq. 5,
    MLE; Mortensen et al. 2010, Nat. Methods 7:377), which is also its ``uncertainty_x/y``.
    """
    from .bounds import mortensen
    frames = int(frames)
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    photons = _validate.positive("photons", photons)
    background = _validate.positive("background", background, allow_zero=True)
    psf_sigma = _validate.positive("psf_sigma", psf_sigma)
    rng = np.random.default_rng(seed)
    if isinstance(structure_kind, str):
        sites = structure(structure_kind, shape=shape, count=count, spacing=spacing, seed=rng)
    else:
        sites = np.asarray(structure_kind, dtype=np.float64)
        if sites.ndim != 2 or sites.shape[1] != 2 or not len(sites):
            raise ValueError(f"sites must be an (n, 2) array of x, y, got shape {sites.shape}")
    lines = isinstance(structure_kind, str) and structure_kind == "lines"
    n_emitters = 400 if lines else len(sites)   # lines: 400 binding places, each blink at a random site
    if mean_off is None:
        mean_off = max(mean_on * 49.0, 1.0)
    if drift is None:
        drift = pd.DataFrame({"frame": np.arange(frames), "x": 0.0, "y": 0.0})
    elif isinstance(drift, str):
        if drift != "default":
            raise ValueError(f"drift must be 'default', None or a table, got {drift!r}")
        drift = drift_trajectory(frames, seed=rng)
    else:
        drift = pd.DataFrame(drift)
        if not {"frame", "x", "y"} <= set(drift) or len(drift) < frames or \
                not np.array_equal(drift["frame"].to_numpy()[:frames], np.arange(frames)):
            raise ValueError("drift must be a table with frame, x, y for every frame 0..frames-1")
        drift = drift.iloc[:frames].reset_index(drop=True)

    events = blink(n_emitters, frames, mean_on=mean_on, mean_off=mean_off, seed=rng)
    ev_site = events["site"].to_numpy()
    if lines:
        ev_site = rng.integers(0, len(sites), len(events))
    length = events["length"].to_numpy()
    n = int(length.sum())
    event = np.repeat(np.arange(len(events)), length)
    offset = np.arange(n) - np.repeat(np.cumsum(length) - length, length)
    frame = np.repeat(events["start"].to_numpy(), length) + offset
    # Partial first/last frames: the blink starts or ends somewhere inside the exposure.
    frac = np.ones(n)
    first = offset == 0
    last = offset == np.repeat(length - 1, length)
    frac[first] = rng.uniform(0.1, 1.0, first.sum())
    frac[last] *= rng.uniform(0.1, 1.0, last.sum())
    if not partial_frames:   # the same draws are made, so the rest of the simulation does not change
        frac[:] = 1.0
    ph = photons * frac
    site_xy = sites[np.repeat(ev_site, length)]
    dxy = drift[["x", "y"]].to_numpy()[frame]
    grid = np.geomspace(ph.min() * 0.999, photons * 1.001, 64)
    unc = np.interp(ph, grid, mortensen(grid, background, psf_sigma))
    noisy = site_xy + dxy + rng.normal(0.0, 1.0, (n, 2)) * unc[:, None]
    order = np.argsort(frame, kind="stable")
    locs = pd.DataFrame({"frame": frame, "x": noisy[:, 0], "y": noisy[:, 1], "photons": ph,
                         "background": background, "sigma": psf_sigma,
                         "uncertainty_x": unc, "uncertainty_y": unc}).iloc[order].reset_index(drop=True)
    truth = pd.DataFrame({"site": np.repeat(ev_site, length), "event": event,
                          "x": site_xy[:, 0], "y": site_xy[:, 1],
                          "drift_x": dxy[:, 0], "drift_y": dxy[:, 1]}).iloc[order].reset_index(drop=True)
    locs["frame"] = locs["frame"].astype(np.int64)
    sim = SMLMSimulation(locs=locs, truth=truth, drift=drift, sites=sites)
    if movie:
        sim.movie = _movie(sim, frames, shape, background, psf_sigma, camera, rng)
    return sim


def _movie(sim, frames, shape, background, psf_sigma, camera, rng):
    from scipy import sparse

    from .simulate import integrated_gaussian
    camera = Camera() if camera is None else camera
    rows, cols = int(shape[0]), int(shape[1])
    out = np.empty((frames, rows, cols), np.uint16)
    fr = sim.locs["frame"].to_numpy()
    x = sim.truth["x"].to_numpy() + sim.truth["drift_x"].to_numpy()
    y = sim.truth["y"].to_numpy() + sim.truth["drift_y"].to_numpy()
    ph = sim.locs["photons"].to_numpy()
    bounds = np.searchsorted(fr, np.arange(0, frames + 256, 256))
    for k, first in enumerate(range(0, frames, 256)):   # blocks of frames: vectorized, bounded memory
        last = min(first + 256, frames)
        s = slice(bounds[k], bounds[k + 1])
        spots = ph[s, None, None] * integrated_gaussian(y[s], psf_sigma, rows)[:, :, None] \
            * integrated_gaussian(x[s], psf_sigma, cols)[:, None, :]
        n = spots.shape[0]
        in_frame = sparse.csr_matrix((np.ones(n), (fr[s] - first, np.arange(n))), shape=(last - first, n))
        mu = float(background) + (in_frame @ spots.reshape(n, -1)).reshape(last - first, rows, cols)
        out[first:last] = np.clip(np.rint(camera.to_adu(rng.poisson(mu))), 0, 65535)
    return out
