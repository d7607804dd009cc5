#!/usr/bin/env python3
"""Run the peer SMLM tools (Picasso, trackpy) on one movie and time them.

Runs INSIDE the peers' virtual environment made by install_peers.sh; it never
imports spotfit.  For each method it writes the localizations as CSV in
spotfit's convention next to the JSON report:

    frame (0-based), x = column, y = row, in pixels, the centre of pixel
    (row 0, column 0) at (0, 0); photons where the tool estimates them.

Methods (--methods, comma separated):
    picasso-lq   picasso.localize.identify (min. net gradient) + picasso.localize.fit
                 with fitting_method="gausslq" (what Picasso: Localize runs)
    picasso-mle  the same identifications + fitting_method="gaussmle"
    trackpy      trackpy.batch (locate on every frame), minmass threshold
    picasso-gausslq-legacy, picasso-gaussmle-legacy   (opt-in) the deprecated
                 picasso.gausslq.fit_spots_parallel / picasso.gaussmle.gaussmle
                 modules on the same spots (Picasso 0.11 moved LQ and MLE fitting
                 to picasso.fitting.gaussfit and keeps these only for compatibility)

Timing: each method is first run on the first --warmup-frames frames (its wall
time, which includes numba's first-call compilation, is warmup_seconds), then
the full movie is timed (seconds; frames_per_s, locs_per_s).  Reading the TIFF
is timed apart (load_seconds) and not included.  Picasso reads a memory-mapped
TIFF (picasso.io.load_movie); trackpy gets the stack read by tifffile.

Threads: by default each tool runs with its own default parallelism, which is
reported ("threads").  --workers 1 forces one thread/process everywhere;
--workers N > 1 gives Picasso's identification N threads and fits the spots in
N threads (the gaussfit kernels release the GIL), and trackpy N processes.

Coordinate conventions (checked by --check-conventions, which fits noise-free
spots at known sub-pixel positions and prints the mean offset of each method):
Picasso and trackpy both put pixel centres at integer coordinates with x =
column, y = row, 0-based frames, i.e. spotfit's convention; the shifts in
SHIFT below are therefore 0 and are still applied (added) on output.
"""
from __future__ import annotations

import argparse
import io as _stdio
import json
import os
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd

# Added to a tool's (x, y) to reach spotfit's convention. Verified with
# --check-conventions (mean offsets < 0.01 px with Picasso 0.11.3, trackpy 0.7).
SHIFT = {"picasso": (0.0, 0.0), "trackpy": (0.0, 0.0)}

ALL_METHODS = ["picasso-lq", "picasso-mle", "trackpy",
               "picasso-gausslq-legacy", "picasso-gaussmle-legacy"]
DEFAULT_METHODS = "picasso-lq,picasso-mle,trackpy"
PICASSO_FIT = {"picasso-lq": "gausslq", "picasso-mle": "gaussmle"}


