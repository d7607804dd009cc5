"""``spotfit info``, ``spotfit simulate`` and ``spotfit demo``: look at, make, and try out movies."""
from __future__ import annotations

import inspect
import os
import time
from pathlib import Path

from .common import (UsageError, add_camera_options, camera_from_args, check_output_path, check_writer,
                     help_text)

#: The camera of simulated movies (simulate and demo): an sCMOS-like 0.5 e-/ADU at 100 ADU, 100 nm pixels.
SIMULATION_CAMERA = {"baseline": 100.0, "sensitivity": 0.5, "em_gain": 1.0, "qe": 1.0, "pixel_size_nm": 100.0}

# `spotfit simulate` options from spotfit.simulate's arguments: (argument, flag, type, metavar, what).
_SIMULATE_OPTIONS = (
    ("frames", "--frames", int, "N", "frames"),
    ("density", "--density", float, "N", "mean emitters per frame (Poisson)"),
    ("background", "--background", float, "PHOTONS", "background, photons per pixel"),
    ("psf_sigma", "--psf-sigma", float, "PX", "PSF standard deviation, px"),
    ("border", "--border", float, "PX", "no emitter closer than this to the edge, px"),
    ("min_distance", "--min-distance", float, "PX", "no two emitters of a frame closer than this, px (0: any)"),
    ("seed", "--seed", int, "N", "random seed"),
)


def simulate_defaults() -> dict:
    """The defaults of :func:`spotfit.simulate`'s arguments (the defaults of ``spotfit simulate``)."""
    import spotfit
    return {name: p.default for name, p in inspect.signature(spotfit.simulate).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _short(value, width: int = 70) -> str:
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= width else text[:width - 3] + "..."


def info(args) -> int:
    """Handler of ``spotfit info``."""
    import spotfit
    from spotfit import io
    from spotfit.camera import camera_settings_from_metadata
    movie_info = io.movie_info(args.movies if len(args.movies) > 1 else args.movies[0])
    md = movie_info.metadata
    files = md.get("files", [])
    size = sum(os.path.getsize(f) for f in files if os.path.isfile(f))
    print(f"files:      {len(files)} ({size / 2**20:.1f} MiB)" + ("" if len(files) > 1 else f"  {files[0]}"))
    if len(files) > 1:
        for f, n in zip(files, md.get("frames_per_file", [])):
            print(f"            {f}: {n} frames")
    print(f"frames:     {movie_info.n_frames}")
    print(f"frame size: {movie_info.rows} rows x {movie_info.cols} cols")
    print(f"dtype:      {movie_info.dtype}")
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
    if args.camera:
        movie = io.open_movie(args.movies if len(args.movies) > 1 else args.movies[0])
        print("camera estimated from the movie's pixel statistics (Camera.estimate):")
        found = spotfit.Camera.estimate(movie, em_gain=args.em_gain, frames=args.frames, progress=args.progress)
        for line in str(found).splitlines():
            print("  " + line)
        if "baseline" in cam and "sensitivity" in cam:
            print(f"  the file records: baseline {cam['baseline']:g} ADU, sensitivity {cam['sensitivity']:g} e-/ADU "
                  f"({(found.baseline - cam['baseline']) / found.baseline_error:+.1f} and "
                  f"{(found.sensitivity - cam['sensitivity']) / found.sensitivity_error:+.1f} standard errors off)")
        use = (f"spotfit localize ... --camera-baseline {found.baseline:.1f} --sensitivity {found.sensitivity:.4g}"
               + (f" --em-gain {found.em_gain:g}" if found.em_gain > 1 else ""))
        if found.precise and found.model_fits:
            print("  use: " + use)
        else:
            print("  not precise or not fitting enough to use as it is (see above); it would be: " + use)
    return 0


def _write_movie(movie, path: Path, camera) -> None:
    """ImageJ TIFF with the camera in its description (read back by ``spotfit localize``), atomically."""
    import tifffile

    from spotfit._shared.atomic import atomic_path
    md = {"axes": "TYX", "spotfit.baseline": camera.baseline, "spotfit.sensitivity": camera.sensitivity,
          "spotfit.em_gain": camera.em_gain, "spotfit.qe": camera.qe}
    kw = {}
    if camera.pixel_size_nm:
        md["unit"] = "nm"
        kw["resolution"] = (1.0 / camera.pixel_size_nm, 1.0 / camera.pixel_size_nm)
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, movie, imagej=True, metadata=md, **kw)


