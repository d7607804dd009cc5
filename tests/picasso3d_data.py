"""A Picasso-made astigmatic calibration and Picasso's z of a movie, for tests/test_astig_picasso.py.

The bead stack and the movie are spotfit simulations (fixed seeds, below); Picasso 0.11 (the peers' venv) then
runs its own pipeline on them through bench/peers/picasso_3d.py: identify + least-squares fit with free sx, sy,
``zfit.calibrate_z`` (which writes the YAML with ``io.save_calibration``) and ``zfit.zfit`` on the movie.

    python tests/picasso3d_data.py      # rewrites tests/data/picasso_3d_calib.yaml and picasso_3d_zfit.csv

(needs bench/peers/.venv: bash bench/peers/install_peers.sh). The committed files let the test run without
the peers' venv; with it, the test also makes them afresh.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS_PY = os.path.join(ROOT, "bench", "peers", ".venv", "bin", "python")
YAML = os.path.join(HERE, "data", "picasso_3d_calib.yaml")
CSV = os.path.join(HERE, "data", "picasso_3d_zfit.csv")
Z_STEP = 20.0
BOX = 19


def truth_calibration():
    import spotfit
    return spotfit.AstigmaticCalibration((1.3, -300.0, 400.0, 0.0, 0.0), (1.3, 300.0, 400.0, 0.0, 0.0),
                                         (-600.0, 600.0))


def camera():
    import spotfit
    return spotfit.Camera(baseline=100, sensitivity=0.5)


def simulate():
    """(beads, movie, truth): 61 planes of 20 beads, 20 nm steps; 60 frames of ~5 isolated emitters each."""
    import spotfit
    cal = truth_calibration()
    beads, _ = spotfit.simulate_beads(cal, z_step_nm=Z_STEP, beads=20, photons=20000, background=30,
                                      shape=(128, 128), camera=camera(), seed=181)
    movie, truth = spotfit.simulate_astigmatic(cal, frames=60, shape=(128, 128), density=5, min_distance=2 * BOX,
                                               camera=camera(), seed=182)
    return beads, movie, truth


def run_picasso(beads, movie, tmp, python=PEERS_PY):
    """Picasso's calibrate_z + zfit in the peers' venv; returns (yaml path, csv path) under ``tmp``."""
    import tifffile
    bpath, mpath = os.path.join(tmp, "beads.tif"), os.path.join(tmp, "movie.tif")
    for path, arr in ((bpath, beads), (mpath, movie)):
        tifffile.imwrite(path, arr, imagej=True, metadata={"axes": "TYX"})
    yaml, csv = os.path.join(tmp, "calib.yaml"), os.path.join(tmp, "zfit.csv")
    cmd = [python, os.path.join(ROOT, "bench", "peers", "picasso_3d.py"), "--beads", bpath, "--movie", mpath,
           "--z-step", str(Z_STEP), "--box", str(BOX), "--gradient", "400", "--bead-gradient", "2000",
           "--out", csv, "--calibration-yaml", yaml]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "NUMBA_NUM_THREADS": "1"})
    if proc.returncode:
        raise RuntimeError(f"Picasso failed:\n{proc.stderr[-3000:]}")
    return yaml, csv


if __name__ == "__main__":
    beads, movie, _ = simulate()
    with tempfile.TemporaryDirectory() as tmp:
        y, c = run_picasso(beads, movie, tmp, sys.argv[1] if len(sys.argv) > 1 else PEERS_PY)
        shutil.copy(y, YAML)
        shutil.copy(c, CSV)
    print("wrote", YAML, CSV)