# ----------------------------------------------------------------------------- arguments
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--movie", help="uint16 TIFF stack (frames, rows, columns)")
    p.add_argument("--out", default="peers.json", help="JSON report; CSVs go next to it")
    p.add_argument("--baseline", type=float, default=100.0, help="camera offset, ADU (default 100)")
    p.add_argument("--sensitivity", type=float, default=0.5,
                   help="photoelectrons per ADU (default 0.5)")
    p.add_argument("--gain", type=float, default=1.0, help="EM gain (default 1)")
    p.add_argument("--qe", type=float, default=1.0,
                   help="quantum efficiency; passed to Picasso, which ignores it since v0.6")
    p.add_argument("--psf-sigma", type=float, default=1.3, help="PSF sigma in px (default 1.3)")
    p.add_argument("--box", type=int, default=7, help="Picasso box side in px, odd (default 7)")
    p.add_argument("--methods", default=DEFAULT_METHODS,
                   help=f"comma separated, from {', '.join(ALL_METHODS)} (default {DEFAULT_METHODS})")
    p.add_argument("--picasso-gradient", type=float, default=None,
                   help="Picasso minimum net gradient (raw ADU units); default: "
                        "--tune result, else 5000")
    p.add_argument("--trackpy-minmass", type=float, default=None,
                   help="trackpy minmass; default: --tune result, else 1000")
    p.add_argument("--trackpy-diameter", type=int, default=None,
                   help="trackpy diameter, odd px (default 2*ceil(2*sigma)+1 = 7 for sigma 1.3)")
    p.add_argument("--tune", default=None,
                   help="ground-truth CSV (frame,x,y; 0-based, spotfit convention): choose "
                        "each threshold that maximizes Jaccard (1 px) on the first --tune-frames")
    p.add_argument("--tune-frames", type=int, default=50)
    p.add_argument("--tune-base-gradient", type=float, default=1000.0,
                   help="first permissive Picasso threshold for tuning (halved while the "
                        "optimum sits at the lowest candidate)")
    p.add_argument("--tune-tol", type=float, default=1.0, help="matching radius for tuning, px")
    p.add_argument("--workers", type=int, default=None,
                   help="threads/processes per tool (default: each tool's own default)")
    p.add_argument("--repeat", type=int, default=1,
                   help="time the full run this many times and report the fastest (seconds) "
                        "and all (seconds_all); for a busy machine")
    p.add_argument("--warmup-frames", type=int, default=5)
    p.add_argument("--numba-cache", choices=["fresh", "keep"], default="fresh",
                   help="fresh (default): numba's on-disk cache goes to a new temporary folder, so "
                        "warmup_seconds always includes compilation; keep: use the installed cache")
    p.add_argument("--frames", type=int, default=None, help="use only the first N frames")
    p.add_argument("--check-conventions", action="store_true",
                   help="fit noise-free synthetic spots at known positions, print offsets, exit")
    a = p.parse_args(argv)
    a.methods = [m.strip() for m in a.methods.split(",") if m.strip()]
    bad = [m for m in a.methods if m not in ALL_METHODS]
    if bad:
        p.error(f"unknown method(s) {bad}; choose from {ALL_METHODS}")
    if a.box % 2 != 1:
        p.error("--box must be odd")
    if a.trackpy_diameter is None:
        a.trackpy_diameter = 2 * int(np.ceil(2 * a.psf_sigma)) + 1
    if a.trackpy_diameter % 2 != 1:
        p.error("--trackpy-diameter must be odd")
    if not a.check_conventions and not a.movie:
        p.error("--movie is required")
    return a


def quiet_imports():
    """Import the tools while swallowing their import-time chatter
    (playsound3 prints 'No supported audio backends' on a headless machine)."""
    buf = _stdio.StringIO()
    old, old_err = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = buf
    try:
        import picasso  # noqa: F401
        import picasso.io  # noqa: F401
        import picasso.localize  # noqa: F401
        import trackpy  # noqa: F401
    finally:
        sys.stdout, sys.stderr = old, old_err
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*deprecated.*")
    import trackpy
    trackpy.quiet()


# ----------------------------------------------------------------------------- movie I/O
def read_tiff_checked(path, n_frames=None):
    """Read the stack with tifffile; a file with fewer pages than its ImageJ /
    shaped metadata promises is an error, not a shorter movie."""
    import tifffile
    with tifffile.TiffFile(path) as tf:
        n_pages = len(tf.pages)
        expected = None
        if tf.imagej_metadata and "images" in tf.imagej_metadata:
            expected = int(tf.imagej_metadata["images"])
        elif tf.shaped_metadata:
            shp = tf.shaped_metadata[0].get("shape")
            if shp and len(shp) == 3:
                expected = int(shp[0])
        if expected is not None and expected != n_pages:
            raise SystemExit(f"{path}: header promises {expected} frames but the file holds "
                             f"{n_pages} pages (truncated?)")
        movie = tf.asarray()
    if movie.ndim == 2:
        movie = movie[None]
    if expected is not None and movie.shape[0] != expected:
        raise SystemExit(f"{path}: read {movie.shape[0]} frames, header promises {expected}")
    if n_frames is not None:
        movie = movie[:n_frames]
    return np.ascontiguousarray(movie)


