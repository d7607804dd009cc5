"""Localization precision vs photons for each method against the Cramér–Rao bound (issue 7).

    python bench/plot_precision.py bench/out/compare.json [--out bench/out/precision.png]

Reads the JSON written by ``bench/compare.py`` (which holds, per movie, the binned RMSE of isolated,
matched spots per method and the CRLB curve) and draws one panel per movie, log-log. The RMSE of a bin
is sqrt(mean((dx² + dy²) / 2)) in px over the isolated true emitters matched within 1 px whose true
photon count falls in the bin. The black curve is the CRLB of x for the symmetric-Gaussian model
(x, y, N, b, sigma) on a 7×7 box at the true background (Smith et al. 2010, Nat. Methods 7:373; at the
box centre it equals the fixed-sigma model's, which the JSON also holds); the grey dotted one is
Mortensen et al. 2010's least-squares limit (Nat. Methods 7:377, eq. 6), which LSQ fitters approach
instead. A method at the bound lies on the black curve.
"""
from __future__ import annotations

import argparse
import json
import os

STYLE = {"spotfit-mle": ("C0", "o"), "spotfit-lsq": ("C1", "s"), "picasso-lq": ("C2", "^"),
         "picasso-mle": ("C3", "v"), "trackpy": ("C4", "D")}


def plot(report: dict, out: str) -> str:
    """Draw the precision panels of a ``compare.py`` report into the PNG ``out``; returns ``out``."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FormatStrFormatter, NullFormatter
    except ImportError as exc:  # pragma: no cover - optional
        raise ImportError("the precision plot needs matplotlib: pip install spotfit[plot]") from exc
    movies = [m for m in report["movies"] if m.get("precision_curves")]
    if not movies:
        raise ValueError("report has no precision curves")
    fig, axes = plt.subplots(1, len(movies), figsize=(5.6 * len(movies), 4.4), squeeze=False)
    for ax, mv in zip(axes[0], movies):
        pc = mv["precision_curves"]
        ax.plot(pc["crlb_photons"], pc["crlb_x"], "k-", lw=1.5, label="CRLB (free sigma)")
        if pc.get("mortensen_lsq"):
            ax.plot(pc["crlb_photons"], pc["mortensen_lsq"], color="0.5", ls=":", lw=1.2,
                    label="LSQ bound (Mortensen eq. 6)")
        for name, curve in pc["methods"].items():
            colour, marker = STYLE.get(name, (None, "x"))
            pts = [(p, r) for p, r, n in zip(curve["photons"], curve["rmse"], curve["n"])
                   if r is not None and n >= 20]
            if pts:
                ax.plot([p for p, _ in pts], [r for _, r in pts], marker=marker, color=colour, ls=":",
                        ms=5, label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        nice = [a * 10.0 ** e for e in range(-3, 5) for a in (1, 2, 5)]
        lo, hi = min(pc["crlb_photons"]), max(pc["crlb_photons"])
        ax.set_xticks([t for t in nice if lo <= t <= hi])
        lo, hi = ax.get_ylim()
        ax.set_yticks([t for t in nice if lo <= t <= hi])
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_formatter(FormatStrFormatter("%g"))
            axis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("true photons")
        ax.set_ylabel("RMSE of x, y (px), isolated spots")
        p = mv["params"]
        ax.set_title(f"{mv['name']}: {p['density']:g} spots/frame, bg {p['background']:g}, "
                     f"{mv['frames']} frames", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"spotfit benchmark {report['date']} ({report['machine']['cpu']}, "
                 f"{report['machine']['cores']} cores)", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("report", help="JSON written by bench/compare.py")
    ap.add_argument("--out", default=None, help="PNG (default: precision.png next to the report)")
    a = ap.parse_args(argv)
    with open(a.report) as fh:
        report = json.load(fh)
    out = a.out or os.path.join(os.path.dirname(os.path.abspath(a.report)), "precision.png")
    print(plot(report, out))


if __name__ == "__main__":
    main()
