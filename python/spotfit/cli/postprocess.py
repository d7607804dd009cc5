"""``spotfit link`` and ``spotfit report``: post-processing of a localization table."""
from __future__ import annotations

import sys
from pathlib import Path

from .common import UsageError, add_table_input, check_output_path, check_writer, help_text, load_table, output_format


def _load(path, fmt, pixel_size):
    locs = load_table(path, fmt, pixel_size)
    if not len(locs):
        raise UsageError(f"{path!r} holds no localizations")
    return locs


def _converged(locs, args):
    if args.converged_only and "status" in locs:
        locs = locs[locs["status"] == "converged"]
        if not len(locs):
            raise UsageError("no converged localizations left (--converged-only)")
    return locs


def link(args) -> int:
    """Handler of ``spotfit link``."""
    import spotfit
    out = Path(args.output)
    fmt = output_format(out, args.format)
    check_output_path(out)
    check_writer(fmt)
    bar = None
    if not args.quiet:
        from tqdm.auto import tqdm
        bar = tqdm(total=3, unit="step", desc="link", file=sys.stderr)
    try:
        locs = _converged(_load(args.locs, args.input_format, args.pixel_size), args)
        bar and bar.update(1)
        events = spotfit.link(locs, radius=args.radius, max_dark_frames=args.max_dark_frames, groups=args.groups)
        bar and bar.update(1)
        spotfit.io.save(events if args.groups else events.reset_index(drop=True), out, format=fmt,
                        pixel_size_nm=args.pixel_size)
        bar and bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    what = f"{events['group'].nunique()} groups" if args.groups else f"{len(events)} events"
    print(f"{len(locs)} localizations -> {what} -> {out} ({fmt})")
    return 0


def report(args) -> int:
    """Handler of ``spotfit report``."""
    import spotfit
    out = Path(args.output)
    if out.suffix.lower() not in (".html", ".htm"):
        raise UsageError(f"the report is an HTML page: name it .html, got {str(out)!r}")
    check_output_path(out)
    from spotfit._shared.optional import need
    try:
        need("matplotlib", "spotfit report")
    except ImportError as exc:
        raise UsageError(str(exc)) from None
    locs = _converged(_load(args.locs, args.input_format, args.pixel_size), args)
    drift = corrected = None
    if args.drift:
        import pandas as pd
        drift = pd.read_csv(args.drift)
        if not {"frame", "x", "y"} <= set(drift.columns):
            raise UsageError(f"--drift {args.drift!r} needs columns frame, x, y (px), got {list(drift.columns)}")
    if args.corrected:
        corrected = _converged(_load(args.corrected, None, args.pixel_size), args)
    spotfit.report(locs, out, drift=drift, corrected=corrected, pixel_size_nm=args.pixel_size,
                   title=args.title or f"spotfit report: {Path(args.locs).name}", progress=not args.quiet)
    print(f"{len(locs)} localizations -> {out}")
    return 0


def _table_options(p) -> None:
    add_table_input(p)
    p.add_argument("--converged-only", action="store_true", help="use only fits whose status is 'converged'")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


def register(subparsers) -> None:
    """Add ``link`` and ``report`` to ``spotfit``'s subparsers."""
    from spotfit import io
    from spotfit.postprocess.link import GATE
    k = subparsers.add_parser("link", help="link localizations of consecutive frames into events (blinks)")
    _table_options(k)
    k.add_argument("-o", "--output", required=True, metavar="OUT", help="events table to write")
    k.add_argument("--format", choices=io.FORMATS, default=None,
                   help=help_text("output format (default: from OUT's suffix)"))
    k.add_argument("--radius", type=float, default=None, metavar="PX",
                   help=help_text(f"largest linking distance, camera px (default: from the uncertainties, a "
                                  f"{GATE:g}-sigma gate per pair)"))
    k.add_argument("--max-dark-frames", type=int, default=1, metavar="N",
                   help=help_text("frames an event may miss and continue", 1))
    k.add_argument("--groups", action="store_true",
                   help="write the localizations with a 'group' column instead of the events")
    k.set_defaults(func=link)

    r = subparsers.add_parser("report", help="an HTML page of counts, photons, precision (NeNA), drift, FRC "
                                             "and rendered images")
    _table_options(r)
    r.add_argument("-o", "--output", required=True, metavar="HTML", help="report to write (.html)")
    r.add_argument("--drift", default=None, metavar="CSV",
                   help=help_text("drift table (CSV: frame, x, y in px, as spotfit undrift writes it) for the "
                                  "drift plot and the corrected image (default: none)"))
    r.add_argument("--corrected", default=None, metavar="LOCS",
                   help=help_text("drift-corrected localizations (default: LOCS minus --drift, if given)"))
    r.add_argument("--title", default=None, help=help_text("page title (default: from LOCS)"))
    r.set_defaults(func=report)
