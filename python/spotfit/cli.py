"""The ``spotfit`` command line: localize, render, convert, info, simulate, demo (+ contributed commands).

Exit codes: 0 success; 2 bad input or usage (unknown option, missing/corrupt/truncated movie, a directory
where a file is expected, an impossible parameter); 1 any other failure; 130 interrupted (Ctrl-C). Errors
are one line on stderr; ``spotfit --debug COMMAND ...`` shows the traceback instead. Output files are
written atomically at the end, so a failed or interrupted run leaves no partial output file.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

# Subcommands contributed by other modules. Each module defines ``register(subparsers)`` that adds its
# parser(s) with ``set_defaults(func=handler)``; ``handler(args) -> int`` is the exit code. Append new
# modules here (imported lazily at start-up; a module that fails to import is skipped, see --debug).
SUBCOMMAND_MODULES = [
    "spotfit.cli_classify",
]

# Exceptions that mean "the input or an option is wrong" (exit code 2) rather than "spotfit failed" (1).
_USAGE_ERRORS = (ValueError, TypeError, FileNotFoundError, IsADirectoryError, NotADirectoryError,
                 PermissionError)

_SUFFIX = {"parquet": ".parquet", "csv": ".csv", "thunderstorm": ".csv", "picasso": ".hdf5"}


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (exit code 2), also for subcommands."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class UsageError(ValueError):
    """A problem with the command line found after parsing (exit code 2)."""


# --------------------------------------------------------------------------------------------------------
# localize
# --------------------------------------------------------------------------------------------------------

def _output_format(path: Path, fmt):
    from . import _tables
    try:
        return _tables._infer_format(path, fmt, reading=False)
    except ValueError:
        raise UsageError(f"cannot tell the output format from {str(path)!r}: give --format "
                         f"({'|'.join(_tables.FORMATS)}) or a .parquet/.csv/.hdf5 name") from None


def _check_writer(fmt: str) -> None:
    """Fail before localizing when the output format's optional package is missing."""
    need = {"parquet": ["pyarrow"], "picasso": ["h5py", "yaml"]}.get(fmt, [])
    for mod in need:
        try:
            importlib.import_module(mod)
        except ImportError:
            raise UsageError(f"--format {fmt} needs the {mod!r} package: pip install spotfit[io]") from None


def _check_output_path(path: Path) -> None:
    if path.is_dir():
        raise UsageError(f"output {str(path)!r} is a directory; give a file name")
    if not path.parent.is_dir():
        raise UsageError(f"output folder {str(path.parent)!r} does not exist")


def _camera(args, metadata):
    """Camera from the movie's metadata overridden by the options given; --calibration adds sCMOS maps."""
    import spotfit
    overrides = {"baseline": args.camera_baseline, "sensitivity": args.sensitivity,
                 "em_gain": args.em_gain, "qe": args.qe, "pixel_size_nm": args.pixel_size}
    cam = spotfit.Camera.from_metadata(metadata, **overrides)
    if getattr(args, "roi_origin", None) is not None and not args.calibration:
        raise UsageError("--roi-origin places the movie on the --calibration maps; give --calibration too")
    if not args.calibration:
        return cam
    if args.camera_baseline is not None or args.sensitivity is not None:
        raise UsageError("--calibration gives per-pixel offset and gain maps; drop --camera-baseline/--sensitivity")
    return spotfit.Camera.from_calibration(args.calibration, qe=cam.qe, em_gain=cam.em_gain,
                                           pixel_size_nm=cam.pixel_size_nm)


def _crop_camera(cam, args, rows: int, cols: int):
    if not cam.is_scmos:
        return cam
    maps = next(m for m in (cam.offset_map, cam.gain_map, cam.variance_map) if m is not None)
    if args.roi_origin is None:
        if maps.shape != (rows, cols):
            raise UsageError(f"calibration maps are {maps.shape[0]}x{maps.shape[1]} but the movie's frames "
                             f"are {rows}x{cols}; give --roi-origin ROW,COL of the movie's corner on the sensor")
        return cam
    r0, c0 = args.roi_origin
    if r0 < 0 or c0 < 0 or r0 + rows > maps.shape[0] or c0 + cols > maps.shape[1]:
        raise UsageError(f"--roi-origin {r0},{c0}: a {rows}x{cols} movie does not fit in the "
                         f"{maps.shape[0]}x{maps.shape[1]} calibration maps there")
    return cam.crop(slice(r0, r0 + rows), slice(c0, c0 + cols))


