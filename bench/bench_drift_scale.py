"""spotfit.undrift (AIM, defaults) on ~10^7 localizations: seconds, drift error and the process's peak RSS
above what it held before the call (Linux: /proc/self/status).

    python bench/bench_drift_scale.py

The table: spotfit.simulate_smlm DNA-origami-like grids (400 of them) on 256x256 px, 100,000 frames,
~9.6 M localizations at ~10 nm precision, drift = random walk + linear + slow sine
(spotfit.smlm.drift_trajectory). The error is RMS over frames (global offset removed), at 130 nm per pixel.
"""
import gc
import os
import time

import numpy as np

import spotfit
from spotfit.smlm import drift_trajectory

PIXEL_NM = 130.0


def status_bytes(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024


def main():
    t = time.perf_counter()
    frames = 100_000
    sim = spotfit.simulate_smlm("grid", frames=frames, shape=(256, 256), count=400, photons=1000, background=100,
                                drift=drift_trajectory(frames, seed=7), seed=7)
    locs, truth = sim.locs, sim.drift
    del sim
    gc.collect()
    print(f"{len(locs):,} localizations, {frames} frames, simulated in {time.perf_counter() - t:.0f} s; table "
          f"{locs.memory_usage(deep=True).sum() / 2**20:.0f} MiB", flush=True)
    with open("/proc/self/clear_refs", "w") as f:   # reset the peak (VmHWM) to the current RSS
        f.write("5")
    before = status_bytes("VmRSS:")
    t = time.perf_counter()
    _, drift = spotfit.undrift(locs)
    seconds = time.perf_counter() - t
    peak = status_bytes("VmHWM:")
    ex = drift["x"].to_numpy() - truth["x"].to_numpy()
    ey = drift["y"].to_numpy() - truth["y"].to_numpy()
    ex, ey = ex - ex.mean(), ey - ey.mean()
    rms = np.sqrt(np.mean((ex ** 2 + ey ** 2) / 2)) * PIXEL_NM
    print(f"undrift: {seconds:.1f} s, drift error {rms:.2f} nm RMS; RSS before {before / 2**20:.0f} MiB, peak "
          f"{peak / 2**20:.0f} MiB: +{(peak - before) / 2**20:.0f} MiB; load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
