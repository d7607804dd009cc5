"""3D by astigmatism: the widths of the PSF against z, as the astigmatic fit model uses them.

A cylindrical lens makes the PSF elliptical, with each axis in focus at a different depth (Huang et al. 2008,
Science 319:810). Per axis the width follows the defocus model of that paper:

    s(z) = s0 * sqrt(1 + u**2 + A*u**3 + B*u**4),   u = (z - c) / d

with s0 in pixels and z, c, d in nm. ``z = 0`` is where the two widths are equal (as in Picasso and
ThunderSTORM). :func:`spotfit.calibrate_astigmatism` measures the curves from a bead stack; the sign of z is
Picasso's: the first plane of a bead stack has the most positive z (docs/3d.md).
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Tuple

import numpy as np

from . import _spotcore
from ._shared.atomic import atomic_path
from ._shared.optional import need
from ._shared.version import VERSION

FORMAT = "spotfit.astigmatic_calibration"
_AXIS_KEYS = ("s0", "c", "d", "A", "B")


def huang_width(z, s0, c, d, a=0.0, b=0.0):
    """s(z) = s0 sqrt(1 + u^2 + A u^3 + B u^4), u = (z - c)/d (Huang et al. 2008); NaN where not real."""
    u = (np.asarray(z, dtype=np.float64) - c) / d
    q = 1.0 + u * u + a * u ** 3 + b * u ** 4
    with np.errstate(invalid="ignore"):
        return s0 * np.sqrt(np.where(q > 0, q, np.nan))


def huang_slope(z, s0, c, d, a=0.0, b=0.0):
    """ds/dz of :func:`huang_width`, px per nm."""
    u = (np.asarray(z, dtype=np.float64) - c) / d
    q = 1.0 + u * u + a * u ** 3 + b * u ** 4
    return s0 * (2 * u + 3 * a * u * u + 4 * b * u ** 3) / (2 * d * np.sqrt(q))


@dataclass(frozen=True)
class AstigmaticCalibration:
    """Widths of an astigmatic PSF against z (see the module docstring for the model).

    Parameters
    ----------
    x, y : (s0, c, d, A, B)
        Coefficients of each axis: s0 (px), c and d (nm), A and B (dimensionless).
    z_range : (z_min, z_max)
        The calibrated range, nm; fits stay inside it (status ``z_out_of_range`` at its ends).
    provenance : dict
        Where the calibration comes from (not compared).
    """

    x: Tuple[float, float, float, float, float]
    y: Tuple[float, float, float, float, float]
    z_range: Tuple[float, float]
    provenance: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        set_ = object.__setattr__.__get__(self)
        for name in ("x", "y"):
            v = tuple(float(a) for a in getattr(self, name))
            if len(v) != 5 or not all(math.isfinite(a) for a in v):
                raise ValueError(f"calibration {name} must be 5 finite numbers (s0, c, d, A, B), got {v}")
            if v[0] <= 0 or v[2] <= 0:
                raise ValueError(f"calibration {name}: s0 and d must be > 0, got s0={v[0]}, d={v[2]}")
            set_(name, v)
        zr = tuple(float(a) for a in self.z_range)
        if len(zr) != 2 or not all(math.isfinite(a) for a in zr) or not zr[0] < zr[1]:
            raise ValueError(f"calibration z_range must be (z_min, z_max) with z_min < z_max (nm), got {zr}")
        set_("z_range", zr)
        z = np.linspace(zr[0], zr[1], 1025)
        # q of s = s0 sqrt(q) kept clear of 0 (the core refuses q <= 1e-3 on its own grid)
        q = [1 + u * u + p[3] * u ** 3 + p[4] * u ** 4 for p in (self.x, self.y) for u in [(z - p[1]) / p[2]]]
        sx, sy = self.widths(z)
        if not (all(np.isfinite(v).all() and (v > 2e-3).all() for v in q) and (sx > 0.05).all() and (sy > 0.05).all()):
            raise ValueError("calibration: the widths s(z) are not real and positive over the whole z_range")
        set_("provenance", dict(self.provenance))

    def widths(self, z) -> Tuple[np.ndarray, np.ndarray]:
        """(sigma_x, sigma_y) in px at z (nm)."""
        return huang_width(z, *self.x), huang_width(z, *self.y)

    def slopes(self, z) -> Tuple[np.ndarray, np.ndarray]:
        """(d sigma_x/dz, d sigma_y/dz) in px per nm at z (nm)."""
        return huang_slope(z, *self.x), huang_slope(z, *self.y)

    def to_core(self) -> "_spotcore.Astigmatism":
        """The C++ ``spotcore::Astigmatism``."""
        a = _spotcore.Astigmatism()
        a.s0_x, a.c_x, a.d_x, a.a_x, a.b_x = self.x
        a.s0_y, a.c_y, a.d_y, a.a_y, a.b_y = self.y
        a.z_min, a.z_max = self.z_range
        return a

    def max_width(self) -> float:
        """The largest width over the calibrated range, px."""
        sx, sy = self.widths(np.linspace(*self.z_range, 257))
        return float(max(sx.max(), sy.max()))

    def default_box(self) -> int:
        """Odd fit box that holds +-2.5 of the largest width over the range (7..31 px)."""
        half = int(math.ceil(2.5 * self.max_width()))
        return int(min(max(2 * half + 1, 7), 31))

    def crossing(self) -> float:
        """z (nm) where the two widths are equal, nearest the middle of the range (0 for a centred one)."""
        return _crossing(self.x, self.y, self.z_range)

    # --- files ---------------------------------------------------------------------------------------------
    def as_dict(self) -> dict:
        return {"format": FORMAT, "version": 1,
                "model": "s(z) = s0*sqrt(1 + u^2 + A*u^3 + B*u^4), u = (z - c)/d  (Huang et al. 2008)",
                "units": {"s0": "px", "c": "nm", "d": "nm", "A": "1", "B": "1", "z_range": "nm"},
                "z_sign": "z = 0 where sigma_x = sigma_y; the first plane of the bead stack has the most positive z",
                "x": dict(zip(_AXIS_KEYS, self.x)), "y": dict(zip(_AXIS_KEYS, self.y)),
                "z_range": list(self.z_range), "provenance": self.provenance}

    @classmethod
    def from_dict(cls, d: dict) -> "AstigmaticCalibration":
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ValueError(f"not a spotfit astigmatic calibration (no 'format': {FORMAT!r})")
        try:
            x = tuple(d["x"][k] for k in _AXIS_KEYS)
            y = tuple(d["y"][k] for k in _AXIS_KEYS)
            return cls(x, y, tuple(d["z_range"]), dict(d.get("provenance") or {}))
        except (KeyError, TypeError) as exc:
            raise ValueError(f"astigmatic calibration: missing or malformed entry {exc}") from None

    def save(self, path) -> Path:
        """Write the calibration as JSON (readable; coefficients, units, z sign and provenance)."""
        path = Path(path)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path) -> "AstigmaticCalibration":
        """Read a calibration written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no calibration file {str(path)!r}")
        try:
            d = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{path}: not a JSON calibration ({exc})") from None
        return cls.from_dict(d)

    @classmethod
    def from_picasso(cls, path, *, magnification_factor=None) -> "AstigmaticCalibration":
        """Read a Picasso 3D calibration YAML (``X Coefficients``, ``Y Coefficients``: 6th-degree polynomials
        of the widths in px against z in nm, ``Step size in nm``, ``Number of frames``, ``Magnification factor``).

        Huang's model is fitted to Picasso's polynomials over the middle 90 % of the stack's z span (the
        polynomial's ends are its least certain part), less the 1/12 px^2 that pixel integration adds to the
        variance (Picasso's Gaussians are sampled at pixel centres, spotfit's integrated); z is scaled by the magnification factor as Picasso's
        ``zfit`` does, so z comes out in Picasso's units. ``provenance["max_rel_deviation"]`` records how
        closely the model follows the polynomials.
        """
        yaml = need("yaml", "reading a Picasso calibration")
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no Picasso calibration file {str(path)!r}")
        with open(path) as f:
            d = yaml.safe_load(f)
        try:
            cx = np.asarray(d["X Coefficients"], dtype=np.float64)
            cy = np.asarray(d["Y Coefficients"], dtype=np.float64)
            step = float(d["Step size in nm"])
            frames = int(d["Number of frames"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a Picasso 3D calibration (missing or bad {exc})") from None
        mag = float(d.get("Magnification factor", 1.0) if magnification_factor is None else magnification_factor)
        if cx.shape != (7,) or cy.shape != (7,) or not (step > 0 and frames >= 7 and mag > 0):
            raise ValueError(f"{path}: a Picasso calibration has 7 coefficients per axis, a step > 0 and >= 7 frames")
        half = 0.45 * (frames - 1) * step
        z = np.linspace(-half, half, 301)
        sx, sy = np.polyval(cx, z), np.polyval(cy, z)
        # Picasso's fits sample the Gaussian at pixel centres, spotfit's model integrates it over the pixel,
        # which adds 1/12 px^2 to the variance: Picasso's widths are sqrt(s^2 + 1/12) of spotfit's s. Without
        # this, z from a Picasso calibration is biased (tests/test_astig_picasso.py).
        if not ((sx ** 2 > 1 / 12).all() and (sy ** 2 > 1 / 12).all()):
            raise ValueError(f"{path}: Picasso's widths are not above 0.29 px over +-{half:.0f} nm")
        sx, sy = np.sqrt(sx ** 2 - 1 / 12), np.sqrt(sy ** 2 - 1 / 12)
        px, dev_x = fit_axis(z, sx)
        py, dev_y = fit_axis(z, sy)
        scale = np.array([1.0, mag, mag, 1.0, 1.0])
        prov = {"source": "picasso", "path": str(path), "picasso": {k: v for k, v in d.items()
                                                                    if isinstance(v, (int, float, str, list))},
                "max_rel_deviation": float(max(dev_x, dev_y)), "magnification_factor": mag,
                "pixel_integration_px2": 1 / 12,
                "created": _now(), "spotfit_version": VERSION}
        return cls(tuple(px * scale), tuple(py * scale), (-half * mag, half * mag), prov)

    def plot(self, path=None, *, points=None):
        """A PNG of the widths against z: the fitted curves and, when given (``points``: a DataFrame with
        ``z``, ``sigma_x``, ``sigma_y``, as ``provenance`` of a bead calibration keeps them), the bead points.
        Returns the matplotlib figure; writes ``path`` when given."""
        need("matplotlib", "plotting a calibration")
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        if points is None:
            points = self.provenance.get("points")
        if points is not None and len(points["z"]):
            ax.plot(points["z"], points["sigma_x"], ".", color="tab:blue", ms=3, alpha=0.5, label="beads, x")
            ax.plot(points["z"], points["sigma_y"], ".", color="tab:red", ms=3, alpha=0.5, label="beads, y")
        z = np.linspace(*self.z_range, 400)
        sx, sy = self.widths(z)
        ax.plot(z, sx, color="tab:blue", lw=2, label="sigma_x(z)")
        ax.plot(z, sy, color="tab:red", lw=2, label="sigma_y(z)")
        ax.axvline(0, color="0.6", lw=0.8)
        ax.set_xlabel("z (nm)")
        ax.set_ylabel("width (px)")
        ax.set_title("astigmatic calibration (Huang et al. 2008 model)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        if path is not None:
            with atomic_path(Path(path)) as tmp:
                fig.savefig(tmp, dpi=120, format="png")
        return fig

    def replace(self, **changes) -> "AstigmaticCalibration":
        return dataclasses.replace(self, **changes)


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _crossing(px, py, z_range) -> float:
    z = np.linspace(z_range[0], z_range[1], 4001)
    diff = huang_width(z, *px) - huang_width(z, *py)
    sign = np.flatnonzero(np.diff(np.sign(diff)) != 0)
    if len(sign) == 0:
        raise ValueError("the two widths do not cross inside the calibrated range: z = 0 (equal widths) is "
                         "undefined; is the stack centred on the focus, and is the lens astigmatic?")
    mid = 0.5 * (z_range[0] + z_range[1])
    k = sign[np.argmin(np.abs(z[sign] - mid))]
    # linear interpolation between the two grid points around the sign change
    return float(z[k] - diff[k] * (z[k + 1] - z[k]) / (diff[k + 1] - diff[k]))


def fit_axis(z, s, *, loss: str = "linear", f_scale: float = 0.01):
    """Huang's model fitted to widths ``s`` (px) at ``z`` (nm) by least squares on the relative residual;
    ``loss="soft_l1"`` makes it robust to outliers. Returns (coefficients (s0, c, d, A, B), max |rel. residual|)."""
    from scipy.optimize import least_squares
    z = np.asarray(z, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    k = int(np.argmin(s))
    s0 = float(s[k])
    span = float(z.max() - z.min())
    # d: where the width has grown by sqrt(2); a first guess from the points above it
    wide = np.abs(z[s > math.sqrt(2) * s0] - z[k])
    d0 = float(np.median(wide)) if len(wide) else span / 2

    def resid(p):
        m = huang_width(z, *p)
        return np.where(np.isfinite(m), s / np.where(np.isfinite(m), m, 1.0) - 1.0, 10.0)

    best = None
    for c0 in (float(z[k]) - 0.1 * span, float(z[k]), float(z[k]) + 0.1 * span):
        r = least_squares(resid, [s0, c0, max(d0, 1e-3 * span), 0.0, 0.0], loss=loss, f_scale=f_scale,
                          bounds=([1e-3, z.min() - span, 1e-3 * span, -10, -10],
                                  [np.inf, z.max() + span, 10 * span, 10, 10]), x_scale="jac")
        if best is None or r.cost < best.cost:
            best = r
    p = best.x
    return p, float(np.nanmax(np.abs(resid(p))))
