"""``spotfit localize``: detect and fit every spot of movie(s), in this process or on a Dask cluster."""
from __future__ import annotations

import time
from pathlib import Path

from .common import (UsageError, add_camera_options, add_localize_options, camera_from_args, check_output_path,
                     check_writer, help_text, options_from_args, output_format)


def _jobs(movies: list, out: Path, args) -> tuple:
    """``([(movie files, output path)], format)``: one job for a series, one per movie with --separate."""
    from spotfit import io
    if not args.separate:
        fmt = output_format(out, args.format)
        check_output_path(out)
        return [(movies, out)], fmt
    fmt = args.format or "csv"
    if out.exists() and not out.is_dir():
        raise UsageError(f"with --separate, -o names a folder; {str(out)!r} is a file")
    if not out.parent.is_dir():
        raise UsageError(f"output folder {str(out.parent)!r} does not exist")
    jobs = [([p], out / (Path(p).stem + io.FORMAT_SUFFIXES[fmt])) for p in movies]
    targets = [target for _, target in jobs]
    if len(set(targets)) != len(targets):
        raise UsageError("--separate: two movies have the same file name; their outputs would clash")
    return jobs, fmt


def _check_conflicts(args, options) -> None:
    if options.drop_bad and not args.classifier:
        raise UsageError("--drop-bad drops the spots a --classifier calls bad; give --classifier MODEL")
    if args.scheduler is not None and args.workers is not None:
        raise UsageError("give --scheduler (a running cluster) or --workers (a local one), not both")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")


def _with_source(locs, paths, info):
    """Record the movie's shape, pixel type and files in ``locs.attrs["spotfit"]``."""
    import numpy as np
    md = dict(locs.attrs.get("spotfit", {}))
    md["movie_shape"] = (int(info.n_frames), int(info.rows), int(info.cols))
    md["movie_dtype"] = str(np.dtype(info.dtype))
    md["source"] = {"files": [str(p) for p in info.metadata.get("files", paths)],
                    "frames_per_file": list(info.metadata.get("frames_per_file", []))}
    locs.attrs = {"spotfit": md}
    return locs


def _summary(locs, n_frames: int, seconds: float, out) -> str:
    """One line: localizations, timing, median precision (px, and nm when the pixel size is known).

    The median, not the mean: one poorly determined fit (uncertainty of tens of px) moves a mean far.
    """
    import numpy as np
    fitted = "status" in locs and locs["status"].notna().any()
    ok = locs[locs["status"] == "converged"] if fitted else locs
    px = locs.attrs.get("spotfit", {}).get("pixel_size_nm")
    with np.errstate(all="ignore"):
        unc = 0.5 * (ok["uncertainty_x"] + ok["uncertainty_y"]) if "uncertainty_x" in ok else []
        prec = float(np.nanmedian(unc)) if len(unc) and np.isfinite(unc).any() else float("nan")
    prec_txt = "n/a" if not np.isfinite(prec) else f"{prec:.4f} px" + (f" = {prec * px:.1f} nm" if px else "")
    conv = f" ({len(ok)} converged)" if fitted else ""
    return (f"{len(locs)} localizations{conv} in {n_frames} frames, {seconds:.2f} s "
            f"({n_frames / max(seconds, 1e-9):,.0f} frames/s), median precision {prec_txt} -> {out}")