def _roi(text: str):
    try:
        r, c = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected ROW,COL (two integers), got {text!r}") from None
    return r, c


def _localize_kwargs(args) -> dict:
    if getattr(args, "drop_bad", False) and not args.classifier:
        raise UsageError("--drop-bad drops the spots a --classifier calls bad; give --classifier MODEL")
    if args.threshold <= 0:
        raise UsageError(f"--threshold must be > 0 (got {args.threshold}): at <= 0 every pixel is a spot")
    return {"psf_sigma": args.psf_sigma, "box": args.box, "threshold": args.threshold,
            "threshold_mode": args.threshold_mode, "min_distance": args.min_distance, "border": args.border,
            "estimator": args.estimator, "model": args.model, "max_iterations": args.max_iterations,
            "threads": args.threads, **({"classifier": args.classifier, "drop_bad": args.drop_bad}
                                        if args.classifier else {})}


def _localize_series(paths, info, camera, kwargs, chunk_frames: int, progress: bool):
    """Localize one movie: a file, or several files as one series whose frame numbers continue."""
    import numpy as np

    import spotfit
    locs = spotfit.localize(paths[0] if len(paths) == 1 else list(paths), camera=camera,
                            chunk_frames=chunk_frames, progress=progress, **kwargs)
    md = dict(locs.attrs["spotfit"])
    md["movie_shape"] = (int(info.n_frames), int(info.rows), int(info.cols))
    md["movie_dtype"] = str(np.dtype(info.dtype))
    md["source"] = {"files": [str(p) for p in info.metadata.get("files", paths)],
                    "frames_per_file": list(info.metadata.get("frames_per_file", []))}
    locs.attrs = {"spotfit": md}
    return locs


def _summary(locs, n_frames: int, seconds: float, out) -> str:
    import numpy as np
    fitted = "status" in locs and locs["status"].notna().any()
    ok = locs[locs["status"] == "converged"] if fitted else locs
    px = locs.attrs.get("spotfit", {}).get("pixel_size_nm")
    with np.errstate(all="ignore"):
        unc = 0.5 * (ok["uncertainty_x"] + ok["uncertainty_y"]) if "uncertainty_x" in ok else []
        prec = float(np.nanmean(unc)) if len(unc) and np.isfinite(unc).any() else float("nan")
    prec_txt = "n/a" if not np.isfinite(prec) else f"{prec:.4f} px" + (f" = {prec * px:.1f} nm" if px else "")
    conv = f" ({len(ok)} converged)" if fitted else ""
    return (f"{len(locs)} localizations{conv} in {n_frames} frames, {seconds:.2f} s "
            f"({n_frames / max(seconds, 1e-9):,.0f} frames/s), mean precision {prec_txt} -> {out}")