def _simulation(args) -> dict:
    """spotfit.simulate's keyword arguments from the options (all but the camera)."""
    sim = {name: getattr(args, name) for name, *_ in _SIMULATE_OPTIONS}
    sim.update(shape=(args.rows, args.cols), photons=tuple(args.photons))
    return sim


def simulate(args) -> int:
    """Handler of ``spotfit simulate``."""
    import spotfit
    from spotfit import io
    out = Path(args.output)
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise UsageError(f"simulate writes a TIFF: give -o NAME.tif, not {str(out)!r}")
    check_output_path(out)
    cam = camera_from_args(args)
    sim = _simulation(args)
    movie, truth = spotfit.simulate(camera=cam, **sim)
    truth_path = out.with_name(out.stem + "_truth.csv")
    record = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sim.items() if k not in ("frames", "shape")}
    truth.attrs = {"spotfit": {"camera": cam.as_dict(), "pixel_size_nm": cam.pixel_size_nm,
                               "movie_shape": tuple(int(s) for s in movie.shape), "simulation": record}}
    _write_movie(movie, out, cam)
    io.save(truth, truth_path, format="csv")
    print(f"{movie.shape[0]} frames of {movie.shape[1]}x{movie.shape[2]} ({len(truth)} spots) -> {out}, "
          f"truth -> {truth_path}")
    return 0


def _demo_paths(args) -> dict:
    """The demo's output files: in --out, or beside --image (the corrected image) when only that is given."""
    folder = Path(args.out) if args.out is not None else (Path(args.image).parent if args.image else
                                                          Path("spotfit-demo"))
    after = Path(args.image) if args.image else folder / "demo.png"
    if after.suffix.lower() not in (".png", ".tif", ".tiff"):
        raise UsageError(f"cannot save an image as {str(after)!r}: use .png, .tif or .tiff")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {str(folder)!r} is a file; give a folder")
    fmt = args.format
    return {"locs": folder / f"demo_locs.{fmt}", "undrifted": folder / f"demo_undrifted.{fmt}",
            "drift": folder / "demo_drift.csv", "drift_plot": folder / "demo_drift.png",
            "events": folder / f"demo_events.{fmt}", "before": after.with_name(after.stem + "_before" + after.suffix),
            "after": after, "report": folder / "demo_report.html"}


def grid_contrast(locs, sites, spacing: float, shift=(0.0, 0.0), zoom: float = 10.0) -> float:
    """Rendered intensity at a grid's sites over that half-way to the next site (``spacing`` px apart) in x
    and y: > 1 where the sites are resolved. ``shift`` (px) is subtracted from the positions first."""
    import numpy as np

    from spotfit import render
    img = render.render(locs.assign(x=locs["x"] - shift[0], y=locs["y"] - shift[1]), zoom=zoom)
    half = 0.5 * spacing

    def mean_at(p):  # render's pixel (r, c) covers camera px [c/zoom - 0.5, (c+1)/zoom - 0.5)
        r = np.clip(np.floor((p[:, 1] + 0.5) * zoom).astype(int), 0, img.shape[0] - 1)
        c = np.clip(np.floor((p[:, 0] + 0.5) * zoom).astype(int), 0, img.shape[1] - 1)
        return float(img[r, c].mean())
    gaps = np.concatenate([sites + (half, 0.0), sites + (0.0, half)])
    return mean_at(sites) / max(mean_at(gaps), 1e-12)


