#!/usr/bin/env python3
"""Drift correction: spotfit.undrift against Picasso 0.11's AIM (``picasso.aim.aim``) and RCC
(``picasso.postprocess.undrift``), in the same run, on the same simulated DNA-PAINT table.

The table (``spotfit.simulate_smlm``): 20,000 frames, 128x128 px of 130 nm, DNA-origami grids, ~10 nm
localization precision; drift = random walk of 0.002 px/frame RMS per axis (the AIM paper's benchmark step)
+ linear + a slow sine. A second table adds a 100 nm jump between two frames.

Prints, per method: the RMS error of the drift (nm, over frames, global offset removed) and the seconds
(median of --repeats warm runs; Picasso's numba compilation is done on a small table first and excluded).
Picasso runs in the peers' venv (bench/peers/.venv, bash bench/peers/install_peers.sh) in a subprocess.

    python bench/bench_drift.py [--frames 20000] [--repeats 3] [--no-peers] [--no-rcc]
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

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS_PY = os.path.join(HERE, "peers", ".venv", "bin", "python")
PIXEL_NM = 130.0

# Runs inside the peers' venv (never imports spotfit): reads the table, times Picasso, writes the drifts.
PEER_SCRIPT = r'''
import json, sys, time, warnings
import numpy as np, pandas as pd
warnings.filterwarnings("ignore")
from picasso import aim, postprocess
src, dst, repeats, do_rcc = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] == "1"
d = np.load(src)
n_frames, w = int(d["frames"]), int(d["width"])
def table(sel):
    n = int(sel.sum())
    return pd.DataFrame({"frame": d["frame"][sel].astype(np.uint32), "x": d["x"][sel].astype(np.float32),
                         "y": d["y"][sel].astype(np.float32), "photons": d["photons"][sel].astype(np.float32),
                         "sx": np.full(n, 1.0, np.float32), "sy": np.full(n, 1.0, np.float32),
                         "bg": np.full(n, 100.0, np.float32), "lpx": d["lpx"][sel].astype(np.float32),
                         "lpy": d["lpx"][sel].astype(np.float32), "ellipticity": np.zeros(n, np.float32),
                         "net_gradient": np.full(n, 1000.0, np.float32)})
def info(frames):
    return [{"Width": w, "Height": w, "Frames": frames, "Pixelsize": 130.0}]
locs = table(np.ones(len(d["x"]), bool))
small = table(d["frame"] < 2000)
out = {}
aim.aim(small, info(2000), segmentation=100, intersect_d=20 / 130, roi_r=60 / 130)   # numba compile
times = []
for _ in range(repeats):
    t = time.perf_counter()
    _, _, drift = aim.aim(locs, info(n_frames), segmentation=100, intersect_d=20 / 130, roi_r=60 / 130)
    times.append(time.perf_counter() - t)
out["aim"] = {"seconds": times, "x": drift["x"].to_numpy(float).tolist(), "y": drift["y"].to_numpy(float).tolist()}
if do_rcc:
    postprocess.undrift(small, info(2000), 400, display=False)   # >= 4 segments for its spline
    times = []
    for _ in range(max(1, repeats // 2)):
        t = time.perf_counter()
        drift, _ = postprocess.undrift(locs, info(n_frames), 1000, display=False)
        times.append(time.perf_counter() - t)
    out["rcc"] = {"seconds": times, "x": drift["x"].to_numpy(float).tolist(), "y": drift["y"].to_numpy(float).tolist()}
json.dump(out, open(dst, "w"))
'''


def simulate(frames, jump, seed):
    import spotfit
    from spotfit.smlm import drift_trajectory
    drift = drift_trajectory(frames, seed=seed + 100,
                             jump=(frames // 2 + 17, 100 / PIXEL_NM * 0.8, 100 / PIXEL_NM * 0.6) if jump else None)
    return spotfit.simulate_smlm("grid", frames=frames, shape=(128, 128), count=60, photons=1000, background=100,
                                 drift=drift, seed=seed)


def rms_nm(est_x, est_y, truth, exclude=None):
    e = np.stack([np.asarray(est_x) - truth["x"].to_numpy(), np.asarray(est_y) - truth["y"].to_numpy()], -1)
    keep = np.ones(len(e), bool)
    if exclude is not None:
        keep[max(0, exclude[0]):exclude[1]] = False
    e = e[keep] - e[keep].mean(axis=0)
    return float(np.sqrt(np.mean(np.sum(e ** 2, axis=1) / 2))) * PIXEL_NM


def run_peers(sim, frames, repeats, rcc, python):
    with tempfile.TemporaryDirectory() as tmp:
        src, dst, script = (os.path.join(tmp, n) for n in ("locs.npz", "out.json", "peer.py"))
        L = sim.locs
        np.savez(src, frame=L["frame"].to_numpy(), x=L["x"].to_numpy(), y=L["y"].to_numpy(),
                 photons=L["photons"].to_numpy(), lpx=L["uncertainty_x"].to_numpy(), frames=frames, width=128)
        with open(script, "w") as fh:
            fh.write(PEER_SCRIPT)
        env = dict(os.environ, PYTHONWARNINGS="ignore")
        proc = subprocess.run([python, script, src, dst, str(repeats), "1" if rcc else "0"], env=env,
                              capture_output=True, text=True, timeout=3600)
        if proc.returncode:
            raise RuntimeError(f"peers failed:\n{proc.stderr[-3000:]}")
        with open(dst) as fh:
            return json.load(fh)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=20000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-peers", action="store_true", help="spotfit only")
    ap.add_argument("--no-rcc", action="store_true", help="skip the RCC methods (slow in Picasso)")
    ap.add_argument("--no-jump", action="store_true", help="skip the table with a 100 nm jump")
    ap.add_argument("--peers-python", default=PEERS_PY)
    a = ap.parse_args()
    import spotfit
    print(f"load average before: {os.getloadavg()[0]:.2f} (1 min), cores: {os.cpu_count()}")
    for jump in ([False] if a.no_jump else [False, True]):
        sim = simulate(a.frames, jump, a.seed)
        L, truth = sim.locs, sim.drift
        jf = int(a.frames // 2 + 17)
        exclude = (jf - 200, jf + 200) if jump else None
        print(f"\n== {'with a 100 nm jump at frame %d' % jf if jump else 'no jump'}: {len(L):,} localizations, "
              f"{a.frames} frames, precision {L['uncertainty_x'].median() * PIXEL_NM:.1f} nm (median)")
        results = {}
        for method in ("aim",) + (() if a.no_rcc else ("rcc",)):
            spotfit.undrift(L.iloc[:2000], method=method)   # import and first-call costs excluded
            times = []
            for _ in range(a.repeats):
                t = time.perf_counter()
                _, drift = spotfit.undrift(L, method=method)
                times.append(time.perf_counter() - t)
            results[f"spotfit {method}"] = (rms_nm(drift["x"], drift["y"], truth, exclude), float(np.median(times)))
            if jump:
                print(f"   spotfit {method}: jump found at frames {drift.attrs['spotfit']['jump_frames']} (true {jf})")
        if not a.no_peers:
            if not os.path.exists(a.peers_python):
                print("bench/peers/.venv not found: bash bench/peers/install_peers.sh (Picasso skipped)")
            else:
                peers = run_peers(sim, a.frames, a.repeats, not a.no_rcc, a.peers_python)
                for m, r in peers.items():
                    results[f"picasso {m}"] = (rms_nm(r["x"], r["y"], truth, exclude), float(np.median(r["seconds"])))
        what = "RMS error (nm), frames within 200 of the jump left out" if jump else "RMS error (nm)"
        print(f"   {'method':16s} {what:>55s} {'seconds (median)':>18s}")
        for name, (err, sec) in results.items():
            print(f"   {name:16s} {err:55.2f} {sec:18.3f}")
        if "picasso aim" in results:
            sa, pa = results["spotfit aim"], results["picasso aim"]
            print(f"   spotfit aim vs Picasso AIM: error {sa[0]:.2f} vs {pa[0]:.2f} nm, {pa[1] / sa[1]:.1f}x faster")
        if "picasso rcc" in results and "spotfit rcc" in results:
            sr, pr = results["spotfit rcc"], results["picasso rcc"]
            print(f"   spotfit rcc vs Picasso RCC: error {sr[0]:.2f} vs {pr[0]:.2f} nm, {pr[1] / sr[1]:.1f}x faster")
    print(f"\nload average after: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    sys.exit(main())