def _cmd_localize(args) -> int:
    from . import io
    out = Path(args.output)
    if args.chunk_frames is not None and args.chunk_frames < 1:
        raise UsageError(f"--chunk-frames must be >= 1, got {args.chunk_frames}")
    chunk_frames = args.chunk_frames or 256
    dask_mode = getattr(args, "scheduler", None) is not None or getattr(args, "workers", None) is not None
    # Glob patterns (quoted, so the shell left them) expand to files in natural order ("_2" before "_10").
    args.movies = [str(p) for m in args.movies for p in io._expand_paths(m)]
    if args.separate:
        fmt = args.format or "csv"
        if out.exists() and not out.is_dir():
            raise UsageError(f"with --separate, -o names a folder; {str(out)!r} is a file")
        if not out.parent.is_dir():
            raise UsageError(f"output folder {str(out.parent)!r} does not exist")
        jobs = [([p], out / (Path(p).stem + _SUFFIX[fmt])) for p in args.movies]
        stems = [j[1] for j in jobs]
        if len(set(stems)) != len(stems):
            raise UsageError("--separate: two movies have the same file name; their outputs would clash")
    else:
        fmt = _output_format(out, args.format)
        _check_output_path(out)
        jobs = [(list(args.movies), out)]
    _check_writer(fmt)
    # Open every movie first: a missing or corrupt file fails before any work or output.
    infos = [io.movie_info(paths) for paths, _ in jobs]
    cameras = []
    for (paths, _), info in zip(jobs, infos):
        cam = _crop_camera(_camera(args, info.metadata), args, info.rows, info.cols)
        if fmt == "thunderstorm" and not cam.pixel_size_nm:
            raise UsageError(f"--format thunderstorm stores nm: give --pixel-size NM ({paths[0]!r} does not "
                             "record its pixel size)")
        cameras.append(cam)
    kwargs = _localize_kwargs(args)
    if args.separate:
        out.mkdir(exist_ok=True)
    for (paths, target), info, cam in zip(jobs, infos, cameras):
        t0 = time.perf_counter()
        if dask_mode:
            from . import distributed
            locs = distributed.run(paths if len(paths) > 1 else paths[0], None, scheduler=args.scheduler,
                                   workers=args.workers, chunks=chunk_frames, camera=cam, **kwargs)
            md = dict(locs.attrs.get("spotfit", {}))
            md["source"] = {"files": list(info.metadata.get("files", paths)),
                            "frames_per_file": list(info.metadata.get("frames_per_file", []))}
            locs.attrs = {"spotfit": md}
        else:
            locs = _localize_series(paths, info, cam, kwargs, chunk_frames, progress=not args.quiet)
        seconds = time.perf_counter() - t0
        io.save(locs, target, format=fmt, pixel_size_nm=cam.pixel_size_nm)
        print(_summary(locs, info.n_frames, seconds, target))
    return 0


def _add_localize(sub):
    from . import io
    p = sub.add_parser("localize", help="detect and fit spots in movie(s); write a localization table",
                       description="Detect and fit every spot of a movie. Several MOVIE files are one series "
                                   "(frame numbers continue from file to file) unless --separate.")
    p.add_argument("movies", nargs="+", metavar="MOVIE",
                   help="TIFF (plain/ImageJ/OME/BigTIFF) or Picasso .raw movie; a glob pattern is allowed")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output file (with --separate: a folder, one file per movie)")
    p.add_argument("--format", choices=io.FORMATS, default=None,
                   help="output format (default: from OUT's suffix: .parquet, .csv, .hdf5 = picasso)")
    p.add_argument("--separate", action="store_true", help="localize each MOVIE on its own into OUT/<name>")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    cam = p.add_argument_group("camera (default: the movie's metadata, else baseline 100 ADU, 1 e-/ADU)")
    cam.add_argument("--camera-baseline", type=float, metavar="ADU", help="offset added by the camera")
    cam.add_argument("--sensitivity", type=float, metavar="E_PER_ADU", help="photoelectrons per ADU")
    cam.add_argument("--em-gain", type=float, metavar="G", help="EM gain (1 for sCMOS/CCD)")
    cam.add_argument("--qe", type=float, metavar="QE", help="quantum efficiency in (0, 1]")
    cam.add_argument("--pixel-size", type=float, metavar="NM", help="camera pixel size in the sample, nm")
    cam.add_argument("--calibration", metavar="CALIB.npy",
                     help="sCMOS per-pixel maps (3, rows, cols) = offset ADU, variance ADU^2, gain ADU/e-")
    cam.add_argument("--roi-origin", type=_roi, metavar="ROW,COL", default=None,
                     help="sensor pixel of the movie's corner, to cut the calibration maps to a ROI")
    fit = p.add_argument_group("detection and fit")
    fit.add_argument("--psf-sigma", type=float, default=1.3, help="PSF sigma, px (default 1.3)")
    fit.add_argument("--box", type=int, default=7, help="odd fit box side, px (default 7)")
    fit.add_argument("--threshold", type=float, default=1.5,
                     help="detection threshold, multiples of std(W1) (default 1.5)")
    fit.add_argument("--threshold-mode", choices=["std", "absolute"], default="std",
                     help="'absolute': --threshold in photons on the wavelet plane")
    fit.add_argument("--min-distance", type=float, default=0.0, help="merge maxima closer than this, px")
    fit.add_argument("--border", type=int, default=0, help="ignore peaks this close to the edge, px")
    fit.add_argument("--estimator", choices=["mle", "lsq", "ridge", "tf-linear"], default="mle",
                     help="mle (Poisson likelihood), lsq (least squares), or a packaged centroid regressor "
                          "(ridge, tf-linear: no fit; see docs/regression.md)")
    fit.add_argument("--model", choices=["gauss", "elliptical", "fixed_sigma"], default="gauss")
    fit.add_argument("--max-iterations", type=int, default=30)
    fit.add_argument("--threads", type=int, default=None, help="OpenMP threads (default: all cores)")
    fit.add_argument("--classifier", default=None, metavar="MODEL",
                     help="add good/p_good columns from a trained spot classifier (spotfit classify train)")
    fit.add_argument("--drop-bad", action="store_true",
                     help="with --classifier: screen spots before the fit; fit and keep only the good ones")
    try:
        from . import distributed
        distributed.add_arguments(p)  # --scheduler, --workers, --chunk-frames
    except ImportError:  # pragma: no cover - distributed.py imports no optional package at import time
        pass
    if "--chunk-frames" not in p._option_string_actions:
        p.add_argument("--chunk-frames", type=int, default=256, help="frames read and fitted at a time")
    else:
        p._option_string_actions["--chunk-frames"].help = (
            "frames read and fitted at a time, and per Dask task (default 256); memory ~ this x frame size")
    p.set_defaults(func=_cmd_localize)


