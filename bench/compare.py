"""Side-by-side benchmark: spotfit vs Picasso and trackpy on the same simulated movies (issue 7).

    python bench/compare.py            # 2000-frame movies, the full table (< 10 min on 2 cores)
    python bench/compare.py --quick    # 300 frames, one timed peer run: a CI smoke test (~3 min)

For each movie ("default": ~15 spots/frame, 500–5000 photons, 20 photons/px background; "hard": 40
spots/frame, 200–2000 photons, 50 background; both 256×256, PSF sigma 1.3 px, camera baseline 100 ADU,
0.5 e⁻/ADU) this script

1. simulates it with ``spotfit.simulate`` (cached under ``bench/out/movies/``, keyed by its parameters)
   and writes an ImageJ TIFF plus the ground truth;
2. tunes spotfit's threshold (factor of std(W1)) once on the first ``--tune-frames`` frames for the best
   Jaccard at 1 px, then times ``spotfit.localize`` on the in-memory stack (median of ``--repeat`` runs,
   after an untimed warm-up) with MLE and LSQ (all cores) and MLE on one thread, and MLE from the TIFF
   path (reading included);
3. when ``bench/peers/.venv`` exists (``bash bench/peers/install_peers.sh``), runs
   ``bench/peers/run_peers.py`` in that venv on the same TIFF: Picasso identify + LQ / MLE fits and
   trackpy ``batch``, thresholds tuned on the same first frames against the same truth (``--tune``),
   reading excluded, numba's first-call compilation timed apart (``warmup_seconds``);
4. scores every method against the truth with ``spotfit.evaluate.match`` (one-to-one, 1 px): recall,
   precision, Jaccard; the RMSE of the isolated emitters (nearest neighbour >= ``--isolated-radius`` px)
   and its ratio to the root-mean-square Cramér–Rao bound of x over the same emitters (``spotfit.crlb``,
   symmetric-Gaussian model, 7×7 box, true photons and background; Smith et al. 2010, Nat. Methods
   7:373); the median ratio of estimated to true photons;
5. prints one table and writes ``compare.json``, ``compare.md`` and ``precision.png`` (precision vs
   photons per method against the CRLB, ``bench/plot_precision.py``) to ``--out`` (``bench/out``).

Timings on a shared machine are noisy: every timed figure is a median, and the 1-minute load average
(``os.getloadavg()``) at the start of each method's timing is in the table. spotfit's speed ratio is
spotfit-mle (all cores, in memory) frames/s over the method's frames/s. Peers run with their own default
parallelism (Picasso: 1 identification thread, serial fit; trackpy: one process per core), reported in
the threads column.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import pandas as pd

import spotfit
import spotfit.evaluate as sfe

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PEERS_DIR = os.path.join(HERE, "peers")
CAMERA = {"baseline": 100.0, "sensitivity": 0.5}
PSF_SIGMA, BOX = 1.3, 7
MOVIES = {
    "default": {"density": 15.0, "photons": [500.0, 5000.0], "background": 20.0, "seed": 7},
    "hard": {"density": 40.0, "photons": [200.0, 2000.0], "background": 50.0, "seed": 8},
}
SPOTFIT_THRESHOLDS = (0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 4.0)


# ----------------------------------------------------------------------------------------- helpers
def log(msg):
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.1f}] {msg}", file=sys.stderr, flush=True)


def machine_info():
    cpu = platform.processor() or "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                cpu = line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "spotfit": spotfit.__version__ if hasattr(spotfit, "__version__") else "?",
            "numpy": np.__version__, "platform": platform.platform()}


def camera():
    return spotfit.Camera(baseline=CAMERA["baseline"], sensitivity=CAMERA["sensitivity"], em_gain=1, qe=1)


def get_movie(name, frames, out_dir):
    """Simulated movie (uint16, frames×256×256), its truth and TIFF path; cached by parameters."""
    import tifffile
    p = dict(MOVIES[name], frames=frames, shape=[256, 256], psf_sigma=PSF_SIGMA, camera=CAMERA,
             simulate="spotfit.simulate", spotfit=getattr(spotfit, "__version__", "?"))
    key = hashlib.sha1(json.dumps(p, sort_keys=True).encode()).hexdigest()[:10]
    d = os.path.join(out_dir, "movies")
    os.makedirs(d, exist_ok=True)
    tif = os.path.join(d, f"{name}-{frames}f-{key}.tif")
    gt_csv = tif[:-4] + ".truth.csv"
    if os.path.exists(tif) and os.path.exists(gt_csv):
        log(f"{name}: cached movie {os.path.relpath(tif, ROOT)}")
        return tifffile.imread(tif), pd.read_csv(gt_csv), tif, gt_csv, p
    log(f"{name}: simulating {frames} frames ...")
    movie, truth = spotfit.simulate(frames=frames, shape=(256, 256), density=p["density"],
                                    photons=tuple(p["photons"]), background=p["background"],
                                    psf_sigma=PSF_SIGMA, camera=camera(), seed=p["seed"])
    tmp = tif + ".part"
    tifffile.imwrite(tmp, movie, imagej=True, metadata={"axes": "TYX"})
    truth.to_csv(gt_csv, index=False, float_format="%.6f")
    os.replace(tmp, tif)  # the TIFF appears last, so a cache hit always has its truth
    return movie, truth, tif, gt_csv, p


def median_time(fn, repeat):
    times = []
    out = None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), times, out


def keep_good(locs):
    """spotfit localizations a user keeps: converged fits."""
    return locs[locs["status"] == "converged"].reset_index(drop=True)


# ----------------------------------------------------------------------------------------- spotfit
def run_spotfit(movie, truth, tif, a):
    cam = camera()
    nt = min(a.tune_frames, len(movie))
    tune_truth = truth[truth["frame"] < nt]
    best = None
    for thr in SPOTFIT_THRESHOLDS:
        locs = keep_good(spotfit.localize(movie[:nt], camera=cam, psf_sigma=PSF_SIGMA, box=BOX, threshold=thr))
        j = sfe.match(tune_truth, locs, 1.0)["jaccard"]
        if best is None or j > best[1]:
            best = (thr, j)
    thr = best[0]
    log(f"  spotfit threshold {thr} x std(W1) (Jaccard {best[1]:.3f} on {nt} frames)")
    variants = [("spotfit-mle", "mle", None, False), ("spotfit-lsq", "lsq", None, False),
                ("spotfit-mle", "mle", 1, False), ("spotfit-mle", "mle", None, True)]
    res = {}
    for name, est, threads, from_file in variants:
        def call(src=(tif if from_file else movie)):
            return spotfit.localize(src, camera=cam, psf_sigma=PSF_SIGMA, box=BOX, threshold=thr,
                                    estimator=est, threads=threads)
        spotfit.localize(movie[:20], camera=cam, psf_sigma=PSF_SIGMA, box=BOX, threshold=thr, estimator=est,
                         threads=threads)  # warm-up, untimed
        load = os.getloadavg()[0]
        secs, all_secs, locs = median_time(call, a.repeat)
        n_thr = threads or os.cpu_count()
        tag = "file" if from_file else ("1 thread" if threads == 1 else "memory")
        log(f"  {name} ({tag}): {len(movie) / secs:.0f} frames/s (median of {a.repeat}: "
            f"{', '.join(f'{t:.2f}' for t in all_secs)} s)")
        timing = {"seconds": secs, "seconds_all": all_secs, "load_1min": load, "threads": n_thr}
        if from_file:
            res[name]["from_file"] = timing
        elif threads == 1:
            res[name]["one_thread"] = timing
        else:
            good = keep_good(locs)
            res[name] = dict(timing, locs=good, n_raw=len(locs), threshold={"std_w1_factor": thr},
                             threads=f"{n_thr} (OpenMP)", tuned_jaccard=best[1])
    return res


# ----------------------------------------------------------------------------------------- peers
def peers_python(a):
    if a.no_peers:
        return None
    py = a.peers_python or os.path.join(PEERS_DIR, ".venv", "bin", "python")
    return py if os.path.exists(py) else None


def run_peers(py, tif, gt_csv, name, frames, a):
    out = os.path.join(a.out, name, "peers.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    cmd = [py, os.path.join(PEERS_DIR, "run_peers.py"), "--movie", tif, "--baseline", str(CAMERA["baseline"]),
           "--sensitivity", str(CAMERA["sensitivity"]), "--gain", "1", "--qe", "1", "--psf-sigma", str(PSF_SIGMA),
           "--box", str(BOX), "--tune", gt_csv, "--tune-frames", str(min(a.tune_frames, frames)),
           "--repeat", str(a.peer_repeat), "--methods", a.peer_methods, "--out", out]
    if a.peer_workers:
        cmd += ["--workers", str(a.peer_workers)]
    if a.numba_cache_dir:  # one fresh cache for the whole suite: the first movie pays the compile
        cmd += ["--numba-cache", "keep"]
    log(f"  peers: {' '.join(os.path.relpath(c, ROOT) if c.startswith('/') else c for c in cmd[1:])}")
    load = os.getloadavg()[0]
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH="")
    if a.numba_cache_dir:
        env["NUMBA_CACHE_DIR"] = a.numba_cache_dir
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=a.peer_timeout)
    for line in proc.stderr.splitlines():
        if not line.startswith(("tuned", "picasso", "trackpy", "wrote")):
            continue
        log(f"    {line.strip()}")
    if proc.returncode != 0:
        log(f"  peers FAILED (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        return {}, {"error": proc.stderr[-3000:]}
    with open(out) as fh:
        rep = json.load(fh)
    res = {}
    for m, e in rep["methods"].items():
        locs = pd.read_csv(e["csv"])
        secs = float(np.median(e["seconds_all"]))
        res[m] = {"seconds": secs, "seconds_all": e["seconds_all"], "load_1min": load, "locs": locs,
                  "threads": ", ".join(f"{k} {v}" for k, v in e["threads"].items()),
                  "threshold": e["threshold"], "warmup_seconds": e["warmup_seconds"],
                  "warmup_frames": e["warmup_frames"], "version": e["version"],
                  "identify_seconds": e.get("identify_seconds"), "fit_seconds": e.get("fit_seconds"),
                  "tuned_jaccard": e.get("tuned", {}).get("jaccard")}
    return res, {"versions": rep.get("versions"), "load_seconds": rep.get("load_seconds")}


# ----------------------------------------------------------------------------------------- scoring
class Bound:
    """CRLB of x vs photons at one background, interpolated in log-log on a fine grid (smooth in N)."""

    def __init__(self, background, lo, hi):
        self.grid = np.geomspace(max(lo * 0.8, 1.0), hi * 1.25, 160)
        self.x = spotfit.crlb(self.grid, background, PSF_SIGMA, box=BOX, model="gauss")["x"]
        self.x_fixed = spotfit.crlb(self.grid, background, PSF_SIGMA, box=BOX, model="fixed_sigma")["x"]
        self.lsq = spotfit.mortensen(self.grid, background, PSF_SIGMA, estimator="lsq")

    def __call__(self, photons):
        return np.exp(np.interp(np.log(photons), np.log(self.grid), np.log(self.x)))


def score(truth, locs, iso_mask, bound, bins):
    m = sfe.match(truth, locs, 1.0)
    pairs = m["pairs"]
    ti, li = pairs["truth"].to_numpy(), pairs["loc"].to_numpy()
    iso = iso_mask[ti]
    d2 = (pairs["dx"].to_numpy() ** 2 + pairs["dy"].to_numpy() ** 2) / 2
    true_ph = truth["photons"].to_numpy()[ti]
    crlb = bound(true_ph)
    out = {k: m[k] for k in ("tp", "fp", "fn", "recall", "precision", "jaccard", "rmse", "bias_x", "bias_y")}
    out["n_locs"] = int(len(locs))
    out["iso_matched"] = int(iso.sum())
    out["iso_recall"] = float(iso.sum() / max(iso_mask.sum(), 1))
    out["iso_rmse"] = float(np.sqrt(d2[iso].mean())) if iso.any() else float("nan")
    out["iso_crlb_rms"] = float(np.sqrt((crlb[iso] ** 2).mean())) if iso.any() else float("nan")
    out["iso_rmse_over_crlb"] = out["iso_rmse"] / out["iso_crlb_rms"]
    if "photons" in locs.columns and iso.any():
        est = locs["photons"].to_numpy()[li[iso]]
        out["photons_ratio"] = float(np.median(est / true_ph[iso]))
    else:
        out["photons_ratio"] = None
    which = np.digitize(true_ph, bins) - 1
    curve = {"photons": [], "rmse": [], "crlb": [], "n": []}
    for b in range(len(bins) - 1):
        sel = iso & (which == b)
        curve["photons"].append(float(np.sqrt(bins[b] * bins[b + 1])))
        curve["n"].append(int(sel.sum()))
        curve["rmse"].append(float(np.sqrt(d2[sel].mean())) if sel.any() else None)
        curve["crlb"].append(float(np.sqrt((crlb[sel] ** 2).mean())) if sel.any() else None)
    return out, curve


# ----------------------------------------------------------------------------------------- output
COLS = [("movie", "movie", "{}"), ("method", "method", "{}"), ("threads", "threads", "{}"),
        ("frames/s", "frames_per_s", "{:,.0f}"), ("locs/s", "locs_per_s", "{:,.0f}"),
        ("recall", "recall", "{:.3f}"), ("precision", "precision", "{:.3f}"), ("Jaccard", "jaccard", "{:.3f}"),
        ("iso RMSE px", "iso_rmse", "{:.4f}"), ("RMSE/CRLB", "iso_rmse_over_crlb", "{:.3f}"),
        ("photons est/true", "photons_ratio", "{:.3f}"), ("spotfit speed ×", "speedup", "{:.1f}"),
        ("load", "load_1min", "{:.1f}")]


def fmt(v, f):
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "n/a"
    return f.format(v)


def table_rows(report):
    return [[fmt(r.get(k), f) for _, k, f in COLS] for r in report["rows"]]


def text_table(report):
    head = [h for h, _, _ in COLS]
    rows = table_rows(report)
    w = [max(len(head[i]), *(len(r[i]) for r in rows)) for i in range(len(head))]
    line = lambda cells: "  ".join(c.rjust(w[i]) if i > 2 else c.ljust(w[i]) for i, c in enumerate(cells))
    return "\n".join([line(head), line(["-" * x for x in w])] + [line(r) for r in rows])


def markdown(report):
    head = [h for h, _, _ in COLS]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in table_rows(report)]
    return "\n".join(lines)


def notes(report):
    mc = report["machine"]
    out = [f"Date {report['date']}; {mc['cpu']}, {mc['cores']} cores; load average (1, 5, 15 min) at start "
           f"{report['load_start']}, at end {report['load_end']}; wall time {report['wall_seconds']:.0f} s.",
           f"Command: `{report['command']}`. Timed runs: spotfit median of {report['repeat']}, peers median of "
           f"{report['peer_repeat']}; reading the movie excluded (spotfit from the TIFF path in the notes)."]
    for mv in report["movies"]:
        s = mv.get("spotfit_extra", {})
        bits = [f"{mv['name']}: {mv['frames']} frames, {mv['n_truth']} emitters, {mv['n_isolated']} isolated "
                f"(>= {report['isolated_radius']} px)"]
        if "one_thread_fps" in s:
            bits.append(f"spotfit-mle 1 thread {s['one_thread_fps']:,.0f} frames/s")
        if "from_file_fps" in s:
            bits.append(f"spotfit-mle from the TIFF path {s['from_file_fps']:,.0f} frames/s")
        thr = ", ".join(f"{m} {k} {v:.4g}" for m, t in mv.get("thresholds", {}).items()
                        for k, v in t.items() if k not in ("box", "diameter"))
        if thr:
            bits.append(f"thresholds (tuned on the first {report['tune_frames']} frames): {thr}")
        out.append("; ".join(bits) + ".")
        if mv.get("numba_warmup"):
            cold = mv is report["movies"][0]
            out.append(f"{mv['name']}: first call on {mv['numba_warmup_frames']} frames "
                       f"({'incl. numba compile, empty cache' if cold else 'numba cache from the first movie'}; "
                       "not in the timings): " + ", ".join(
                f"{m} {v:.1f} s" for m, v in mv["numba_warmup"].items()) + ".")
        if mv.get("peers_error"):
            out.append(f"{mv['name']}: peers failed: {mv['peers_error'][-300:]}")
        if mv.get("peers_skipped"):
            out.append(f"{mv['name']}: peers skipped ({mv['peers_skipped']}).")
    return out


# ----------------------------------------------------------------------------------------- main
def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="300 frames, 2 timed runs (CI smoke test)")
    ap.add_argument("--frames", type=int, default=None, help="frames per movie (default 2000; --quick 300)")
    ap.add_argument("--movies", default="default,hard", help=f"comma separated from {', '.join(MOVIES)}")
    ap.add_argument("--repeat", type=int, default=None, help="timed spotfit runs, median (default 3; quick 2)")
    ap.add_argument("--peer-repeat", type=int, default=None, help="timed peer runs, median (default 3; quick 1)")
    ap.add_argument("--peer-methods", default="picasso-lq,picasso-mle,trackpy")
    ap.add_argument("--peer-workers", type=int, default=None, help="peers' threads (default: their own)")
    ap.add_argument("--peer-timeout", type=float, default=1800.0)
    ap.add_argument("--peers-python", default=None, help="interpreter of the peers' venv "
                    "(default bench/peers/.venv/bin/python)")
    ap.add_argument("--no-peers", action="store_true", help="spotfit only")
    ap.add_argument("--tune-frames", type=int, default=50, help="frames used to tune every threshold")
    ap.add_argument("--isolated-radius", type=float, default=7.0,
                    help="an emitter is isolated when no other is closer than this, px (default 7 = box)")
    ap.add_argument("--out", default=os.path.join(HERE, "out"), help="output folder (default bench/out)")
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--no-epfl", action="store_true", help="skip the EPFL HD crowded-field rows (bench/epfl_hd.py)")
    a = ap.parse_args(argv)
    a.frames = a.frames or (300 if a.quick else 2000)
    a.repeat = a.repeat or (2 if a.quick else 3)
    a.peer_repeat = a.peer_repeat or (1 if a.quick else 3)
    a.movies = [m.strip() for m in a.movies.split(",") if m.strip()]
    bad = [m for m in a.movies if m not in MOVIES]
    if bad or a.frames < 1 or a.repeat < 1 or a.peer_repeat < 1:
        ap.error(f"bad --movies {bad}, or --frames/--repeat/--peer-repeat < 1")
    a.out = os.path.abspath(a.out)
    return a


def run(a, argv):
    t_start = time.perf_counter()
    load_start = [round(x, 2) for x in os.getloadavg()]
    report = {"date": _dt.datetime.now().strftime("%Y-%m-%d %H:%M"), "machine": machine_info(),
              "command": " ".join(["python bench/compare.py"] + list(argv)), "load_start": load_start,
              "repeat": a.repeat, "tune_frames": a.tune_frames, "peer_repeat": a.peer_repeat, "isolated_radius": a.isolated_radius,
              "tolerance_px": 1.0, "camera": CAMERA, "psf_sigma": PSF_SIGMA, "box": BOX,
              "movies": [], "rows": []}
    py = peers_python(a)
    import shutil
    import tempfile
    a.numba_cache_dir = tempfile.mkdtemp(prefix="compare_numba_") if py else None
    try:
        _run_movies(a, report, py)
    finally:
        if a.numba_cache_dir:
            shutil.rmtree(a.numba_cache_dir, ignore_errors=True)
    report["load_end"] = [round(x, 2) for x in os.getloadavg()]
    report["wall_seconds"] = time.perf_counter() - t_start
    return report


def _run_movies(a, report, py):
    for name in a.movies:
        movie, truth, tif, gt_csv, params = get_movie(name, a.frames, a.out)
        frames = len(movie)
        log(f"{name}: {frames} frames, {len(truth)} emitters")
        methods = run_spotfit(movie, truth, tif, a)
        mv = {"name": name, "frames": frames, "params": params, "tif": os.path.relpath(tif, ROOT),
              "n_truth": int(len(truth)), "thresholds": {}, "numba_warmup": {}}
        mv["spotfit_extra"] = {
            "one_thread_fps": frames / methods["spotfit-mle"].pop("one_thread")["seconds"],
            "from_file_fps": frames / methods["spotfit-mle"]["from_file"]["seconds"]}
        if py:
            peers, meta = run_peers(py, tif, gt_csv, name, frames, a)
            mv["peers_meta"] = {k: v for k, v in meta.items() if k != "error"}
            if "error" in meta:
                mv["peers_error"] = meta["error"]
            methods.update(peers)
        else:
            mv["peers_skipped"] = "--no-peers" if a.no_peers else \
                "bench/peers/.venv not found: bash bench/peers/install_peers.sh"
        iso_mask = sfe.isolated(truth, a.isolated_radius)
        mv["n_isolated"] = int(iso_mask.sum())
        lo, hi = params["photons"]
        bound = Bound(params["background"], lo, hi)
        bins = np.geomspace(lo, hi, 9)
        bins[-1] *= 1.0001
        curves = {}
        ref_fps = frames / methods["spotfit-mle"]["seconds"]
        for m, r in methods.items():
            sc, curves[m] = score(truth, r["locs"], iso_mask, bound, bins)
            fps = frames / r["seconds"]
            row = dict(sc, movie=name, method=m, threads=r["threads"], frames_per_s=fps,
                       locs_per_s=len(r["locs"]) / r["seconds"], seconds=r["seconds"],
                       seconds_all=r["seconds_all"], load_1min=r["load_1min"],
                       speedup=None if m.startswith("spotfit") else ref_fps / fps)
            if "warmup_seconds" in r:
                mv["numba_warmup"][m] = r["warmup_seconds"]
                mv["numba_warmup_frames"] = r["warmup_frames"]
                for k in ("identify_seconds", "fit_seconds", "version", "tuned_jaccard"):
                    row[k] = r.get(k)
            mv["thresholds"][m] = r["threshold"]
            report["rows"].append(row)
        mv["precision_curves"] = {"crlb_photons": bound.grid.tolist(), "crlb_x": bound.x.tolist(),
                                  "crlb_x_fixed_sigma": bound.x_fixed.tolist(),
                                  "mortensen_lsq": np.asarray(bound.lsq).tolist(), "bins": bins.tolist(),
                                  "methods": curves}
        report["movies"].append(mv)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    os.makedirs(a.out, exist_ok=True)
    report = run(a, argv)
    table, note = text_table(report), notes(report)
    print(table)
    print("\n".join(note))
    sys.path.insert(0, HERE)
    import epfl_hd
    if not a.no_epfl and epfl_hd.available():
        # Crowded field (issue 19): single vs multi-emitter, one thread, with 3D-DAOSTORM's figures quoted.
        report["epfl_hd"] = epfl_hd.rows(frames=100 if a.quick else None, threads=1)
        crowd = epfl_hd.table(report["epfl_hd"])
        print(crowd)
        note.append("EPFL 2013 Bundled Tubes HD (bench/epfl_hd.py; J at 250/100 nm, lateral RMSE, E; 3D-DAOSTORM "
                    "measured elsewhere, issue 19):\n\n```\n" + crowd + "\n```")
    stem = os.path.join(a.out, "compare" + ("-quick" if a.quick else ""))
    if not a.no_plot:
        sys.path.insert(0, HERE)
        from plot_precision import plot
        try:
            report["plot"] = plot(report, stem.replace("compare", "precision") + ".png")
            print(f"plot: {os.path.relpath(report['plot'], ROOT)}")
        except ImportError as exc:
            print(f"plot skipped: {exc}")
    with open(stem + ".json", "w") as fh:
        json.dump(report, fh, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    with open(stem + ".md", "w") as fh:
        fh.write(markdown(report) + "\n\n" + "\n\n".join(note) + "\n")
    print(f"wrote {os.path.relpath(stem, ROOT)}.json, .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
