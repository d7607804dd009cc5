#!/usr/bin/env python3
"""Picasso 0.11's astigmatic 3D on a bead stack and a movie (run INSIDE the peers' venv; never imports spotfit).

Picasso's own pipeline, as its Localize GUI runs it: identify (minimum net gradient) + least-squares fit with
free sx, sy (``localize.fit(fitting_method="gausslq")``) of the bead stack, ``zfit.calibrate_z`` on those
localizations, the same identify + fit of the movie, then ``zfit.zfit`` (z from sx, sy on the calibration
curves). Writes the movie's localizations (frame, x, y, z, sx, sy, lpz) as CSV and the timings as JSON.
"""
from __future__ import annotations

import argparse
import json
import time
import warnings

import matplotlib
matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--beads", required=True)
    p.add_argument("--movie", required=True)
    p.add_argument("--z-step", type=float, required=True, help="nm")
    p.add_argument("--box", type=int, required=True)
    p.add_argument("--gradient", type=float, required=True, help="minimum net gradient (movie)")
    p.add_argument("--bead-gradient", type=float, required=True)
    p.add_argument("--baseline", type=float, default=100.0)
    p.add_argument("--sensitivity", type=float, default=0.5)
    p.add_argument("--pixelsize", type=float, default=130.0)
    p.add_argument("--out", required=True, help="CSV; the JSON goes next to it")
    p.add_argument("--calibration-yaml", default=None, help="also write calibrate_z's YAML here (io.save_calibration)")
    a = p.parse_args()
    warnings.simplefilter("ignore")
    from picasso import io as pio
    from picasso import localize, zfit
    cam = {"Baseline": a.baseline, "Sensitivity": a.sensitivity, "Gain": 1, "Qe": 1, "Pixelsize": a.pixelsize}

    def lq(movie, gradient):
        ids, _ = localize.identify(movie, gradient, a.box, threaded=False)
        locs, _ = localize.fit(movie, camera_info=cam, identifications=ids, box=a.box, fitting_method="gausslq",
                               multiprocess=False)
        return locs

    beads, binfo = pio.load_movie(a.beads)
    mv, minfo = pio.load_movie(a.movie)
    # warm numba's compilation up on a few frames (not timed, as run_peers.py does)
    lq(beads, a.bead_gradient)   # numba compiles on the first call: not timed
    t0 = time.perf_counter()
    blocs = lq(beads, a.bead_gradient)
    info = [{"Frames": int(beads.shape[0]), "Width": int(beads.shape[2]), "Height": int(beads.shape[1]),
             "Pixelsize": a.pixelsize}]
    cal = zfit.calibrate_z(blocs, info, a.z_step, 1.0, path=a.calibration_yaml)
    t1 = time.perf_counter()
    locs = lq(mv, a.gradient)
    t2 = time.perf_counter()
    minfo = [{"Frames": int(mv.shape[0]), "Width": int(mv.shape[2]), "Height": int(mv.shape[1]),
              "Pixelsize": a.pixelsize}]
    zlocs, _ = zfit.zfit(locs, minfo, calibration=cal, magnification_factor=1.0, pixelsize=a.pixelsize,
                         fitting_method="gausslq", filter=0)
    t3 = time.perf_counter()
    out = pd.DataFrame({k: np.asarray(zlocs[k]) for k in ("frame", "x", "y", "z", "sx", "sy", "lpz", "photons")})
    out.to_csv(a.out, index=False)
    with open(a.out.rsplit(".", 1)[0] + ".json", "w") as f:
        json.dump({"calibration_seconds": t1 - t0, "fit_seconds": t2 - t1, "zfit_seconds": t3 - t2,
                   "bead_locs": int(len(blocs)), "locs": int(len(out)),
                   "calibration": {k: v for k, v in cal.items() if isinstance(v, (int, float, str, list))}}, f)


if __name__ == "__main__":
    main()