# --------------------------------------------------------------------------------------------------------
# render, convert, info
# --------------------------------------------------------------------------------------------------------

def _load_locs(args):
    from . import io
    try:
        return io.load(args.locs, format=args.input_format, pixel_size_nm=args.camera_pixel_size)
    except ValueError as exc:
        if "pixel_size_nm" in str(exc) and args.camera_pixel_size is None:
            raise UsageError(f"{args.locs!r} stores nm: give --camera-pixel-size NM to read it") from exc
        raise


def _cmd_render(args) -> int:
    from . import render
    out = Path(args.output)
    if out.suffix.lower() not in (".png", ".tif", ".tiff"):
        raise UsageError(f"cannot save an image as {str(out)!r}: use .png, .tif or .tiff")
    _check_output_path(out)
    locs = _load_locs(args)
    if args.converged_only and "status" in locs:
        locs = locs[locs["status"] == "converged"]
    img = render.render(locs, pixel_size=args.pixel_size, zoom=args.zoom, method=args.method, sigma=args.sigma)
    render.save_image(img, out, vmax=args.vmax, cmap=args.cmap)
    print(f"{len(locs)} localizations -> {img.shape[1]}x{img.shape[0]} image {out}")
    return 0


def _cmd_convert(args) -> int:
    from . import io
    out = Path(args.output)
    fmt = _output_format(out, args.format)
    _check_output_path(out)
    _check_writer(fmt)
    locs = _load_locs(args)
    io.save(locs, out, format=fmt, pixel_size_nm=args.pixel_size)
    print(f"{len(locs)} localizations -> {out} ({fmt})")
    return 0


def _short(value, width: int = 70) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= width else text[:width - 3] + "..."


def _cmd_info(args) -> int:
    from . import io
    from .camera import camera_settings_from_metadata
    info = io.movie_info(args.movies if len(args.movies) > 1 else args.movies[0])
    md = info.metadata
    files = md.get("files", [])
    size = sum(os.path.getsize(f) for f in files if os.path.isfile(f))
    print(f"files:      {len(files)} ({size / 2**20:.1f} MiB)" + ("" if len(files) > 1 else f"  {files[0]}"))
    if len(files) > 1:
        for f, n in zip(files, md.get("frames_per_file", [])):
            print(f"            {f}: {n} frames")
    print(f"frames:     {info.n_frames}")
    print(f"frame size: {info.rows} rows x {info.cols} cols")
    print(f"dtype:      {info.dtype}")
    print(f"format:     {md.get('format')}" + (f" (axes {md['axes']})" if md.get("axes") else ""))
    px = md.get("pixel_size_nm")
    print(f"pixel size: {f'{px:g} nm' if px else 'not recorded'}")
    cam = camera_settings_from_metadata(md)
    cam.pop("pixel_size_nm", None)
    print("camera:     " + (", ".join(f"{k}={v:g}" for k, v in cam.items()) if cam
                            else "not recorded (give --camera-baseline/--sensitivity/... to localize)"))
    for section in ("camera", "imagej", "picasso"):
        entries = md.get(section)
        if isinstance(entries, dict) and entries:
            print(f"{section} metadata:")
            shown = list(entries.items()) if args.all else list(entries.items())[:20]
            for k, v in shown:
                print(f"  {k}: {_short(v)}")
            if len(shown) < len(entries):
                print(f"  ... {len(entries) - len(shown)} more (--all)")
    return 0


