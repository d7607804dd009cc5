"""Spread of Camera.estimate over seeds, for the simulated cameras of tests/test_camera_estimate.py (issue 16.3).

    python bench/camera_estimate.py [--seeds 5] [--frames 2000]

For each case and seed: simulate, estimate, and report the gain's relative error, the offset's error (ADU),
the reported standard errors and the model check; then the mean and sd over seeds. The figures in
docs/camera.md come from this script.
"""
import argparse
import importlib.util
import time
from pathlib import Path

import numpy as np

import spotfit

_TESTS = Path(__file__).resolve().parents[1] / "tests" / "test_camera_estimate.py"
_spec = importlib.util.spec_from_file_location("camera_cases", _TESTS)
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)       # one list of cases: the test's


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--frames", type=int, default=2000)
    args = ap.parse_args()
    print(f"# {time.strftime('%Y-%m-%d')}, {args.frames} frames, {args.seeds} seeds per case")
    print("| case | gain error % (mean ± sd) | max abs % | offset error ADU (mean ± sd) | max abs ADU "
          "| reported gain sd % | reported offset sd ADU | chi2/dof |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (camera, background, read_noise, shape) in cases.CASES.items():
        if isinstance(background, str):
            background = cases._profile(*shape, 5.0, 80.0)
        gain = camera.em_gain / camera.sensitivity
        rows = []
        for seed in range(args.seeds):
            movie, _ = spotfit.simulate(frames=args.frames, shape=shape, density=shape[0] * shape[1] / 1500,
                                        background=background, camera=camera, seed=1000 + seed,
                                        read_noise=read_noise, excess_noise=camera.em_gain > 1)
            found = spotfit.Camera.estimate(movie, em_gain=camera.em_gain)
            rows.append((100 * (found.gain / gain - 1), found.baseline - camera.baseline,
                         100 * found.gain_error / found.gain, found.baseline_error, found.fit_chi2))
        r = np.array(rows)
        print(f"| {name} | {r[:, 0].mean():+.2f} ± {r[:, 0].std(ddof=1):.2f} | {np.abs(r[:, 0]).max():.2f} "
              f"| {r[:, 1].mean():+.2f} ± {r[:, 1].std(ddof=1):.2f} | {np.abs(r[:, 1]).max():.2f} "
              f"| {np.median(r[:, 2]):.2f} | {np.median(r[:, 3]):.2f} | {np.median(r[:, 4]):.2f} |", flush=True)


if __name__ == "__main__":
    main()
