"""One HTML page a microscopist looks at after an SMLM run: counts, photons, precision, drift, resolution,
and the rendered image before and after drift correction; every figure embedded (no side files).

Needs matplotlib (``pip install spotfit[plot]``). The drift table and the corrected localizations come from
the caller (``spotfit.undrift``); without them the page says so and shows the rest.
"""
from __future__ import annotations

import base64
import html
import io as _stdio
from typing import Optional

import numpy as np
import pandas as pd

from .._shared.atomic import atomic_path
from .._shared.optional import need
from .._shared.version import VERSION

__all__ = ["report"]


def _png(fig) -> str:
    buf = _stdio.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(figsize=(5.0, 3.4)):
    from matplotlib.figure import Figure   # no pyplot: no GUI backend, no global state
    fig = Figure(figsize=figsize)
    return fig, fig.add_subplot(111)


def _apply_drift(locs, drift):
    """The positions minus the drift of their frame (drift: frame, x, y = what the stage added)."""
    d = pd.DataFrame(drift)
    if not {"frame", "x", "y"} <= set(d.columns):
        raise ValueError(f"drift must be a table with columns frame, x, y, got {list(d.columns)}")
    d = d.set_index(d["frame"].astype(np.int64))
    f = locs["frame"].to_numpy().astype(np.int64)
    missing = ~np.isin(f, d.index.to_numpy())
    if missing.any():
        raise ValueError(f"drift has no row for frame {int(f[missing][0])} (and {int(missing.sum()) - 1} more rows)")
    out = locs.copy()
    out["x"] = locs["x"].to_numpy(np.float64) - d["x"].reindex(f).to_numpy(np.float64)
    out["y"] = locs["y"].to_numpy(np.float64) - d["y"].reindex(f).to_numpy(np.float64)
    return out


