"""Astigmatic 3D side by side: spotfit's calibration + direct z fit against Picasso 0.11's calibrate_z + zfit.

In one run, on the same simulated bead stack and movie (TIFF files): spotfit.calibrate_astigmatism +
spotfit.localize(model="astigmatic") (MLE), and Picasso's identify + least-squares fit with free sx, sy,
zfit.calibrate_z, then zfit.zfit (bench/peers/picasso_3d.py, in the peers' venv). Isolated emitters, z uniform
in +-500 nm, 1,000-6,000 photons, 20-30 photons/px background. Prints, for emitters with |z| <= 400 nm matched
within 1 px: z RMSE, its ratio to the Cramér-Rao bound (at the true parameters, spotfit.crlb in the fit box),
the same ratio for x, y, and seconds (calibration, fit). Both run in one thread (Picasso's fit is a serial loop
with multiprocess=False; spotfit threads=1); spotfit with all threads is printed too.

    python bench/bench_3d.py [--frames 400] [--seed 1]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
import pandas as pd

import spotfit
from spotfit.bounds import crlb

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS_PY = os.path.join(HERE, "peers", ".venv", "bin", "python")
TRUTH = spotfit.AstigmaticCalibration((1.3, -300.0, 400.0, 0.0, 0.0), (1.3, 300.0, 400.0, 0.0, 0.0), (-600.0, 600.0))
CAMERA = spotfit.Camera(baseline=100, sensitivity=0.5)


def match(locs, truth, radius=1.0):
    """Nearest localization within ``radius`` px of each true emitter in its frame (or none)."""
    rows = []
    by_frame = {f: g for f, g in locs.groupby("frame")}
    for f, t in truth.groupby("frame"):
        g = by_frame.get(f)
        if g is None or not len(g):
            continue
        d = np.hypot(t["x"].to_numpy()[:, None] - g["x"].to_numpy(), t["y"].to_numpy()[:, None] - g["y"].to_numpy())
        j = d.argmin(axis=1)
        ok = d[np.arange(len(t)), j] < radius
        rows.append(pd.DataFrame({"truth": t.index[ok], "dx": g["x"].to_numpy()[j[ok]] - t["x"].to_numpy()[ok],
                                  "dy": g["y"].to_numpy()[j[ok]] - t["y"].to_numpy()[ok],
                                  "dz": g["z"].to_numpy()[j[ok]] - t["z"].to_numpy()[ok]}))
    return pd.concat(rows, ignore_index=True)


def scores(m, truth, bounds, seconds, common=None):
    matched = len(m)
    if common is not None:   # the emitters every method found: no method scores better by missing hard ones
        m = m[m["truth"].isin(common)]
    t = truth.loc[m["truth"]]
    inner = np.abs(t["z"].to_numpy()) <= 400
    b = bounds.loc[m["truth"]][inner]
    mi = m[inner]
    z_rmse = float(np.sqrt(np.mean(mi["dz"] ** 2)))
    zr = z_rmse / float(np.sqrt(np.mean(b["z"] ** 2)))
    xyr = float(np.sqrt(np.mean((mi["dx"] ** 2 + mi["dy"] ** 2) / 2)) / np.sqrt(np.mean((b["x"] ** 2 + b["y"] ** 2) / 2)))
    return {"matched": matched, "of": len(truth), "z_rmse_nm": z_rmse, "z_ratio": zr, "xy_ratio": xyr, **seconds}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=400)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--z-step", type=float, default=20.0)
    p.add_argument("--gradient", type=float, default=400.0, help="Picasso minimum net gradient, movie")
    p.add_argument("--bead-gradient", type=float, default=2000.0, help="Picasso minimum net gradient, beads")
    p.add_argument("--no-peers", action="store_true")
    a = p.parse_args(argv)
    import tifffile
    box = TRUTH.default_box()
    with tempfile.TemporaryDirectory() as tmp:
        beads, _ = spotfit.simulate_beads(TRUTH, z_step_nm=a.z_step, beads=20, photons=20000, background=30,
                                          shape=(128, 128), camera=CAMERA, seed=a.seed)
        movie, truth = spotfit.simulate_astigmatic(TRUTH, frames=a.frames, shape=(128, 128), density=5,
                                                   min_distance=2 * box, camera=CAMERA, seed=a.seed + 1)
        bpath, mpath = os.path.join(tmp, "beads.tif"), os.path.join(tmp, "movie.tif")
        for path, arr in ((bpath, beads), (mpath, movie)):
            tifffile.imwrite(path, arr, imagej=True, metadata={"axes": "TYX"})
        c = (box - 1) / 2
        bnd = [crlb(r.photons, r.background, box=box, model="astigmatic", x=c + r.x % 1 - (r.x % 1 > 0.5),
                    y=c + r.y % 1 - (r.y % 1 > 0.5), z=r.z, calibration=TRUTH) for r in truth.itertuples()]
        bounds = pd.DataFrame({k: [b[k] for b in bnd] for k in ("x", "y", "z")}, index=truth.index)
        results = {}
        for threads in (1, None):
            t0 = time.perf_counter()
            cal = spotfit.calibrate_astigmatism(bpath, z_step_nm=a.z_step, camera=CAMERA, threads=threads)
            t1 = time.perf_counter()
            locs = spotfit.localize(mpath, camera=CAMERA, model="astigmatic", calibration=cal, threads=threads)
            t2 = time.perf_counter()
            locs = locs[locs["status"] == "converged"]
            name = f"spotfit MLE ({'1 thread' if threads == 1 else 'all threads'})"
            results[name] = (match(locs, truth), {"calibration_s": t1 - t0, "fit_s": t2 - t1})
        if not a.no_peers and os.path.exists(PEERS_PY):
            out = os.path.join(tmp, "picasso.csv")
            cmd = [PEERS_PY, os.path.join(HERE, "peers", "picasso_3d.py"), "--beads", bpath, "--movie", mpath,
                   "--z-step", str(a.z_step), "--box", str(box), "--gradient", str(a.gradient),
                   "--bead-gradient", str(a.bead_gradient), "--out", out]
            proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NUMBA_NUM_THREADS": "1"})
            if proc.returncode:
                print(proc.stderr[-3000:], file=sys.stderr)
            else:
                pic = pd.read_csv(out)
                info = json.load(open(out[:-4] + ".json"))
                results["Picasso 0.11 LQ + zfit (1 thread)"] = (
                    match(pic, truth), {"calibration_s": info["calibration_seconds"],
                                        "fit_s": info["fit_seconds"] + info["zfit_seconds"]})
    common = set(truth.index)
    for m, _ in results.values():
        common &= set(m["truth"])
    results = {name: scores(m, truth, bounds, sec, sorted(common)) for name, (m, sec) in results.items()}
    print(f"movie: {a.frames} frames 128x128, {len(truth)} emitters, z in +-500 nm, 1000-6000 photons, "
          f"20-30 photons/px; bead stack: {beads.shape[0]} planes, {a.z_step:g} nm steps; scores: the {len(common)} emitters every method found, those with |z| <= 400 nm; box {box} px for both")
    print(f"{'method':36s} {'matched':>9s} {'z RMSE':>8s} {'z/CRLB':>7s} {'xy/CRLB':>8s} {'calib s':>8s} {'fit s':>7s}")
    for name, r in results.items():
        print(f"{name:36s} {r['matched']:5d}/{r['of']:<4d} {r['z_rmse_nm']:7.1f}  {r['z_ratio']:6.3f}  "
              f"{r['xy_ratio']:7.3f}  {r['calibration_s']:7.2f}  {r['fit_s']:6.2f}")
    return results


if __name__ == "__main__":
    main()