def write_tiff(path, movie):
    import tifffile
    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": "TYX"})


def load_picasso_movie(path):
    from picasso import io as pio
    movie, _info = pio.load_movie(path)
    return movie


# ----------------------------------------------------------------------------- Picasso
class _Workers:
    """Make Picasso's worker-count helper return N while active (Picasso sizes
    its identification thread pool with picasso.lib.n_workers)."""

    def __init__(self, n):
        self.n = n

    def __enter__(self):
        from picasso import lib
        self._lib, self._orig = lib, lib.n_workers
        if self.n is not None:
            lib.n_workers = lambda *a, **k: self.n
        return self

    def __exit__(self, *exc):
        self._lib.n_workers = self._orig


def picasso_threads(workers):
    from picasso import lib
    if workers is None:
        # identify: lib.n_workers(cpu_utilization) with the user setting (0.8 default);
        # localize.fit's Gaussian CPU path is a serial loop.
        try:
            from picasso import io as pio
            cu = pio.load_user_settings()["Localize"]["cpu_utilization"]
            if not isinstance(cu, float) or cu >= 1:
                cu = 0.8
        except Exception:
            cu = 0.8
        return {"identify": lib.n_workers(cu), "fit": 1}
    return {"identify": workers, "fit": workers}


def camera_info(a):
    return {"Baseline": a.baseline, "Sensitivity": a.sensitivity, "Gain": a.gain,
            "Qe": a.qe, "Pixelsize": 100}


def picasso_identify(movie, min_ng, box, workers):
    from picasso import localize
    with _Workers(workers):
        ids, _ = localize.identify(movie, min_ng, box, threaded=(workers != 1))
    return ids


def picasso_fit(movie, ids, a, method, workers):
    """Fit identifications with one Picasso method; returns a locs DataFrame."""
    from picasso import localize
    cam = camera_info(a)
    box = a.box
    if len(ids) == 0:
        return pd.DataFrame({"frame": [], "x": [], "y": [], "photons": [], "net_gradient": []})
    if method in PICASSO_FIT and (workers is None or workers == 1):
        locs, _ = localize.fit(movie, camera_info=cam, identifications=ids, box=box,
                               fitting_method=PICASSO_FIT[method], multiprocess=False)
        return locs
    spots = localize.get_spots(movie, ids, box, cam)
    em = cam["Gain"] > 1
    if method in PICASSO_FIT:
        mle = method == "picasso-mle"
        chunks = np.array_split(np.arange(len(spots)), workers)
        with ThreadPoolExecutor(workers) as ex:
            parts = list(ex.map(lambda idx: localize.fit_spots_gauss(spots[idx], mle=mle), chunks))
        theta = np.concatenate(parts)
        return localize.locs_from_fits_gauss(ids, theta, box, em, mle=mle)
    if method == "picasso-gausslq-legacy":
        from picasso import gausslq
        with _Workers(workers):
            theta = gausslq.fit_spots_parallel(spots, asynch=False)
        return gausslq.locs_from_fits(ids, theta, box, em)
    if method == "picasso-gaussmle-legacy":
        from picasso import gaussmle
        # gaussmle.gaussmle is a serial numba loop; with N workers, N chunks run in threads
        n = 1 if workers is None else workers
        chunks = np.array_split(np.arange(len(spots)), n)
        with ThreadPoolExecutor(n) as ex:
            parts = list(ex.map(lambda idx: gaussmle.gaussmle(spots[idx], 1e-3, 1000,
                                                              method="sigmaxy"), chunks))
        res = [np.concatenate([p_[k] for p_ in parts]) for k in range(4)]
        theta, crlbs, lls, its = res
        return gaussmle.locs_from_fits(ids, theta, crlbs, lls, its, box)
    raise ValueError(method)


def picasso_run(movie, a, method, min_ng, workers):
    t0 = time.perf_counter()
    ids = picasso_identify(movie, min_ng, a.box, workers)
    t1 = time.perf_counter()
    locs = picasso_fit(movie, ids, a, method, workers)
    t2 = time.perf_counter()
    return locs, t1 - t0, t2 - t1


