"""Linking: localizations of one emitter in consecutive frames (one blink) become one event.

The search runs in the C++ core (``spotcore::link``): frame by frame, a hashed grid of the open events'
weighted mean positions, candidates taken greedily from the closest; the core also sums each event's photons,
backgrounds and sigmas. Here: the checks, the default radius from the uncertainties, and the table.
"""
from __future__ import annotations

import numbers
from typing import Optional

import numpy as np
import pandas as pd

from .. import _spotcore
from .._shared import threads as _threads
from .._shared import validate as _validate

__all__ = ["link", "GATE", "event_table"]

#: Default gate (in standard deviations of the difference) of a localization joining an open event: the
#: difference of two independent positions is Gaussian with the summed variances, so a true continuation
#: fails the gate with probability exp(-GATE**2 / 2) ~= 1e-4 (chi-square, 2 degrees of freedom).
GATE = 4.3

#: Uncertainty quantile that sets the search radius when it comes from the uncertainties: rows above it
#: (badly fitted, 0.1 %) can be linked only within that radius.
RADIUS_QUANTILE = 0.999

_SIGMAS = ("sigma", "sigma_x", "sigma_y")


def _table(locs) -> pd.DataFrame:
    return _validate.localization_table(locs, "link")


def _frames(locs) -> np.ndarray:
    f = locs["frame"].to_numpy()
    if f.dtype.kind == "f":
        if not np.isfinite(f).all() or (f != np.round(f)).any():
            raise ValueError("frame must hold whole numbers (NaN or fractional frames found)")
    elif f.dtype.kind not in "iu":
        raise TypeError(f"frame must be an integer column, got dtype {f.dtype}")
    return f.astype(np.int64, copy=False)


def _coordinates(locs):
    out = []
    for c in ("x", "y"):
        v = locs[c].to_numpy(np.float64)
        if not np.isfinite(v).all():
            bad = ~np.isfinite(v)
            raise ValueError(f"{c} is NaN or infinite in {int(bad.sum())} row(s) (first at row "
                             f"{int(np.argmax(bad))}): drop or fix them before linking")
        out.append(v)
    return out


def mortensen_uncertainty(locs) -> Optional[np.ndarray]:
    """Per-axis precision (px) of each row from ``photons``, ``background`` and the PSF sigma (``sigma`` or
    ``sigma_x``/``sigma_y``), Mortensen et al. 2010 (Nat. Methods 7:377) eq. 5; None when a column is
    missing. The fallback of tables without ``uncertainty_x/y``."""
    sig = [c for c in _SIGMAS if c in locs.columns]
    if not sig or not {"photons", "background"} <= set(locs.columns):
        return None
    from ..bounds import mortensen
    n = locs["photons"].to_numpy(np.float64)
    b = np.maximum(locs["background"].to_numpy(np.float64), 0.0)
    s = locs[sig].to_numpy(np.float64).mean(axis=1)
    sa2 = s ** 2 + 1.0 / 12.0
    tau = 2 * np.pi * sa2 * b / n
    # eq. 5 is sa2 / N * F(tau): F is tabulated once on a log grid of tau (the integral is slow per row).
    ok = np.isfinite(tau) & (tau > 0) & (n > 0)
    grid = np.geomspace(max(tau[ok].min(), 1e-9), max(tau[ok].max(), 2e-9), 128) if ok.any() else np.ones(2)
    f_grid = mortensen(1.0, grid / (2 * np.pi * (1 + 1 / 12)), 1.0) ** 2 / (1 + 1 / 12)
    f = np.where(ok, np.interp(np.log(np.where(ok, tau, 1.0)), np.log(grid), f_grid), np.nan)
    f = np.where(b == 0, 1.0, f)
    return np.sqrt(sa2 / n * f)


