"""Astigmatic calibration from a z-stack of beads: every bead fitted in every plane with the elliptical model,
followed through the planes, and Huang's defocus model fitted robustly to each axis's widths against z."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from . import core
from ._shared.version import VERSION
from .astigmatism import AstigmaticCalibration, _crossing, _now, fit_axis, huang_width
from .camera import Camera

#: Fewest planes a calibration takes: 5 coefficients per axis, and some planes to reject.
MIN_PLANES = 9


def calibrate(stack, *, z_step_nm: float, camera: Optional[Camera] = None, box: int = 15,
              link_radius: float = 2.0, min_planes: Optional[int] = None,
              z_range: Optional[Tuple[float, float]] = None, magnification_factor: float = 1.0,
              threads: Optional[int] = None, source: str = "array") -> AstigmaticCalibration:
    """The calibration of a bead stack held as an array (``spotfit.calibrate_astigmatism`` documents it)."""
    shape = tuple(int(s) for s in np.shape(stack))
    if len(shape) != 3:
        raise ValueError(f"a bead stack is a 3D (planes, rows, cols) array, got shape {shape}")
    planes = shape[0]
    if not (z_step_nm > 0 and np.isfinite(z_step_nm)):
        raise ValueError(f"z_step_nm must be a positive number of nm, got {z_step_nm}")
    if not (magnification_factor > 0):
        raise ValueError(f"magnification_factor must be > 0, got {magnification_factor}")
    if planes < MIN_PLANES:
        raise ValueError(f"the bead stack has {planes} planes; a calibration needs at least {MIN_PLANES} "
                         "(5 coefficients per axis, fitted over the defocus)")
    need_planes = max(MIN_PLANES, planes // 3) if min_planes is None else int(min_planes)
    locs = core.localize(stack, camera=camera, model="elliptical", box=box, min_distance=box / 2,
                         mask_neighbours=True, threads=threads)
    ok = locs[(locs["status"] == "converged") & (locs["sigma_x"] < box / 2) & (locs["sigma_y"] < box / 2)]
    if len(ok) == 0:
        raise ValueError("no beads found in the stack: no spot fitted in any plane (check the camera settings "
                         "and that the stack holds beads)")
    # Faint detections (noise peaks between beads) would make beads of their own.
    ok = ok[ok["photons"] > 0.1 * np.percentile(ok["photons"], 90)]
    bead = _follow(ok["x"].to_numpy(), ok["y"].to_numpy(), ok["photons"].to_numpy(), link_radius)
    ok = ok.assign(bead=bead)
    # One fit per bead and plane: the brightest.
    ok = ok.sort_values("photons", ascending=False).drop_duplicates(["bead", "frame"])
    seen = ok.groupby("bead")["frame"].nunique()
    keep = seen.index[seen >= need_planes]
    if len(keep) == 0:
        raise ValueError(f"no bead is seen in at least {need_planes} of the {planes} planes (most: "
                         f"{int(seen.max())}): beads must stay in the field through the stack; a bead at one plane "
                         "only is no calibration")
    pts = ok[ok["bead"].isin(keep)]
    z = -pts["frame"].to_numpy(np.float64) * z_step_nm     # Picasso's sign: the first plane is the highest z
    sx, sy = pts["sigma_x"].to_numpy(np.float64), pts["sigma_y"].to_numpy(np.float64)
    bid = pts["bead"].to_numpy()
    use = np.ones(len(z), bool)
    rejected_beads = []
    for _ in range(3):   # robust fit, then reject outlier beads and planes, and refit
        px, _d = fit_axis(z[use], sx[use], loss="soft_l1", f_scale=0.02)
        py, _d = fit_axis(z[use], sy[use], loss="soft_l1", f_scale=0.02)
        rel = np.maximum(np.abs(sx / huang_width(z, *px) - 1), np.abs(sy / huang_width(z, *py) - 1))
        rel = np.where(np.isfinite(rel), rel, np.inf)
        scale = max(1.4826 * float(np.median(rel[use])), 0.005)
        per_bead = {b: float(np.median(rel[bid == b])) for b in np.unique(bid)}
        med = np.median(list(per_bead.values()))
        bad_beads = [b for b, r in per_bead.items() if r > med + 5 * scale]
        new = (rel < 5 * scale + med) & ~np.isin(bid, bad_beads)
        if new.sum() < 2 * MIN_PLANES:
            break
        if (new == use).all():
            break
        use, rejected_beads = new, bad_beads
    # The calibrated range: planes where at least half the beads gave a usable width.
    frames = pts["frame"].to_numpy()
    per_plane = np.bincount(frames[use], minlength=planes)
    good_planes = np.flatnonzero(per_plane >= max(1, 0.5 * len(set(bid[use]))))
    if len(good_planes) < MIN_PLANES:
        raise ValueError(f"only {len(good_planes)} planes hold usable widths of most beads; a calibration needs "
                         f"at least {MIN_PLANES}")
    zr = (-float(good_planes.max()) * z_step_nm, -float(good_planes.min()) * z_step_nm)
    z0 = _crossing(px, py, zr)
    mag = float(magnification_factor)
    px = np.array([px[0], (px[1] - z0) * mag, px[2] * mag, px[3], px[4]])
    py = np.array([py[0], (py[1] - z0) * mag, py[2] * mag, py[3], py[4]])
    zr = ((zr[0] - z0) * mag, (zr[1] - z0) * mag)
    if z_range is not None:
        lo, hi = float(z_range[0]), float(z_range[1])
        if not (zr[0] <= lo < hi <= zr[1]):
            raise ValueError(f"z_range {z_range} must lie inside the measured range ({zr[0]:.0f}, {zr[1]:.0f}) nm")
        zr = (lo, hi)
    zs = (z[use] - z0) * mag
    rx = sx[use] / huang_width(zs, *((px[0], px[1], px[2], px[3], px[4]))) - 1
    ry = sy[use] / huang_width(zs, *py) - 1
    prov = {"source": source, "created": _now(), "spotfit_version": VERSION, "method": "bead stack",
            "z_step_nm": float(z_step_nm), "planes": planes, "magnification_factor": mag, "box": int(box),
            "beads_found": int(len(seen)), "beads_used": int(len(set(bid[use]))),
            "beads_rejected": [int(b) for b in rejected_beads], "points_used": int(use.sum()),
            "points_rejected": int((~use).sum()), "z_shift_nm": float(z0),
            "rms_rel_residual": [float(np.sqrt(np.mean(rx ** 2))), float(np.sqrt(np.mean(ry ** 2)))],
            "camera": camera.as_dict() if camera is not None else None,
            "points": {"z": [round(float(v), 2) for v in zs], "sigma_x": [round(float(v), 4) for v in sx[use]],
                       "sigma_y": [round(float(v), 4) for v in sy[use]], "bead": [int(b) for b in bid[use]]}}
    return AstigmaticCalibration(tuple(px), tuple(py), zr, prov)


def _follow(x, y, photons, radius):
    """Bead label of each fit: fits within ``radius`` px of a bead's first (brightest) fit are that bead."""
    order = np.argsort(-photons, kind="stable")
    label = np.full(len(x), -1)
    cx, cy = [], []
    for i in order:
        if cx:
            d2 = (np.asarray(cx) - x[i]) ** 2 + (np.asarray(cy) - y[i]) ** 2
            k = int(np.argmin(d2))
            if d2[k] <= radius * radius:
                label[i] = k
                continue
        label[i] = len(cx)
        cx.append(x[i])
        cy.append(y[i])
    return label