def picasso_to_table(locs):
    dx, dy = SHIFT["picasso"]
    out = pd.DataFrame({
        "frame": np.asarray(locs["frame"], dtype=np.int64),
        "x": np.asarray(locs["x"], dtype=np.float64) + dx,
        "y": np.asarray(locs["y"], dtype=np.float64) + dy,
        "photons": np.asarray(locs["photons"], dtype=np.float64),
    })
    if "net_gradient" in locs:
        out["net_gradient"] = np.asarray(locs["net_gradient"], dtype=np.float64)
    for c in ("sx", "sy", "bg"):
        if c in locs:
            out[c] = np.asarray(locs[c], dtype=np.float64)
    ok = np.isfinite(out["x"]) & np.isfinite(out["y"])
    return out[ok].reset_index(drop=True)


# ----------------------------------------------------------------------------- trackpy
def trackpy_processes(workers):
    if workers is not None:
        return workers
    return os.cpu_count() or 1  # trackpy.batch(processes="auto") uses os.cpu_count()


def trackpy_run(frames, a, minmass, workers):
    import trackpy as tp
    procs = "auto" if workers is None else workers
    t0 = time.perf_counter()
    f = tp.batch(frames, a.trackpy_diameter, minmass=minmass, processes=procs)
    return f, time.perf_counter() - t0


def trackpy_to_table(f):
    dx, dy = SHIFT["trackpy"]
    if len(f) == 0:
        return pd.DataFrame({"frame": [], "x": [], "y": [], "mass": []})
    return pd.DataFrame({
        "frame": np.asarray(f["frame"], dtype=np.int64),
        "x": np.asarray(f["x"], dtype=np.float64) + dx,
        "y": np.asarray(f["y"], dtype=np.float64) + dy,
        "mass": np.asarray(f["mass"], dtype=np.float64),
    })


# ----------------------------------------------------------------------------- scoring (tuning)
def jaccard(gt, loc, tol):
    """Per-frame one-to-one (Hungarian) matching within tol px."""
    from scipy.optimize import linear_sum_assignment
    from scipy.spatial.distance import cdist
    tp = 0
    gt_by = {f: g[["x", "y"]].to_numpy() for f, g in gt.groupby("frame")}
    for f, l in loc.groupby("frame"):
        g = gt_by.get(f)
        if g is None or len(g) == 0:
            continue
        d = cdist(g, l[["x", "y"]].to_numpy())
        d[d > tol] = 1e6
        r, c = linear_sum_assignment(d)
        tp += int((d[r, c] <= tol).sum())
    fp = len(loc) - tp
    fn = len(gt) - tp
    return tp / max(tp + fp + fn, 1)


def best_threshold(gt, table, col, tol, n_cand=60):
    """Threshold on `col` (keep rows with col > t) that maximizes Jaccard.
    Exact for both tools: Picasso keeps ng > min_ng and trackpy mass > minmass
    after a threshold-independent candidate search and per-spot fit."""
    vals = np.sort(table[col].to_numpy())
    vals = vals[np.isfinite(vals)]
    if len(vals) == 0:
        return None, 0.0, []
    lo = max(vals[0], 1e-9)
    cands = np.unique(np.concatenate([[vals[0] - 1e-6 * abs(vals[0]) - 1e-9],
                                      np.geomspace(lo, vals[-1], n_cand)]))
    curve = []
    for t in cands:
        curve.append((float(t), jaccard(gt, table[table[col] > t], tol)))
    t_best, j_best = max(curve, key=lambda c: c[1])
    return t_best, j_best, curve