def report(locs: pd.DataFrame, path=None, *, drift: Optional[pd.DataFrame] = None,
           corrected: Optional[pd.DataFrame] = None, pixel_size_nm: Optional[float] = None,
           title: str = "spotfit report", zoom: float = 10.0, progress: bool = False) -> str:
    """Write (or return) an HTML report of a localization table.

    Parameters
    ----------
    locs : pandas.DataFrame
        Localizations as ``spotfit.localize`` returns them (``frame, x, y``; ``photons``,
        ``uncertainty_x/y`` add their histograms), before drift correction.
    path : str or os.PathLike, optional
        Where to write the page (atomically). Without it the HTML is only returned.
    drift : pandas.DataFrame, optional
        Drift per frame (``frame, x, y`` px, what the stage added), e.g. from ``spotfit.undrift``: the drift
        plot; and, without ``corrected``, the corrected table is ``locs`` minus the drift of each frame.
    corrected : pandas.DataFrame, optional
        Drift-corrected localizations: the "after" image, and NeNA and FRC are computed on it.
    pixel_size_nm : float, optional
        Camera pixel size, nm (default ``locs.attrs["spotfit"]["pixel_size_nm"]``); FRC needs it.
    title : str
    zoom : float
        Rendered pixels per camera pixel of the images.
    progress : bool
        Show a progress bar over the steps (tqdm).

    Returns
    -------
    str
        The HTML page.
    """
    need("matplotlib", "spotfit.report")
    from .link import link
    from .precision import frc, nena, _pixel_nm, _xyf
    from ..render import render

    frame, _, _ = _xyf(locs)   # empty, NaN coordinates, bad frames: a clear error before any work
    frames = np.unique(frame)
    if len(frames) < 2:
        raise ValueError("the report needs localizations in at least two frames; the table has one")
    px = pixel_size_nm if pixel_size_nm is not None else _pixel_nm(locs)
    if corrected is None and drift is not None:
        corrected = _apply_drift(locs, drift)
    if corrected is not None:
        _xyf(corrected)
    analysed = corrected if corrected is not None else locs
    steps = ["counts", "histograms", "nena", "linking", "drift", "frc", "images"]
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(steps), unit="step", desc="report")
    figs, rows, notes = [], [], []

    def done():
        if bar is not None:
            bar.update(1)

    def row(name, value):
        rows.append((name, value))

    nm = (lambda v: f"{v:.3g} px ({v * px:.3g} nm)") if px else (lambda v: f"{v:.3g} px")
    try:
        row("localizations", f"{len(locs):,}")
        row("frames", f"{int(frames[0])}–{int(frames[-1])} ({len(frames):,} with localizations)")
        counts = np.bincount(frame - frame.min())
        fig, ax = _figure()
        ax.plot(np.arange(len(counts)) + frame.min(), counts, lw=0.6)
        ax.set_xlabel("frame")
        ax.set_ylabel("localizations")
        ax.set_title("Localizations per frame")
        figs.append(("Localizations per frame", _png(fig), ""))
        tenth = max(1, len(counts) // 10)
        row("localizations per frame", f"mean {counts.mean():.3g}, first 10 % {counts[:tenth].mean():.3g}, "
            f"last 10 % {counts[-tenth:].mean():.3g}")
        done()

        fig = None
        hist = [c for c in ("photons", "uncertainty_x") if c in locs.columns]
        if hist:
            from matplotlib.figure import Figure
            fig = Figure(figsize=(5.0 * len(hist), 3.4))
            for k, c in enumerate(hist):
                ax = fig.add_subplot(1, len(hist), k + 1)
                v = locs[c].to_numpy(np.float64)
                if c == "uncertainty_x":
                    v = np.r_[v, locs["uncertainty_y"].to_numpy(np.float64)] if "uncertainty_y" in locs else v
                v = v[np.isfinite(v)]
                hi = np.quantile(v, 0.995) if len(v) else 1.0
                ax.hist(v[v <= hi], bins=80)
                ax.set_xlabel({"photons": "photons", "uncertainty_x": "uncertainty x, y (px)"}[c])
                ax.set_ylabel("localizations")
                med = float(np.median(v))
                row(f"median {c.replace('_x', '')}", nm(med) if c != "photons" else f"{med:.4g}")
            figs.append(("Photons and uncertainty", _png(fig), ""))
        else:
            notes.append("No photons or uncertainty columns: no histograms.")
        done()

        try:
            nr = nena(analysed, pixel_size_nm=px)
            fig, ax = _figure()
            c = nr.curve
            ax.bar(c["distance"], c["density"], width=c["distance"].diff().median(), alpha=0.5,
                   label="next-frame pairs")
            ax.plot(c["distance"], c["fit"], "r-", label=f"fit: NeNA {nr.precision:.3g} px")
            ax.set_xlabel("distance to the nearest neighbour in the next frame (px)")
            ax.set_ylabel("density")
            ax.legend()
            ax.set_title("NeNA (Endesfelder et al. 2014)")
            text = (f"single-scale fit of {nr.n_pairs:,} pairs, {nr.fraction_same:.0%} same emitter")
            if nr.uncertainty_scale is not None:
                text += (f"; the reported uncertainties fit the distances x {nr.uncertainty_scale:.3g} "
                         f"(1 = right): median precision {nm(nr.median_precision)}")
            figs.append(("NeNA precision", _png(fig), text))
            row("NeNA precision", nm(nr.precision))
        except ValueError as exc:
            notes.append(f"NeNA not computed: {exc}")
        done()

        try:
            ev = link(analysed)
            row("events (linked blinks, spotfit.link)", f"{len(ev):,}; mean {ev['n'].mean():.3g} localizations "
                f"and {(ev['last_frame'] - ev['frame'] + 1).mean():.3g} frames each")
        except ValueError as exc:
            notes.append(f"Linking not computed: {exc}")
        done()

        if drift is not None:
            d = pd.DataFrame(drift)
            fig, ax = _figure()
            scale, unit = (px, "nm") if px else (1.0, "px")
            ax.plot(d["frame"], d["x"] * scale, label="x")
            ax.plot(d["frame"], d["y"] * scale, label="y")
            ax.set_xlabel("frame")
            ax.set_ylabel(f"drift ({unit})")
            ax.legend()
            ax.set_title("Drift")
            figs.append(("Drift", _png(fig), ""))
            span = np.hypot(d["x"] - d["x"].iloc[0], d["y"] - d["y"].iloc[0]).max()
            row("largest drift from the start", nm(float(span)))
        else:
            notes.append("No drift table given (spotfit.undrift): no drift plot, no corrected image.")
        done()

        if px:
            try:
                fr = frc(analysed, pixel_size_nm=px, max_image=2048)   # a page, not a measurement: 4x faster
                fig, ax = _figure()
                c = fr.curve
                ax.plot(c["frequency"], c["frc"], color="0.7", lw=0.6, label="FRC")
                ax.plot(c["frequency"], c["frc_smooth"], "b-", label="smoothed")
                ax.axhline(fr.threshold, color="r", ls="--", label="1/7")
                ax.set_xlabel("spatial frequency (1/nm)")
                ax.set_ylabel("FRC")
                ax.legend()
                ax.set_title("Fourier ring correlation (Nieuwenhuizen et al. 2013)")
                figs.append(("FRC resolution", _png(fig), f"halves: alternate blocks of {fr.block_frames} frames; "
                             f"images of {fr.render_pixel_nm:.3g} nm pixels"))
                row("FRC resolution", f"{fr.resolution_nm:.3g} nm" if np.isfinite(fr.resolution_nm)
                    else "not reached (the curve stays above 1/7)")
            except ValueError as exc:
                notes.append(f"FRC not computed: {exc}")
        else:
            notes.append("FRC not computed: the camera pixel size is unknown (give pixel_size_nm).")
        done()

        images = [("before correction", locs)] + ([("after correction", corrected)] if corrected is not None else [])
        from matplotlib.figure import Figure
        fig = Figure(figsize=(5.0 * len(images), 5.0))
        # Each localization blurred by its uncertainty where there is one: single dots of a histogram vanish
        # when the figure is scaled down.
        method = "gaussian" if {"uncertainty_x", "uncertainty_y"} <= set(locs.columns) else "histogram"
        for k, (name, tab) in enumerate(images):
            img = render(tab, zoom=zoom, method=method) if len(tab) else np.zeros((1, 1))
            ax = fig.add_subplot(1, len(images), k + 1)
            pos = img[img > 0]
            ax.imshow(img, cmap="magma", vmin=0, vmax=np.percentile(pos, 99.5) if pos.size else 1,
                      interpolation="antialiased")
            ax.set_title(f"{name}: {len(tab):,} localizations")
            ax.set_axis_off()
        names = " | ".join(f"{name} ({len(tab):,} localizations)" for name, tab in images)
        figs.append(("Rendered image", _png(fig), f"{names}; {method}, {zoom:g} rendered pixels per camera pixel"))
        done()
    finally:
        if bar is not None:
            bar.close()

    page = _html(title, rows, figs, notes)
    if path is not None:
        with atomic_path(path) as tmp:
            tmp.write_text(page, encoding="utf-8")
    return page


def _html(title, rows, figs, notes) -> str:
    e = html.escape
    out = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>", f"<title>{e(title)}</title>",
           "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
           "table{border-collapse:collapse}td{padding:2px 12px;border-bottom:1px solid #ddd}"
           "figure{display:inline-block;margin:1em 1em 1em 0;vertical-align:top}"
           "figcaption{font-size:90%;color:#555;max-width:520px}img{max-width:100%}</style></head><body>",
           f"<h1>{e(title)}</h1>", "<table>"]
    out += [f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in rows]
    out.append("</table>")
    if notes:
        out.append("<ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    for name, src, caption in figs:
        out.append(f"<figure><h2>{e(name)}</h2><img alt='{e(name)}' src='{src}'>"
                   f"<figcaption>{e(caption)}</figcaption></figure>")
    out.append(f"<p style='color:#888'>spotfit {e(VERSION)}</p></body></html>")
    return "\n".join(out)
