"""``spotfit calibrate-3d``: an astigmatic calibration (widths against z) from a z-stack of beads."""
from __future__ import annotations

from pathlib import Path

from .common import UsageError, add_camera_options, camera_from_args, help_text


def calibrate(args) -> int:
    """Handler of ``spotfit calibrate-3d``."""
    import spotfit
    from spotfit import io
    out = Path(args.output)
    if not out.parent.is_dir():
        raise UsageError(f"-o {args.output!r}: folder {str(out.parent)!r} does not exist")
    if not Path(args.beads).exists():
        raise UsageError(f"no bead stack {args.beads!r}")
    movie = io.open_movie(args.beads)
    camera = camera_from_args(args, movie.metadata, (movie.shape[1], movie.shape[2]))
    try:
        cal = spotfit.calibrate_astigmatism(movie, z_step_nm=args.z_step, camera=camera, box=args.box,
                                            magnification_factor=args.magnification)
    except ValueError as exc:
        raise UsageError(f"{args.beads}: {exc}") from exc
    cal.save(out)
    p = cal.provenance
    print(f"{out}: z from {cal.z_range[0]:.0f} to {cal.z_range[1]:.0f} nm, {p['beads_used']} of {p['beads_found']} "
          f"beads, rms width residual {100 * max(p['rms_rel_residual']):.2f} %")
    if args.plot:
        cal.plot(args.plot)
        print(f"{args.plot}: widths against z")
    return 0


def register(subparsers) -> None:
    """Add ``calibrate-3d`` to ``spotfit``'s subparsers."""
    c = subparsers.add_parser("calibrate-3d", help="astigmatic 3D calibration (widths against z) from a bead z-stack",
                              description="Fit every bead of every plane with the elliptical model, follow the beads "
                                          "through the planes and fit Huang et al.'s (2008) defocus model to each "
                                          "axis; z = 0 where the widths are equal (docs/3d.md). Use the JSON with "
                                          "`spotfit localize --model astigmatic --z-calibration CAL.json`.")
    c.add_argument("beads", metavar="BEADS.tif", help="bead stack, one frame per stage step")
    c.add_argument("--z-step", type=float, required=True, metavar="NM", help="stage step between frames, nm")
    c.add_argument("-o", "--output", required=True, metavar="CAL.json", help="calibration to write (JSON)")
    c.add_argument("--box", type=int, default=15, metavar="PX", help=help_text("fit box of the beads, px", 15))
    c.add_argument("--magnification", type=float, default=1.0, metavar="X",
                   help=help_text("sample z per stage z (refractive index mismatch)", 1.0))
    c.add_argument("--plot", default=None, metavar="CAL.png",
                   help=help_text("also write the widths against z as a PNG (default: none)"))
    add_camera_options(c, source="the stack's metadata")
    c.set_defaults(func=calibrate)