# ----------------------------------------------------------------------------- conventions
def synth_movie(n_frames=20, size=64, sigma=1.3, photons=20000.0, bg=10.0, rng=None):
    """Noise-free pixel-integrated Gaussian spots at known positions (spotfit convention)."""
    from scipy.special import erf
    rng = rng or np.random.default_rng(1)
    grid = np.arange(size)
    movie = np.zeros((n_frames, size, size), np.uint16)
    rows = []
    for f in range(n_frames):
        mu = np.full((size, size), bg)
        centres = [(cx, cy) for cy in range(10, size - 9, 14) for cx in range(10, size - 9, 14)]
        for cx, cy in centres:
            x, y = cx + rng.uniform(-0.5, 0.5), cy + rng.uniform(-0.5, 0.5)
            s2 = np.sqrt(2) * sigma
            ex = 0.5 * (erf((grid + 0.5 - x) / s2) - erf((grid - 0.5 - x) / s2))
            ey = 0.5 * (erf((grid + 0.5 - y) / s2) - erf((grid - 0.5 - y) / s2))
            mu += photons * np.outer(ey, ex)
            rows.append((f, x, y))
        movie[f] = np.rint(mu * 2.0 + 100.0).astype(np.uint16)  # 0.5 e-/ADU, baseline 100
    return movie, pd.DataFrame(rows, columns=["frame", "x", "y"])


def check_conventions(a):
    from scipy.spatial import cKDTree
    movie, gt = synth_movie(sigma=a.psf_sigma)
    a.baseline, a.sensitivity, a.gain = 100.0, 0.5, 1.0
    tmp = tempfile.mkdtemp(prefix="peers_conv_")
    path = os.path.join(tmp, "conv.tif")
    write_tiff(path, movie)
    pm = load_picasso_movie(path)
    results = {}
    for m in a.methods:
        if m == "trackpy":
            f, _ = trackpy_run(movie, a, 1000.0, 1)
            t = trackpy_to_table(f)
        else:
            locs, _, _ = picasso_run(pm, a, m, 20000.0, 1)
            t = picasso_to_table(locs)
        dx, dy, n = [], [], 0
        for fr, g in gt.groupby("frame"):
            l = t[t["frame"] == fr]
            if len(l) == 0:
                continue
            d, i = cKDTree(l[["x", "y"]].to_numpy()).query(g[["x", "y"]].to_numpy())
            ok = d < 1.0
            n += int(ok.sum())
            dx.append(l["x"].to_numpy()[i[ok]] - g["x"].to_numpy()[ok])
            dy.append(l["y"].to_numpy()[i[ok]] - g["y"].to_numpy()[ok])
        dx, dy = np.concatenate(dx), np.concatenate(dy)
        results[m] = dict(matched=n, of=len(gt), mean_dx=float(dx.mean()), mean_dy=float(dy.mean()),
                          rms_dx=float(np.sqrt((dx ** 2).mean())), rms_dy=float(np.sqrt((dy ** 2).mean())))
        print(f"{m:26s} matched {n}/{len(gt)}  mean dx {dx.mean():+.4f}  mean dy {dy.mean():+.4f}  "
              f"rms dx {results[m]['rms_dx']:.4f}  rms dy {results[m]['rms_dy']:.4f}  (px, after SHIFT)")
    return results


# ----------------------------------------------------------------------------- main
def versions():
    import numba
    import picasso
    import trackpy
    return {"picasso": picasso.__version__, "trackpy": trackpy.__version__,
            "numba": numba.__version__, "numpy": np.__version__, "pandas": pd.__version__,
            "python": sys.version.split()[0]}


