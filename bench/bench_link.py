"""Speed of ``spotfit.link`` against Picasso 0.11's ``postprocess.link`` on the same table, and the time and
peak memory of linking 10^7 localizations.

    python bench/bench_link.py                          # 10^6 localizations, spotfit vs Picasso, 3 repeats
    python bench/bench_link.py --n 2e5 --repeat 5
    python bench/bench_link.py --scale 1e7              # + spotfit alone on 10^7 rows, in a fresh process

The table is ``spotfit.simulate_smlm`` blinking (random sites, DNA-PAINT-like kinetics, no drift). Both tools
get the same rows, sorted by frame, and the same rule where they share one: a fixed radius (``--radius``,
px) and ``max_dark_frames = 1`` (Picasso's ``max_dark_time = 1`` means the same: one missed frame). spotfit is
also timed with its default (the radius from the uncertainties, a 4.3-sigma gate per pair). Picasso runs in
the peers' venv (bench/peers/.venv) in a subprocess; its numba functions are compiled on a small table
first, and only ``postprocess.link`` is timed (table in memory). Times are medians of ``--repeat`` runs,
wall clock and the process's CPU time (which other jobs on the machine disturb less); the machine's load
average is printed with them.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PEERS_PYTHON = os.path.join(HERE, "peers", ".venv", "bin", "python")

PICASSO = r'''
import io as _io, json, sys, time
_o, _e = sys.stdout, sys.stderr
sys.stdout = sys.stderr = _io.StringIO()     # Picasso's imports print about audio backends
from picasso import postprocess
sys.stdout, sys.stderr = _o, _e
import numpy as np, pandas as pd
d = np.load(sys.argv[1])
radius, repeat = float(sys.argv[2]), int(sys.argv[3])
f32 = np.float32
locs = pd.DataFrame({"frame": d["frame"].astype(np.uint32), "x": d["x"].astype(f32), "y": d["y"].astype(f32),
                     "photons": d["photons"].astype(f32), "sx": d["sigma"].astype(f32), "sy": d["sigma"].astype(f32),
                     "bg": d["background"].astype(f32), "lpx": d["ux"].astype(f32), "lpy": d["ux"].astype(f32)})
info = [{"Frames": int(locs.frame.max()) + 1, "Width": 512, "Height": 512}]
postprocess.link(locs.iloc[:2000], info, r_max=radius, max_dark_time=1, remove_ambiguous_lengths=False)  # numba
times, cpu = [], []
for _ in range(repeat):
    t, c = time.perf_counter(), time.process_time()
    ev = postprocess.link(locs, info, r_max=radius, max_dark_time=1, remove_ambiguous_lengths=False)
    times.append(time.perf_counter() - t)
    cpu.append(time.process_time() - c)
print(json.dumps({"times": times, "cpu": cpu, "events": int(len(ev))}))
'''

CHILD_1E7 = r'''
import json, sys, time
import numpy as np, pandas as pd

def peak():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024

import spotfit
d = np.load(sys.argv[1])
locs = pd.DataFrame({k: d[k] for k in ("frame", "x", "y", "photons", "background", "sigma")})
locs["uncertainty_x"] = d["ux"]
locs["uncertainty_y"] = d["ux"]
del d
table_bytes = int(locs.memory_usage(deep=True).sum())
before_rss, before_peak = rss(), peak()
t = time.perf_counter()
ev = spotfit.link(locs)
dt = time.perf_counter() - t
print(json.dumps({"n": len(locs), "events": len(ev), "seconds": dt, "table_bytes": table_bytes,
                  "rss_before": before_rss, "peak_before": before_peak, "peak": peak()}))
'''


def make_table(n: int, seed: int = 0, per_frame: float = 150.0):
    """~n localizations of random sites blinking (mean on 3 frames, off 400), ~per_frame a frame, in a 512x512
    field."""
    import spotfit
    on = 3.0 / 403.0
    sites = int(round(per_frame / on))
    frames = int(np.ceil(n / (sites * on)))
    sim = spotfit.simulate_smlm("points", frames=frames, shape=(512, 512), count=sites, mean_on=3.0,
                                mean_off=400.0, drift=None, seed=seed)
    locs = sim.locs
    return {"frame": locs["frame"].to_numpy(np.int64), "x": locs["x"].to_numpy(), "y": locs["y"].to_numpy(),
            "photons": locs["photons"].to_numpy(), "background": locs["background"].to_numpy(np.float64),
            "sigma": locs["sigma"].to_numpy(np.float64), "ux": locs["uncertainty_x"].to_numpy()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=float, default=1e6, help="localizations of the spotfit-vs-Picasso table (default 1e6)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs of each (default 3; the median is kept)")
    p.add_argument("--radius", type=float, default=0.15, help="fixed radius of both tools, px (default 0.15)")
    p.add_argument("--scale", type=float, default=0, help="also link this many rows with spotfit alone (e.g. 1e7)")
    p.add_argument("--per-frame", type=float, default=150.0,
                   help="localizations per frame (density; Picasso scans the next frames' rows) (default 150)")
    p.add_argument("--no-peers", action="store_true", help="skip Picasso")
    a = p.parse_args(argv)
    import pandas as pd
    import spotfit
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    t = time.perf_counter()
    d = make_table(int(a.n), per_frame=a.per_frame)
    locs = pd.DataFrame({k: d[k] for k in ("frame", "x", "y", "photons", "background", "sigma")})
    locs["uncertainty_x"] = locs["uncertainty_y"] = d["ux"]
    print(f"table: {len(locs):,} localizations, {locs.frame.max() + 1:,} frames ({time.perf_counter() - t:.1f} s to "
          "simulate)")
    results = {}
    for name, kw in (("spotfit fixed radius", {"radius": a.radius}), ("spotfit default", {})):
        spotfit.link(locs.iloc[:1000], **kw)
        times, cpu = [], []
        for _ in range(a.repeat):
            t, c = time.perf_counter(), time.process_time()
            ev = spotfit.link(locs, **kw)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        results[name] = (statistics.median(times), statistics.median(cpu))
        print(f"{name:24s} median {results[name][0]:.3f} s of {a.repeat}, CPU {results[name][1]:.3f} s  "
              f"({len(locs) / results[name][0] / 1e6:.2f} M locs/s)  events {len(ev):,}  "
              f"load {os.getloadavg()[0]:.2f}")
    if not a.no_peers and os.path.exists(PEERS_PYTHON):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "locs.npz")
            np.savez(path, **d)
            out = subprocess.run([PEERS_PYTHON, "-c", PICASSO, path, str(a.radius), str(a.repeat)],
                                 capture_output=True, text=True, env=dict(os.environ, MPLBACKEND="Agg"))
        if out.returncode:
            print("Picasso failed:", out.stderr[-2000:])
        else:
            pic = json.loads(out.stdout.strip().splitlines()[-1])
            med, med_cpu = statistics.median(pic["times"]), statistics.median(pic["cpu"])
            print(f"{'Picasso 0.11 link':24s} median {med:.3f} s of {a.repeat}, CPU {med_cpu:.3f} s  "
                  f"({len(locs) / med / 1e6:.2f} M locs/s)  events {pic['events']:,}  load {os.getloadavg()[0]:.2f}")
            for name, (sec, sec_cpu) in results.items():
                print(f"  {name}: {med / sec:.1f}x faster than Picasso ({med_cpu / sec_cpu:.1f}x in CPU time)")
    elif not a.no_peers:
        print("Picasso skipped: no bench/peers/.venv (bash bench/peers/install_peers.sh)")
    if a.scale:
        del locs
        t = time.perf_counter()
        big = make_table(int(a.scale), seed=1, per_frame=a.per_frame)
        print(f"\n{len(big['x']):,} localizations simulated in {time.perf_counter() - t:.0f} s")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "big.npz")
            np.savez(path, **big)
            del big
            out = subprocess.run([sys.executable, "-c", CHILD_1E7, path], capture_output=True, text=True)
        if out.returncode:
            print("10^7 run failed:", out.stderr[-2000:])
            return 1
        r = json.loads(out.stdout.strip().splitlines()[-1])
        mib = 2 ** 20
        print(f"spotfit.link on {r['n']:,} rows: {r['seconds']:.1f} s, {r['events']:,} events; table "
              f"{r['table_bytes'] / mib:.0f} MiB; process RSS before {r['rss_before'] / mib:.0f} MiB, peak "
              f"{r['peak'] / mib:.0f} MiB: link added {(r['peak'] - max(r['rss_before'], 0)) / mib:.0f} MiB "
              f"({(r['peak'] - r['rss_before']) / r['n']:.0f} bytes per localization); load {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