def run(args) -> int:
    """Handler of ``spotfit localize``."""
    import spotfit
    from spotfit import io
    out = Path(args.output)
    if args.threshold <= 0:
        raise UsageError(f"--threshold must be > 0 (got {args.threshold}): at <= 0 every pixel is a spot")
    options = options_from_args(args)
    _check_conflicts(args, options)
    # Glob patterns (quoted, so the shell left them) expand to files in natural order ("_2" before "_10").
    movies = [str(p) for m in args.movies for p in io.expand_paths(m)]
    jobs, fmt = _jobs(movies, out, args)
    check_writer(fmt)
    # Open every movie first: a missing or corrupt file fails before any work or output.
    infos = [io.movie_info(paths) for paths, _ in jobs]
    cameras = [camera_from_args(args, info.metadata, (info.rows, info.cols)) for info in infos]
    from spotfit.camera import assumed_camera_message
    settings = {"baseline": args.camera_baseline, "sensitivity": args.sensitivity}
    assumed = None if getattr(args, "calibration", None) else assumed_camera_message(infos[0].metadata, **settings)
    if assumed:
        import warnings
        from spotfit._shared.warnings import CameraWarning
        warnings.warn(assumed, CameraWarning, stacklevel=2)
    for (paths, _), cam in zip(jobs, cameras):
        if fmt == "thunderstorm" and not cam.pixel_size_nm:
            raise UsageError(f"--format thunderstorm stores nm: give --pixel-size NM ({paths[0]!r} does not "
                             "record its pixel size)")
    if args.separate:
        out.mkdir(exist_ok=True)
    models = {"camera": None, "classifier": args.classifier, "estimator": args.estimator, "options": options}
    if args.detector is not None:
        models["detector"] = args.detector
    for (paths, target), info, cam in zip(jobs, infos, cameras):
        models["camera"] = cam
        movie = paths[0] if len(paths) == 1 else list(paths)
        t0 = time.perf_counter()
        if args.scheduler is not None or args.workers is not None:
            from spotfit import distributed
            locs = distributed.run(movie, None, scheduler=args.scheduler, workers=args.workers,
                                   chunks=options.chunk_frames, threads=options.threads, **models)
        else:
            locs = spotfit.localize(movie, progress=not args.quiet, **models)
        seconds = time.perf_counter() - t0
        locs = _with_source(locs, paths, info)
        io.save(locs, target, format=fmt, pixel_size_nm=cam.pixel_size_nm)
        print(_summary(locs, info.n_frames, seconds, target))
    return 0


def register(subparsers) -> None:
    """Add ``localize`` to ``spotfit``'s subparsers."""
    from spotfit import io
    p = subparsers.add_parser("localize", help="detect and fit spots in movie(s); write a localization table",
                              description="Detect and fit every spot of a movie. Several MOVIE files are one "
                                          "series (frame numbers continue from file to file) unless --separate.")
    p.add_argument("movies", nargs="+", metavar="MOVIE",
                   help="TIFF (plain/ImageJ/OME/BigTIFF) or Picasso .raw movie; a quoted glob pattern is allowed")
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="output file (with --separate: a folder, one file per movie)")
    p.add_argument("--format", choices=io.FORMATS, default=None,
                   help=help_text("output format (default: from OUT's suffix: .parquet, .csv, .hdf5 = picasso; "
                                  "with --separate csv)"))
    p.add_argument("--separate", action="store_true", help="localize each MOVIE on its own into OUT/<name>")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_camera_options(p)
    fit = add_localize_options(p)
    fit.add_argument("--classifier", default=None, metavar="MODEL",
                     help=help_text("add good/p_good columns from a spot classifier trained with `spotfit classify "
                                    "train` (default: none)"))
    fit.add_argument("--detector", default=None, metavar="crowded|MODEL",
                     help=help_text("crowded fields: emitters proposed by a network (crowded: the packaged one, pip "
                                    "install spotfit[tf]; or a saved CrowdedDetector .npz), then fitted jointly, "
                                    "each near its proposal (default: none, wavelet detection)"))
    dask = p.add_argument_group("Dask (pip install spotfit[dask]; --chunk-frames is then the frames per task)")
    dask.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                      help=help_text("localize on this running Dask scheduler (default: none, in this process)"))
    dask.add_argument("--workers", type=int, default=None, metavar="N",
                      help=help_text("start a local Dask cluster of N worker processes (default: none, in this "
                                     "process)"))
    p.set_defaults(func=run)
