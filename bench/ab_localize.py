"""A/B timing of `spotfit.localize` for two installs of spotfit in the same run (a refactor must not slow it).

    python -m pip install --no-deps --target /tmp/base_site <checkout of the old commit>
    python bench/ab_localize.py --other /tmp/base_site [--frames 1000 --rounds 7]

Each round times both installs, each in a fresh subprocess (alternating which goes first), on the same
simulated movie (the default one, 256x256, ~15 spots/frame); every subprocess reports the median of
three timed calls after one warm-up. Prints the per-install median frames/s, the ratio and the load.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = r"""
import json, sys, time
import numpy as np, spotfit
frames, estimator = int(sys.argv[1]), sys.argv[2]
camera = spotfit.Camera(baseline=100, sensitivity=0.5)
movie, _ = spotfit.simulate(frames=frames, camera=camera, seed=1)
spotfit.localize(movie[:50], camera=camera, estimator=estimator)
times = []
for _ in range(3):
    t = time.perf_counter()
    locs = spotfit.localize(movie, camera=camera, estimator=estimator)
    times.append(time.perf_counter() - t)
print(json.dumps({"seconds": sorted(times)[1], "rows": len(locs), "file": spotfit.__file__}))
"""


def run(site, frames, estimator):
    env = dict(os.environ)
    if site:
        env["PYTHONPATH"] = site + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", CHILD, str(frames), estimator], env=env, cwd="/",
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--other", required=True, help="site folder of the other install (pip --target)")
    ap.add_argument("--frames", type=int, default=1000, help="movie length (default 1000)")
    ap.add_argument("--rounds", type=int, default=7, help="A/B rounds (default 7)")
    ap.add_argument("--estimator", default="mle", help="mle or lsq (default mle)")
    args = ap.parse_args()
    fps = {"this": [], "other": []}
    files = {}
    for r in range(args.rounds):
        order = [("this", None), ("other", args.other)]
        for name, site in (order if r % 2 == 0 else order[::-1]):
            res = run(site, args.frames, args.estimator)
            fps[name].append(args.frames / res["seconds"])
            files[name] = (res["file"], res["rows"])
    med = {k: statistics.median(v) for k, v in fps.items()}
    for k in fps:
        print(f"{k:6s} {med[k]:9,.0f} frames/s (median of {args.rounds}; range {min(fps[k]):,.0f}-{max(fps[k]):,.0f}) "
              f"rows {files[k][1]}  {files[k][0]}")
    print(f"this / other = {med['this'] / med['other']:.3f}; load average {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