# --------------------------------------------------------------------------------------------------------
# simulate, demo
# --------------------------------------------------------------------------------------------------------

def _write_movie(movie, path: Path, camera) -> None:
    """ImageJ TIFF (BigTIFF with --bigtiff) with the camera in its description, atomically."""
    import tifffile
    md = {"axes": "TYX", "spotfit.baseline": camera.baseline, "spotfit.sensitivity": camera.sensitivity,
          "spotfit.em_gain": camera.em_gain, "spotfit.qe": camera.qe}
    kw = {}
    if camera.pixel_size_nm:
        md["unit"] = "nm"
        kw["resolution"] = (1.0 / camera.pixel_size_nm, 1.0 / camera.pixel_size_nm)
    from ._tables import _atomic
    with _atomic(path) as tmp:
        tifffile.imwrite(tmp, movie, imagej=True, metadata=md, **kw)


def _cmd_simulate(args) -> int:
    import spotfit
    from . import io
    out = Path(args.output)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise UsageError(f"simulate writes a TIFF: give -o NAME.tif, not {str(out)!r}")
    _check_output_path(out)
    cam = spotfit.Camera(baseline=args.camera_baseline, sensitivity=args.sensitivity, em_gain=args.em_gain,
                         qe=args.qe, pixel_size_nm=args.pixel_size)
    movie, truth = spotfit.simulate(frames=args.frames, shape=(args.rows, args.cols), density=args.density,
                                    photons=tuple(args.photons), background=args.background,
                                    psf_sigma=args.psf_sigma, camera=cam, seed=args.seed)
    truth_path = out.with_name(out.stem + "_truth.csv")
    truth.attrs = {"spotfit": {"camera": cam.as_dict(), "pixel_size_nm": cam.pixel_size_nm,
                               "movie_shape": tuple(int(s) for s in movie.shape),
                               "simulation": {"density": args.density, "photons": list(args.photons),
                                              "background": args.background, "psf_sigma": args.psf_sigma,
                                              "seed": args.seed}}}
    _write_movie(movie, out, cam)
    io.save(truth, truth_path, format="csv")
    print(f"{movie.shape[0]} frames of {movie.shape[1]}x{movie.shape[2]} ({len(truth)} spots) -> {out}, "
          f"truth -> {truth_path}")
    return 0


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
    if args.image:
        from . import render
        render.save_image(render.render(locs[locs["status"] == "converged"], zoom=8), args.image)
        print(f"rendered image -> {args.image}")
    return 0 if m["recall"] > 0.9 and np.isfinite(m["rmse"]) else 1


