"""``spotfit undrift``: estimate and remove stage drift from a localization table."""
from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from .common import UsageError, add_table_input, check_output_path, check_writer, help_text, load_table, output_format


def _fiducial(text: str):
    try:
        x, y, r = (float(v) for v in text.split(","))
    except ValueError:
        raise UsageError(f"--fiducial takes X,Y,RADIUS in px, got {text!r}") from None
    if r <= 0:
        raise UsageError(f"--fiducial radius must be > 0, got {r:g}")
    return (x, y, r)


def _plot(drift, path: Path, pixel_size_nm) -> None:
    """Drift per frame (nm when the pixel size is known) with its uncertainty band, to a PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    scale, unit = (pixel_size_nm, "nm") if pixel_size_nm else (1.0, "px")
    axes = [a for a in ("x", "y", "z") if a in drift.columns]
    fig, ax = plt.subplots(figsize=(8, 4))
    f = drift["frame"].to_numpy()
    for a in axes:
        s = scale if a != "z" else 1.0
        v, u = drift[a].to_numpy() * s, drift[f"uncertainty_{a}"].to_numpy() * s
        ax.plot(f, v, lw=1, label=a)
        ax.fill_between(f, v - u, v + u, alpha=0.3, lw=0)
    ax.set_xlabel("frame")
    ax.set_ylabel(f"drift ({unit})")
    ax.legend()
    ax.set_title(f"drift ({drift.attrs.get('spotfit', {}).get('drift_method', '')})")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)


def undrift(args) -> int:
    """Handler of ``spotfit undrift``."""
    from spotfit import io
    from spotfit._shared.atomic import atomic_path
    from spotfit.postprocess import undrift as run
    out = Path(args.output)
    fmt = output_format(out, args.format)
    check_output_path(out)
    check_writer(fmt)
    drift_csv = Path(args.drift) if args.drift else out.with_name(out.stem + "_drift.csv")
    plot = None if (args.no_plot or args.apply) else \
        (Path(args.plot) if args.plot else out.with_name(out.stem + "_drift.png"))
    for p in [drift_csv] + ([plot] if plot else []):
        check_output_path(p)
    if plot is not None:
        from spotfit._shared.optional import need
        try:
            need("matplotlib", "the drift plot (or --no-plot)")
        except ImportError as exc:
            raise UsageError(str(exc)) from None
    fiducials = [_fiducial(t) for t in args.fiducial] if args.fiducial else None
    if fiducials and args.method != "fiducials":
        raise UsageError("--fiducial needs --method fiducials")
    locs = load_table(args.locs, args.input_format, args.pixel_size)
    if args.apply:
        import pandas as pd
        from spotfit.postprocess import apply_drift
        try:
            drift = pd.read_csv(args.apply)
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read the drift table {args.apply!r}: {exc}") from None
        corrected = apply_drift(locs, drift)
        io.save(corrected, out, format=fmt, pixel_size_nm=args.pixel_size)
        print(f"{len(corrected)} localizations corrected by {args.apply} -> {out}")
        return 0
    progress = args.progress if args.progress is not None else sys.stderr.isatty()
    corrected, drift = run(locs, method=args.method, segment=args.segment, max_jump=args.max_jump,
                           fiducials=fiducials, frames=args.frames, threads=args.threads, progress=progress)
    pixel_size = args.pixel_size or locs.attrs.get("spotfit", {}).get("pixel_size_nm")
    # Every output is written to a temporary file first, all renamed at the end: a failure leaves none.
    with contextlib.ExitStack() as stack:
        tmp_csv = stack.enter_context(atomic_path(drift_csv))
        drift.to_csv(tmp_csv, index=False)
        if plot is not None:
            _plot(drift, stack.enter_context(atomic_path(plot)), pixel_size)
        io.save(corrected, out, format=fmt, pixel_size_nm=args.pixel_size)
    jumps = drift.attrs["spotfit"]["jump_frames"]
    amp = float(max(drift["x"].max() - drift["x"].min(), drift["y"].max() - drift["y"].min()))
    print(f"{len(corrected)} localizations, {len(drift)} frames, drift range {amp:.3g} px"
          + (f", jumps at frames {jumps}" if jumps else "") + f" -> {out}, {drift_csv}"
          + (f", {plot}" if plot else ""))
    return 0


def register(subparsers) -> None:
    """Add ``undrift`` to ``spotfit``'s subparsers."""
    from spotfit import io
    from spotfit.postprocess.drift import METHODS
    p = subparsers.add_parser("undrift", help="estimate and remove stage drift (AIM, RCC or fiducials)")
    add_table_input(p)
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="corrected localization file to write")
    p.add_argument("--method", choices=METHODS, default="aim",
                   help=help_text("aim: intersection maximization; rcc: redundant cross-correlation; "
                                  "fiducials: bright spots on in most frames", "aim"))
    p.add_argument("--segment", type=int, default=None, metavar="FRAMES",
                   help=help_text("frames per segment (default: from the localization count)"))
    p.add_argument("--max-jump", type=float, default=None, metavar="PX",
                   help=help_text("largest sudden stage jump to catch", 2.0, "px"))
    p.add_argument("--fiducial", action="append", metavar="X,Y,R",
                   help="a region holding one fiducial, px (repeat; with --method fiducials; default: found)")
    p.add_argument("--frames", type=int, default=None, metavar="N",
                   help=help_text("frames of the movie (default: as LOCS records it, else the last frame + 1)"))
    p.add_argument("--drift", default=None, metavar="CSV",
                   help=help_text("drift table to write (default: OUT's name + _drift.csv)"))
    p.add_argument("--plot", default=None, metavar="PNG",
                   help=help_text("drift plot to write, needs spotfit[plot] (default: OUT's name + _drift.png)"))
    p.add_argument("--no-plot", action="store_true", help="write no plot")
    p.add_argument("--apply", default=None, metavar="CSV",
                   help=help_text("apply this drift table (frame, x, y [, z] px; as --drift writes) instead of "
                                  "estimating one", "estimate it"))
    p.add_argument("--format", choices=io.FORMATS, default=None,
                   help=help_text("output format (default: from OUT's suffix)"))
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help=help_text("threads of the core (default: all cores)"))
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="show a progress bar (default: when stderr is a terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="show no progress bar")
    p.set_defaults(func=undrift)