def main(argv=None):
    import shutil
    a = parse_args(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")  # Picasso imports matplotlib.pyplot
    cache_dir = None
    if a.numba_cache == "fresh":
        if "numba" in sys.modules:
            raise RuntimeError("numba imported before NUMBA_CACHE_DIR was set")
        cache_dir = tempfile.mkdtemp(prefix="peers_numba_cache_")
        os.environ["NUMBA_CACHE_DIR"] = cache_dir
    try:
        return _main(a)
    finally:
        if cache_dir:
            shutil.rmtree(cache_dir, ignore_errors=True)


def _main(a):
    import shutil
    quiet_imports()
    if a.check_conventions:
        res = check_conventions(a)
        if a.out and a.out != "peers.json":
            with open(a.out, "w") as fh:
                json.dump({"check_conventions": res, "versions": versions(), "shift": SHIFT}, fh, indent=2)
        return 0

    vers = versions()
    out_dir = os.path.dirname(os.path.abspath(a.out))
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.splitext(os.path.basename(a.out))[0]
    tmp = tempfile.mkdtemp(prefix="peers_")
    try:
        return _run(a, vers, out_dir, stem, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run(a, vers, out_dir, stem, tmp):

    t0 = time.perf_counter()
    frames = read_tiff_checked(a.movie, a.frames)
    load_tifffile = time.perf_counter() - t0
    n_frames = frames.shape[0]
    # Picasso reads its own memory-mapped TIFF; with --frames, a truncated copy.
    pic_path = a.movie
    if a.frames is not None and a.frames < n_frames_in_file(a.movie):
        pic_path = os.path.join(tmp, "movie_head.tif")
        write_tiff(pic_path, frames)
    t0 = time.perf_counter()
    pmovie = load_picasso_movie(pic_path) if any(m.startswith("picasso") for m in a.methods) else None
    load_picasso = time.perf_counter() - t0
    if pmovie is not None and len(pmovie) != n_frames:
        raise SystemExit(f"Picasso read {len(pmovie)} frames from {pic_path}, tifffile {n_frames}")

    # small movies for warm-up and tuning (Picasso cuts spots frame by frame over the whole movie)
    nw = max(1, min(a.warmup_frames, n_frames))
    warm_path = os.path.join(tmp, "warmup.tif")
    write_tiff(warm_path, frames[:nw])
    tune_gt = None
    if a.tune:
        nt = max(1, min(a.tune_frames, n_frames))
        tune_path = os.path.join(tmp, "tune.tif")
        write_tiff(tune_path, frames[:nt])
        gt_all = pd.read_csv(a.tune)
        tune_gt = gt_all[gt_all["frame"] < nt][["frame", "x", "y"]]

    report = {
        "movie": os.path.abspath(a.movie), "n_frames": int(n_frames),
        "frame_shape": list(frames.shape[1:]),
        "camera": {"baseline_adu": a.baseline, "sensitivity_e_per_adu": a.sensitivity,
                   "em_gain": a.gain, "qe": a.qe},
        "psf_sigma_px": a.psf_sigma, "box": a.box, "trackpy_diameter": a.trackpy_diameter,
        "workers_requested": a.workers, "numba_cache": a.numba_cache, "cpu_count": os.cpu_count(),
        "load_seconds": {"tifffile_in_memory": round(load_tifffile, 4),
                         "picasso_load_movie": round(load_picasso, 4)},
        "convention": "frame 0-based; x = column, y = row; pixel (0,0) centre at (0,0)",
        "shift_added": SHIFT, "versions": vers, "methods": {},
    }

    # ---- warm-up: first calls in this process (numba compiles here), before anything else
    wmovie = load_picasso_movie(warm_path)
    warm = {}
    for m in a.methods:
        t0 = time.perf_counter()
        if m == "trackpy":
            trackpy_run(frames[:nw], a, 1000.0 if a.trackpy_minmass is None else a.trackpy_minmass,
                        a.workers)
        else:
            picasso_run(wmovie, a, m, 5000.0 if a.picasso_gradient is None else a.picasso_gradient,
                        a.workers)
        warm[m] = time.perf_counter() - t0

    # ---- tuning
    tuned = {}
    if a.tune:
        tpm = load_picasso_movie(tune_path)
        pic_methods = [m for m in a.methods if m.startswith("picasso")]
        if pic_methods and a.picasso_gradient is None:
            for m in pic_methods:
                # a permissive identification, then exact filtering by net gradient;
                # lower the base while the optimum sits at its lower end
                base = a.tune_base_gradient
                for _ in range(6):
                    ids_base = picasso_identify(tpm, base, a.box, a.workers)
                    locs = picasso_to_table(picasso_fit(tpm, ids_base, a, m, a.workers))
                    t, j, curve = best_threshold(tune_gt, locs, "net_gradient", a.tune_tol)
                    if t is None or t > curve[1][0] or base < 1:
                        break
                    base /= 2.0
                tuned[m] = {"param": "min_net_gradient", "value": t, "jaccard": j,
                            "frames": int(nt), "base_threshold": base}
        if "trackpy" in a.methods and a.trackpy_minmass is None:
            f, _ = trackpy_run(frames[:nt], a, 0.0, a.workers)
            t, j, curve = best_threshold(tune_gt, trackpy_to_table(f), "mass", a.tune_tol)
            tuned["trackpy"] = {"param": "minmass", "value": t, "jaccard": j, "frames": int(nt)}
        for m, v in tuned.items():
            print(f"tuned {m}: {v['param']} = {v['value']:.1f} (Jaccard {v['jaccard']:.3f} "
                  f"on {v['frames']} frames)", file=sys.stderr)

    # ---- runs
    for m in a.methods:
        t_warm = warm[m]
        if m == "trackpy":
            thr = a.trackpy_minmass if a.trackpy_minmass is not None else \
                tuned.get("trackpy", {}).get("value", 1000.0)
            all_secs = []
            for _ in range(max(1, a.repeat)):
                f, secs_i = trackpy_run(frames, a, thr, a.workers)
                all_secs.append(secs_i)
            secs = min(all_secs)
            table = trackpy_to_table(f)
            entry = {"tool": "trackpy", "version": vers["trackpy"], "call": "trackpy.batch",
                     "threshold": {"minmass": thr, "diameter": a.trackpy_diameter},
                     "threads": {"processes": trackpy_processes(a.workers)},
                     "photons": "not estimated (column 'mass' is trackpy's integrated "
                                "band-passed brightness in ADU)"}
        else:
            if a.picasso_gradient is not None:
                thr = a.picasso_gradient
            else:
                thr = tuned.get(m, {}).get("value", 5000.0)
            all_secs, best = [], None
            for _ in range(max(1, a.repeat)):
                locs, t_id_i, t_fit_i = picasso_run(pmovie, a, m, thr, a.workers)
                all_secs.append(t_id_i + t_fit_i)
                if best is None or all_secs[-1] < best[0]:
                    best = (all_secs[-1], t_id_i, t_fit_i)
            secs, t_id, t_fit = best
            table = picasso_to_table(locs)
            entry = {"tool": "picasso", "version": vers["picasso"],
                     "call": ("localize.identify + localize.fit(fitting_method=%r)" % PICASSO_FIT[m]
                              if m in PICASSO_FIT else "localize.identify + get_spots + " +
                              ("gausslq.fit_spots_parallel" if "gausslq" in m else "gaussmle.gaussmle")),
                     "threshold": {"min_net_gradient": thr, "box": a.box},
                     "identify_seconds": round(t_id, 4), "fit_seconds": round(t_fit, 4),
                     "threads": picasso_threads(a.workers),
                     "photons": "fitted (Picasso camera conversion: (ADU-Baseline)*Sensitivity/Gain)"}
        csv = os.path.join(out_dir, f"{stem}.{m}.csv")
        table.to_csv(csv, index=False, float_format="%.5f")
        entry.update({
            "n_locs": int(len(table)), "seconds": round(secs, 4),
            "frames_per_s": round(n_frames / secs, 2) if secs > 0 else None,
            "locs_per_s": round(len(table) / secs, 1) if secs > 0 else None,
            "seconds_all": [round(x, 4) for x in all_secs],
            "warmup_seconds": round(t_warm, 4), "warmup_frames": int(nw),
            "csv": csv,
        })
        if m in tuned:
            entry["tuned"] = tuned[m]
        report["methods"][m] = entry
        print(f"{m:26s} {entry['n_locs']:7d} locs  {secs:8.3f} s  {entry['frames_per_s']:8.1f} frames/s  "
              f"warm-up {t_warm:.2f} s  threads {entry['threads']}", file=sys.stderr)

    with open(a.out, "w") as fh:
        json.dump(report, fh, indent=2)
    print(f"wrote {a.out}", file=sys.stderr)
    return 0


def n_frames_in_file(path):
    import tifffile
    with tifffile.TiffFile(path) as tf:
        return len(tf.pages)


if __name__ == "__main__":
    sys.exit(main())