# --------------------------------------------------------------------------------------------------------
# parser and entry point
# --------------------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    """The ``spotfit`` argument parser with every subcommand (built-in and from SUBCOMMAND_MODULES)."""
    from . import io
    parser = _Parser(prog="spotfit", description="Find and measure fluorescent spots in SMLM movies.",
                     epilog="Run 'spotfit COMMAND --help' for a command's options. Exit codes: 0 ok, "
                            "1 failure, 2 bad input or usage, 130 interrupted.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add_localize(sub)

    r = sub.add_parser("render", help="render localizations as a super-resolution image (.png/.tif)")
    r.add_argument("locs", metavar="LOCS", help="localization file (parquet, csv, ThunderSTORM csv, Picasso hdf5)")
    r.add_argument("-o", "--output", required=True, metavar="IMAGE", help=".png (8-bit) or .tif (float32)")
    r.add_argument("--zoom", type=float, default=10, help="rendered pixels per camera pixel (default 10)")
    r.add_argument("--pixel-size", type=float, default=None, metavar="NM",
                   help="rendered pixel size in nm (instead of --zoom; needs the camera pixel size in LOCS)")
    r.add_argument("--method", choices=["histogram", "gaussian"], default="histogram")
    r.add_argument("--sigma", type=float, default=None, help="fixed Gaussian blur, camera px (gaussian)")
    r.add_argument("--vmax", type=float, default=None, help="PNG white level (default: 99.5th percentile)")
    r.add_argument("--cmap", default=None, help="matplotlib colormap for an RGB PNG (needs spotfit[plot])")
    r.add_argument("--converged-only", action="store_true", help="skip fits whose status is not 'converged'")
    r.add_argument("--input-format", choices=io.FORMATS, default=None)
    r.add_argument("--camera-pixel-size", type=float, default=None, metavar="NM",
                   help="camera pixel size, to read ThunderSTORM nm coordinates")
    r.set_defaults(func=_cmd_render)

    c = sub.add_parser("convert", help="convert a localization file to another format")
    c.add_argument("locs", metavar="LOCS")
    c.add_argument("-o", "--output", required=True, metavar="OUT")
    c.add_argument("--format", choices=io.FORMATS, default=None, help="output format (default: from OUT)")
    c.add_argument("--input-format", choices=io.FORMATS, default=None)
    c.add_argument("--pixel-size", type=float, default=None, metavar="NM",
                   help="camera pixel size for the output (ThunderSTORM needs it)")
    c.add_argument("--camera-pixel-size", type=float, default=None, metavar="NM",
                   help="camera pixel size, to read ThunderSTORM nm coordinates")
    c.set_defaults(func=_cmd_convert)

    i = sub.add_parser("info", help="frames, size, pixel type and metadata of a movie")
    i.add_argument("movies", nargs="+", metavar="MOVIE", help="movie file(s): several = one series")
    i.add_argument("--all", action="store_true", help="print every metadata entry")
    i.set_defaults(func=_cmd_info)

    s = sub.add_parser("simulate", help="simulate a movie (ImageJ TIFF) and its ground truth (<name>_truth.csv)")
    s.add_argument("-o", "--output", required=True, metavar="MOVIE.tif")
    s.add_argument("--frames", type=int, default=100)
    s.add_argument("--rows", type=int, default=256)
    s.add_argument("--cols", type=int, default=256)
    s.add_argument("--density", type=float, default=15, help="spots per frame (default 15)")
    s.add_argument("--photons", type=float, nargs=2, default=(500, 5000), metavar=("MIN", "MAX"))
    s.add_argument("--background", type=float, default=20, help="photons per pixel (default 20)")
    s.add_argument("--psf-sigma", type=float, default=1.3)
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--camera-baseline", type=float, default=100.0)
    s.add_argument("--sensitivity", type=float, default=0.5)
    s.add_argument("--em-gain", type=float, default=1.0)
    s.add_argument("--qe", type=float, default=1.0)
    s.add_argument("--pixel-size", type=float, default=100.0, metavar="NM")
    s.set_defaults(func=_cmd_simulate)

    demo = sub.add_parser("demo", help="simulate a movie, localize it and score against the truth")
    demo.add_argument("--frames", type=int, default=500)
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--image", default=None, metavar="IMAGE.png", help="also render the localizations here")
    demo.set_defaults(func=_demo)

    for name in SUBCOMMAND_MODULES:
        try:
            importlib.import_module(name).register(sub)
        except ImportError as exc:
            if "--debug" in sys.argv:
                print(f"spotfit: skipping subcommands of {name}: {exc}", file=sys.stderr)
    return parser


def main(argv=None) -> int:
    """Run the ``spotfit`` command line; returns the exit code (also for --help and usage errors)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exc:  # --help (0) or a usage error (2, message already printed)
            return exc.code if isinstance(exc.code, int) else 2
        if args.version:
            import spotfit
            print(spotfit.__version__)
            return 0
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("spotfit: interrupted; no output written", file=sys.stderr)
        return 130
    except SystemExit as exc:  # a subcommand's `raise SystemExit("message")`
        if isinstance(exc.code, int) or exc.code is None:
            return exc.code or 0
        print(f"spotfit: error: {exc.code}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into `head` & co.: not an error (Python docs' recipe)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - the command line reports every failure as one line
        if debug:
            raise
        code = 2 if isinstance(exc, _USAGE_ERRORS) else 1
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = "" if code == 2 else " (run with --debug for the traceback)"
        print(f"spotfit: error: {msg}{hint}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
