"""The ``spotfit`` command line."""
from __future__ import annotations

import argparse
import sys
import time


def _demo(args) -> int:
    import numpy as np

    import spotfit
    from spotfit.evaluate import match
    print(f"spotfit {spotfit.__version__}: simulating {args.frames} frames of 256x256 "
          "(~15 spots/frame, 500-5000 photons, 20 photons/px background, sigma 1.3 px)")
    cam = spotfit.Camera(baseline=100, sensitivity=0.5)
    movie, truth = spotfit.simulate(frames=args.frames, camera=cam, seed=args.seed)
    t = time.perf_counter()
    locs = spotfit.localize(movie, camera=cam, psf_sigma=1.3, progress=True)
    dt = time.perf_counter() - t
    m = match(truth, locs, tolerance=1.0)
    print(f"localized {len(locs)} spots in {dt:.2f} s ({args.frames / dt:,.0f} frames/s)")
    print(f"recall {m['recall']:.4f}  precision {m['precision']:.4f}  "
          f"bias x {m['bias_x']:+.4f} px  y {m['bias_y']:+.4f} px  RMSE {m['rmse']:.4f} px")
    print(locs.head().to_string())
    return 0 if m["recall"] > 0.9 and np.isfinite(m["rmse"]) else 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="spotfit", description=__doc__)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="simulate a movie, localize it and score against the truth")
    demo.add_argument("--frames", type=int, default=500)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    if args.version:
        import spotfit
        print(spotfit.__version__)
        return 0
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