def demo(args) -> int:
    """Handler of ``spotfit demo``: the whole trip on a simulated DNA-origami-like grid that blinks and drifts:
    simulate, localize, undrift, link, render before/after, report; scored against the truth."""
    import numpy as np
    import pandas as pd

    import spotfit
    from spotfit import io, render, smlm
    from spotfit.evaluate import match
    if args.frames < 500:
        raise UsageError(f"--frames must be >= 500 (drift correction needs enough blinks), got {args.frames}")
    paths = _demo_paths(args)
    check_writer(args.format)
    cam = spotfit.Camera(**SIMULATION_CAMERA)
    settings = dict(frames=args.frames, shape=(64, 64), count=20, spacing=0.6, mean_on=3.0, mean_off=80.0,
                    photons=2000.0, background=20.0, psf_sigma=1.0)
    drift = smlm.drift_trajectory(args.frames, linear=(1.2, -0.8), sine=(0.3, 0.0), seed=args.seed)
    sim = spotfit.simulate_smlm("grid", movie=True, camera=cam, seed=args.seed, drift=drift, **settings)
    t = time.perf_counter()
    locs = spotfit.localize(sim.movie, camera=cam, psf_sigma=settings["psf_sigma"], progress=not args.quiet)
    t_loc = time.perf_counter() - t
    truth = pd.DataFrame({"frame": sim.locs["frame"], "x": sim.truth["x"] + sim.truth["drift_x"],
                          "y": sim.truth["y"] + sim.truth["drift_y"]})
    m = match(truth, locs, tolerance=1.0)
    good = locs[locs["status"] == "converged"].reset_index(drop=True)
    t = time.perf_counter()
    corrected, found = spotfit.undrift(good, frames=args.frames, progress=not args.quiet)
    events = spotfit.link(corrected)
    t_post = time.perf_counter() - t
    offset = (sim.drift["x"] - found["x"]).mean(), (sim.drift["y"] - found["y"]).mean()
    err_nm = SIMULATION_CAMERA["pixel_size_nm"] * float(np.sqrt(np.mean(
        (found["x"] - sim.drift["x"] + offset[0]) ** 2 + (found["y"] - sim.drift["y"] + offset[1]) ** 2)))
    before = grid_contrast(good, sim.sites, settings["spacing"], (sim.drift["x"].mean(), sim.drift["y"].mean()))
    after = grid_contrast(corrected, sim.sites, settings["spacing"], offset)
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    for name, table in (("locs", locs), ("undrifted", corrected), ("events", events)):
        io.save(table, paths[name], format=args.format)
    io.save(found, paths["drift"], format="csv")
    for name, table in (("before", good), ("after", corrected)):
        img = render.render(table, zoom=10)
        render.save_image(img, paths[name], vmax=float(np.quantile(img[img > 0], 0.99)) if (img > 0).any() else None)
    have_plot = True
    try:
        import matplotlib  # noqa: F401  (the drift plot and the report need spotfit[plot])
    except ImportError:
        have_plot = False
    if have_plot:
        from spotfit._shared.atomic import atomic_path
        from .drift import _plot
        with atomic_path(paths["drift_plot"]) as tmp:
            _plot(found, tmp, SIMULATION_CAMERA["pixel_size_nm"])
        spotfit.report(good, paths["report"], drift=found, corrected=corrected,
                       pixel_size_nm=SIMULATION_CAMERA["pixel_size_nm"], title="spotfit demo")
    print(f"spotfit {spotfit.__version__} demo: {args.frames} frames of 64x64 px, a blinking DNA-origami-like grid "
          f"({len(sim.sites)} sites {settings['spacing'] * 100:.0f} nm apart) drifting {np.ptp(sim.drift['x']):.1f} x "
          f"{np.ptp(sim.drift['y']):.1f} px")
    print(f"localize: {len(locs)} spots in {t_loc:.2f} s ({args.frames / max(t_loc, 1e-9):,.0f} frames/s); vs truth "
          f"(1 px): recall {m['recall']:.4f}, precision {m['precision']:.4f}, RMSE {m['rmse']:.4f} px")
    print(f"undrift + link: {t_post:.2f} s; drift error {err_nm:.2f} nm RMS; {len(good)} localizations -> "
          f"{len(events)} events; grid contrast (sites/gaps) {before:.1f} before, {after:.1f} after correction")
    files = [paths[k] for k in ("before", "after", "locs", "undrifted", "events", "drift")]
    if have_plot:
        files += [paths["drift_plot"], paths["report"]]
    else:
        print("(drift plot and report need spotfit[plot]: pip install 'spotfit[plot]')")
    print(f"files in {paths['after'].parent}: " + ", ".join(p.name for p in files))
    # Recall stays below 1: two sites of one origami (60 nm apart) on at once are one spot to a single-emitter fit.
    return 0 if m["recall"] > 0.7 and err_nm < 5.0 and after > 2.0 * max(before, 1.0) else 1