def _uncertainties(locs, checked: bool = True):
    """(ux, uy, source) of every row, or (None, None, None) when there are none; ``checked``: after
    :func:`_check_uncertainties`."""
    if {"uncertainty_x", "uncertainty_y"} <= set(locs.columns):
        ux = locs["uncertainty_x"].to_numpy(np.float64)
        uy = locs["uncertainty_y"].to_numpy(np.float64)
        source = "uncertainty_x/y"
    else:
        u = mortensen_uncertainty(locs)
        if u is None:
            return None, None, None
        ux = uy = u
        source = "Mortensen's precision from photons, background and sigma (no uncertainty_x/y columns)"
    if checked:
        _check_uncertainties(ux, uy, source)
    return ux, uy, source


def _check_uncertainties(ux, uy, source):
    """Raise unless every u > 0 with 0 < u^2 < inf (the core's weights are 1/u^2)."""
    if not len(ux):
        return
    # Reductions first (no boolean temporaries); NaN fails every comparison; 1e-150 < u < 1e150 implies
    # 0 < u^2 < inf.
    if all(u.min() > 1e-150 and u.max() < 1e150 for u in ((ux,) if uy is ux else (ux, uy))):
        return
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        bad = ~((ux > 0) & (ux * ux > 0) & (ux * ux < np.inf) & (uy > 0) & (uy * uy > 0) & (uy * uy < np.inf))
    if bad.any():
        raise ValueError(f"{source}: {int(bad.sum())} row(s) have an uncertainty that is not finite and > 0 "
                         f"(first at row {int(np.argmax(bad))}); keep only converged fits "
                         "(locs[locs.status == 'converged']) or give radius=")


def default_radius(ux, uy, gate: float = GATE) -> float:
    """Search radius (px) when it comes from the uncertainties: a gate of ``gate`` standard deviations of the
    difference of two positions with the ``RADIUS_QUANTILE`` uncertainty (of the larger of ux, uy)."""
    return float(gate * np.sqrt(2.0) * _quantile_of_larger(ux, uy, RADIUS_QUANTILE))


