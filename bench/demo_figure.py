"""README's before/after picture and drift plot, from the files of `spotfit demo --out DIR`.

    spotfit demo --out /tmp/demo && python bench/demo_figure.py /tmp/demo docs/
"""
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import spotfit  # noqa: E402
from spotfit import io, render  # noqa: E402


def main(folder: Path, out: Path) -> None:
    locs = io.load(folder / "demo_locs.csv")
    locs = locs[locs["status"] == "converged"]
    corrected = io.load(folder / "demo_undrifted.csv")
    drift = io.load(folder / "demo_drift.csv")
    zoom, half = 25, 6.0   # 4 nm render pixels; a 12x12 px window around the densest origami
    h, xe, ye = np.histogram2d(corrected["x"], corrected["y"], bins=(16, 16), range=((0, 64), (0, 64)))
    i, j = np.unravel_index(np.argmax(h), h.shape)
    cx, cy = 0.5 * (xe[i] + xe[i + 1]), 0.5 * (ye[j] + ye[j + 1])
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.2))
    for ax, table, title in ((axes[0], locs, "before drift correction"), (axes[1], corrected, "after (spotfit.undrift)")):
        img = render.render(table, zoom=zoom)
        r0, c0 = int((cy - half + 0.5) * zoom), int((cx - half + 0.5) * zoom)
        crop = img[max(r0, 0):r0 + int(2 * half * zoom), max(c0, 0):c0 + int(2 * half * zoom)]
        ax.imshow(crop, cmap="magma", vmax=np.quantile(crop[crop > 0], 0.995) if (crop > 0).any() else None)
        ax.set_title(title)
        ax.set_axis_off()
    px = 100.0
    for a in ("x", "y"):
        axes[2].plot(drift["frame"], drift[a] * px, lw=1, label=f"{a} (found)")
    axes[2].set_xlabel("frame")
    axes[2].set_ylabel("drift (nm)")
    axes[2].legend()
    axes[2].set_title("drift per frame")
    fig.suptitle(f"spotfit demo: origami grid, sites 60 nm apart ({spotfit.__version__})")
    fig.tight_layout()
    fig.savefig(out / "demo_before_after.png", dpi=80)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