def register(subparsers) -> None:
    """Add ``info``, ``simulate`` and ``demo`` to ``spotfit``'s subparsers."""
    i = subparsers.add_parser("info", help="frames, size, pixel type and metadata of a movie")
    i.add_argument("movies", nargs="+", metavar="MOVIE", help="movie file(s): several = one series")
    i.add_argument("--all", action="store_true", help="print every metadata entry")
    i.add_argument("--camera", action="store_true",
                   help="estimate the camera's offset and gain from the movie's own pixel statistics "
                        "(spotfit.Camera.estimate), with their uncertainties")
    i.add_argument("--em-gain", type=float, default=1.0, metavar="G",
                   help=help_text("with --camera: the EMCCD gain set on the camera (> 1 selects the EMCCD noise "
                                  "model)", 1.0))
    i.add_argument("--frames", type=int, default=None, metavar="N",
                   help=help_text("with --camera: use the first N frames", "all"))
    i.add_argument("--progress", action="store_true", help="with --camera: show a progress bar")
    i.set_defaults(func=info)

    defaults = simulate_defaults()
    s = subparsers.add_parser("simulate", help="simulate a movie (ImageJ TIFF) and its ground truth "
                                               "(<name>_truth.csv)",
                              description="Blinking point sources on a flat background, Poisson noise, then the "
                                          "camera (the defaults are those of spotfit.simulate).")
    s.add_argument("-o", "--output", required=True, metavar="MOVIE.tif", help="movie to write (.tif)")
    rows, cols = defaults["shape"]
    s.add_argument("--rows", type=int, default=rows, metavar="N", help=help_text("frame height, px", rows))
    s.add_argument("--cols", type=int, default=cols, metavar="N", help=help_text("frame width, px", cols))
    s.add_argument("--photons", type=float, nargs=2, default=defaults["photons"], metavar=("MIN", "MAX"),
                   help=help_text("photons per emitter, uniform in [MIN, MAX]", defaults["photons"]))
    for name, option, kind, metavar, text in _SIMULATE_OPTIONS:
        shown = "none, a new movie each run" if defaults[name] is None else defaults[name]
        s.add_argument(option, type=kind, default=defaults[name], metavar=metavar, help=help_text(text, shown))
    add_camera_options(s, defaults=SIMULATION_CAMERA, calibration=False)
    s.set_defaults(func=simulate)

    demo_p = subparsers.add_parser(
        "demo", help="the whole trip on a simulated drifting, blinking grid: localize, undrift, link, render, report",
        description="Simulate a DNA-origami-like grid that blinks and drifts (spotfit.simulate_smlm), localize "
                    "it, correct the drift, link the blinks, render it before and after correction and write a "
                    "report; print speed and accuracy against the truth. Files go into --out.")
    demo_p.add_argument("--frames", type=int, default=3000, metavar="N",
                        help=help_text("frames to simulate (>= 500)", 3000))
    demo_p.add_argument("--seed", type=int, default=0, metavar="N", help=help_text("random seed", 0))
    demo_p.add_argument("--out", default=None, metavar="DIR",
                        help=help_text("folder for the images, tables, drift and report (default: ./spotfit-demo, "
                                       "or the folder of --image)"))
    demo_p.add_argument("--image", default=None, metavar="IMAGE.png",
                        help=help_text("write the corrected image here instead (default: DIR/demo.png; the uncorrected "
                                       "one goes beside it as <name>_before.png)"))
    demo_p.add_argument("--format", choices=("csv", "parquet"), default="csv",
                        help=help_text("table format; parquet needs spotfit[io]", "csv"))
    demo_p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    demo_p.set_defaults(func=demo)