def _quantile_of_larger(ux, uy, q) -> float:
    """``np.quantile(np.maximum(ux, uy), q)`` (linear) without its two n-sized temporaries and two partitions
    (fresh memory costs page faults): the order statistics k, k + 1 around (n - 1) q are among the rows above
    a threshold that a strided sample puts below them (checked: else all rows), and numpy interpolates
    between the two (on two values the fraction is exact)."""
    n = len(ux)
    virtual = (n - 1) * q
    k = int(np.floor(virtual))
    with np.errstate(invalid="ignore"):   # unchecked uncertainties may be inf or NaN: the result is then NaN
        if k + 1 >= n:
            return float(np.quantile(ux if uy is ux else np.maximum(ux, uy), q))
        above = n - k                      # rows from order statistic k up
        top = None
        if above * 64 <= n:
            sample = ux[::64] if uy is ux else np.maximum(ux[::64], uy[::64])
            r = max(len(sample) - 1 - 5 * above // 64, 0)   # ~5x the rows needed above it
            c = np.partition(sample, r)[r]
            sel = ux >= c
            if uy is not ux:
                sel |= uy >= c
            top = ux[sel] if uy is ux else np.maximum(ux[sel], uy[sel])
            if len(top) < above:
                top = None
        if top is None:
            top = ux.copy() if uy is ux else np.maximum(ux, uy)
        j = len(top) - above              # order statistic k of all rows is j of `top`
        part = np.partition(top, j)
        return float(np.quantile(np.array([part[j], part[j + 1:].min()]), virtual - k))


def link(locs: pd.DataFrame, *, radius: Optional[float] = None, max_dark_frames: int = 1,
         gate: Optional[float] = None, groups: bool = False, threads: Optional[int] = None) -> pd.DataFrame:
    """Link the localizations of one emitter in consecutive frames into events (blinks).

    Frame by frame, a localization joins the closest open event (its weighted mean position so far) within
    reach; each event takes at most one localization per frame, closest pairs first. An event stays open
    while it has missed at most ``max_dark_frames`` frames.

    Parameters
    ----------
    locs : pandas.DataFrame
        ``frame``, ``x``, ``y`` (px), and ideally ``uncertainty_x``, ``uncertainty_y`` (px); ``photons``,
        ``background`` and ``sigma`` (or ``sigma_x``/``sigma_y``) are summed/averaged when present. Without
        uncertainty columns, Mortensen's precision from photons, background and sigma stands in; without
        those either, give ``radius``. Rows need not be sorted by frame. Filter bad fits first (status).
    radius : float, optional
        Largest distance (px) between a localization and the event it joins. Default: from the uncertainties,
        each pair is gated at ``gate`` standard deviations of its difference (the localization's variance plus
        that of the event's mean), within ``gate * sqrt(2) * (99.9th percentile uncertainty)``.
    max_dark_frames : int, default 1
        Frames an event may miss (a missed detection) and still continue. On simulated DNA-PAINT blinking a
        site's next blink comes after a geometric off time, so a blink that follows within
        ``max_dark_frames`` frames is merged: with 1, that is a fraction ~1/mean_off_frames of events
        (docs/postprocess.md).
    gate : float, optional
        Gate in standard deviations; default :data:`GATE` (4.3) when the radius comes from the uncertainties,
        none (the radius alone) when ``radius`` is given. Needs uncertainties.
    groups : bool, default False
        Return the input table (same index and order) with an int64 ``group`` column (the event of each row,
        numbered in order of the events' first frames) instead of the events.
    threads : int, optional
        Threads (default: OpenMP's). The frame sweep runs on one; on tables of 10^5 rows or more a second
        works out the rows' grid cells and checks ahead of it and faults in the output pages. The events do
        not depend on it.

    Returns
    -------
    pandas.DataFrame
        One row per event, in order of first frame: ``frame`` (first), ``last_frame``, ``n`` (localizations),
        ``x``, ``y`` (means weighted by 1/uncertainty^2), ``uncertainty_x``, ``uncertainty_y``
        (1/sqrt(sum 1/uncertainty^2)), ``photons`` (sum), ``background``, ``sigma``/``sigma_x``/``sigma_y``
        (means) for the columns present. ``attrs`` are kept.
    """
    locs = _table(locs)
    frame = _frames(locs)
    max_dark_frames = _validate.integer("max_dark_frames", max_dark_frames, 0)
    groups = _validate.boolean("groups", groups)
    threads = _threads.threads(threads)
    # The rows are checked by the core (in its pass over them); the messages that name the column and count
    # the bad rows come from _rows_checked when it refuses them.
    ux, uy, source = _uncertainties(locs, checked=False)
    if radius is None and ux is None:
        raise ValueError("no uncertainty_x/y columns (nor photons, background and sigma) to set the radius "
                         "from: give radius= in pixels")
    if gate is None:
        gate = GATE if radius is None else 0.0
    gate = _validate.positive("gate", gate, allow_zero=True)
    if gate > 0 and ux is None:
        raise ValueError("gate needs uncertainty_x/y columns (or photons, background and sigma)")
    if radius is None:
        radius = default_radius(ux, uy, gate if gate > 0 else GATE)
        if not (np.isfinite(radius) and radius > 0):
            _check_uncertainties(ux, uy, source)   # NaN, 0 or inf uncertainties behind it
    radius = _validate.positive("radius", radius)

    # Stable sort by frame (the core needs frame order); skipped when already sorted.
    order = None
    if len(frame) > 1 and (frame[1:] < frame[:-1]).any():
        order = np.argsort(frame, kind="stable")
    take = (lambda a: a) if order is None else (lambda a: None if a is None else a[order])
    opts = _spotcore.LinkOptions()
    opts.radius = radius
    opts.gate = gate
    opts.max_dark_frames = max_dark_frames
    opts.threads = threads
    # The photons are summed per event and the other columns averaged (sums / n), in the core.
    summed = [c for c in ("photons", "background") + _SIGMAS if c in locs.columns]
    sum_of = [] if groups else [take(locs[c].to_numpy(np.float64)) for c in summed]
    x, y = (locs[c].to_numpy(np.float64) for c in ("x", "y"))
    # Without the gate the core still weights the event means by 1/u^2 when uncertainties are given.
    try:
        event_sorted, n_events, ev = _spotcore.link(take(frame), take(x), take(y), take(ux), take(uy), opts,
                                                    events=not groups, labels=groups, sum_of=sum_of)
    except ValueError:
        _rows_checked(locs, ux, uy, source)
        raise
    del sum_of
    if groups:
        if order is None:
            event = event_sorted
        else:
            event = np.empty_like(event_sorted)
            event[order] = event_sorted
        out = locs.copy()
        out["group"] = event
        return out
    n = ev["count"]
    cols = {"frame": ev["first_frame"], "last_frame": ev["last_frame"], "n": n, "x": ev["x"], "y": ev["y"]}
    if ux is not None:   # the core's uncertainty of the inverse-variance weighted mean
        cols["uncertainty_x"] = ev["sd_x"]
        cols["uncertainty_y"] = ev["sd_y"]
    for c, total in zip(summed, ev["sums"]):
        # In place: fresh memory costs page faults (~0.5 ms per MB here), more than the division.
        cols[c] = total if c == "photons" else np.divide(total, n, out=total)
    return _table_of(cols, locs)


def _rows_checked(locs, ux, uy, source):
    """Raise the error that names the column and counts the rows, for rows the core refused."""
    _coordinates(locs)
    if ux is not None:
        _check_uncertainties(ux, uy, source)


def _table_of(cols, locs) -> pd.DataFrame:
    out = pd.DataFrame(cols, copy=False)   # the arrays are ours: no copy into one block
    out.index.name = "event"
    out.attrs = dict(locs.attrs)
    return out


def _finish(cols, locs, event, m) -> pd.DataFrame:
    """Add the summed photons and mean background and sigmas of the rows of each event; the table."""
    n = cols["n"]
    if "photons" in locs.columns:
        cols["photons"] = np.bincount(event, locs["photons"].to_numpy(np.float64), m)
    for c in ("background",) + _SIGMAS:
        if c in locs.columns:
            cols[c] = np.bincount(event, locs[c].to_numpy(np.float64), m) / n
    return _table_of(cols, locs)


def event_table(locs, event, n_events) -> pd.DataFrame:
    """The events of rows labelled ``event`` (int64, 0..n_events-1, numbered in order of first frame): the
    columns of :func:`link` (e.g. from ``link(..., groups=True)["group"]`` after editing the groups)."""
    frame = _frames(locs)
    x, y = _coordinates(locs)
    ux, uy, _ = _uncertainties(locs)
    event = np.asarray(event, np.int64)
    m = int(n_events)
    n = np.bincount(event, minlength=m).astype(np.int64)
    cols = {"frame": _group_extreme(event, frame, m, np.min), "last_frame": _group_extreme(event, frame, m, np.max),
            "n": n}
    if ux is not None:
        wx, wy = 1.0 / ux ** 2, 1.0 / uy ** 2
        swx = np.bincount(event, wx, m)
        swy = np.bincount(event, wy, m)
        cols["x"] = np.bincount(event, wx * x, m) / swx
        cols["y"] = np.bincount(event, wy * y, m) / swy
        cols["uncertainty_x"] = 1.0 / np.sqrt(swx)   # inverse-variance weighting
        cols["uncertainty_y"] = 1.0 / np.sqrt(swy)
    else:
        cols["x"] = np.bincount(event, x, m) / n
        cols["y"] = np.bincount(event, y, m) / n
    return _finish(cols, locs, event, m)


def _group_extreme(event, values, m, fn) -> np.ndarray:
    out = np.full(m, np.iinfo(np.int64).max if fn is np.min else np.iinfo(np.int64).min, np.int64)
    (np.minimum if fn is np.min else np.maximum).at(out, event, values)
    return out
