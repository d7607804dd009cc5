"""``spotfit render`` and ``spotfit convert``: work on localization tables."""
from __future__ import annotations

from pathlib import Path

from .common import (UsageError, add_table_input, check_output_path, check_writer, help_text, load_table,
                     output_format)

# spotfit.render.render's methods.
RENDER_METHODS = ("histogram", "gaussian")


def render(args) -> int:
    """Handler of ``spotfit render``."""
    from spotfit import render as sr
    out = Path(args.output)
    if out.suffix.lower() not in (".png", ".tif", ".tiff"):
        raise UsageError(f"cannot save an image as {str(out)!r}: use .png, .tif or .tiff")
    check_output_path(out)
    locs = load_table(args.locs, args.input_format, args.pixel_size)
    if args.converged_only and "status" in locs:
        locs = locs[locs["status"] == "converged"]
    try:
        img = sr.render(locs, pixel_size=args.render_pixel_size, zoom=args.zoom, method=args.method,
                        sigma=args.sigma)
    except ValueError as exc:
        if "pixel_size_nm" in str(exc) and args.render_pixel_size is not None:
            raise UsageError(f"--render-pixel-size needs the camera pixel size: {args.locs!r} does not record it; "
                             "give --pixel-size NM") from exc
        raise
    sr.save_image(img, out, vmax=args.vmax, cmap=args.cmap)
    print(f"{len(locs)} localizations -> {img.shape[1]}x{img.shape[0]} image {out}")
    return 0


def convert(args) -> int:
    """Handler of ``spotfit convert``."""
    from spotfit import io
    out = Path(args.output)
    fmt = output_format(out, args.format)
    check_output_path(out)
    check_writer(fmt)
    locs = load_table(args.locs, args.input_format, args.pixel_size)
    io.save(locs, out, format=fmt, pixel_size_nm=args.pixel_size)
    print(f"{len(locs)} localizations -> {out} ({fmt})")
    return 0


def register(subparsers) -> None:
    """Add ``render`` and ``convert`` to ``spotfit``'s subparsers."""
    from spotfit import io
    r = subparsers.add_parser("render", help="render localizations as a super-resolution image (.png/.tif)")
    add_table_input(r, old_pixel_size_name=True)
    r.add_argument("-o", "--output", required=True, metavar="IMAGE",
                   help=".png (8-bit display image) or .tif (float32 values)")
    r.add_argument("--zoom", type=float, default=10, metavar="X",
                   help=help_text("rendered pixels per camera pixel", 10))
    r.add_argument("--render-pixel-size", type=float, default=None, metavar="NM",
                   help=help_text("rendered pixel size, nm, instead of --zoom; needs the camera pixel size "
                                  "(default: none, --zoom decides)"))
    r.add_argument("--method", choices=RENDER_METHODS, default="histogram",
                   help=help_text("histogram: count per rendered pixel; gaussian: spread each localization by "
                                  "its precision", "histogram"))
    r.add_argument("--sigma", type=float, default=None, metavar="PX",
                   help=help_text("fixed Gaussian blur with --method gaussian, camera px (default: each "
                                  "localization's precision)"))
    r.add_argument("--vmax", type=float, default=None, metavar="X",
                   help=help_text("PNG white level (default: the 99.5th percentile of the positive pixels)"))
    r.add_argument("--cmap", default=None, metavar="NAME",
                   help=help_text("matplotlib colormap for an RGB PNG, needs spotfit[plot] (default: none, grey)"))
    r.add_argument("--converged-only", action="store_true", help="skip fits whose status is not 'converged'")
    r.set_defaults(func=render)

    c = subparsers.add_parser("convert", help="convert a localization file to another format")
    add_table_input(c, old_pixel_size_name=True)
    c.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write")
    c.add_argument("--format", choices=io.FORMATS, default=None,
                   help=help_text("output format (default: from OUT's suffix: .parquet, .csv, .hdf5 = picasso)"))
    c.set_defaults(func=convert)
