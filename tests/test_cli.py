"""The ``spotfit`` command line, end to end: in a subprocess (``python -m spotfit.cli``) and via ``main``."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

import spotfit
from spotfit import io as sio
from spotfit.cli import SUBCOMMAND_MODULES, main
from spotfit.evaluate import match

CAM = spotfit.Camera(baseline=100, sensitivity=0.5, pixel_size_nm=100.0)
ENV = dict(os.environ, OMP_NUM_THREADS="2", PYTHONUNBUFFERED="1")


def run_cli(*args, timeout=120):
    """``python -m spotfit.cli ARGS`` in a fresh process: (exit code, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "spotfit.cli", *map(str, args)], capture_output=True,
                       text=True, env=ENV, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def leftovers(folder):
    """Temporary files of atomic writes that were not cleaned up."""
    return [p.name for p in Path(folder).iterdir() if p.name.endswith(".tmp")]


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A 40-frame 64x64 movie written by ``spotfit simulate`` (camera in the ImageJ metadata) + truth."""
    d = tmp_path_factory.mktemp("cli")
    movie = d / "movie.tif"
    assert main(["simulate", "-o", str(movie), "--frames", "40", "--rows", "64", "--cols", "64",
                 "--density", "6", "--seed", "3", "--camera-baseline", "100", "--sensitivity", "0.5",
                 "--pixel-size", "100"]) == 0
    truth = sio.load(d / "movie_truth.csv")
    return d, movie, truth


def test_simulate_writes_movie_truth_and_camera_metadata(sim):
    d, movie, truth = sim
    info = sio.movie_info(movie)
    assert (info.n_frames, info.rows, info.cols) == (40, 64, 64)
    assert info.metadata["pixel_size_nm"] == pytest.approx(100.0)
    cam = spotfit.Camera.from_metadata(info.metadata)
    assert (cam.baseline, cam.sensitivity, cam.em_gain, cam.qe, cam.pixel_size_nm) == (100, 0.5, 1, 1, 100)
    assert list(truth.columns[:3]) == ["frame", "x", "y"] and truth["frame"].max() == 39
    assert len(truth) > 150


def test_camera_from_metadata_overrides():
    md = {"pixel_size_nm": 160.0, "camera": {"Camera": "Andor", "Camera.Baseline": "400"},
          "imagej": {"spotfit.sensitivity": 0.46, "spotfit.em_gain": 1.0, "unit": "nm"},
          "picasso": {"Camera.Gain": 50, "Camera.Qe": 0.9}}
    cam = spotfit.Camera.from_metadata(md, sensitivity=2.0, qe=None)
    assert (cam.baseline, cam.sensitivity, cam.em_gain, cam.qe, cam.pixel_size_nm) == (400, 2.0, 50, 0.9, 160)
    assert spotfit.Camera.from_metadata(None) == spotfit.Camera()
    with pytest.raises(ValueError, match="qe"):
        spotfit.Camera.from_metadata({"picasso": {"Camera.Qe": 80}})  # percent, not a fraction


def test_localize_subprocess_end_to_end(sim):
    d, movie, truth = sim
    out = d / "locs.csv"
    rc, stdout, stderr = run_cli("localize", movie, "-o", out)
    assert rc == 0, stderr
    locs = sio.load(out)
    # Camera read from the file's metadata: the same result as the Python call with that camera.
    ref = spotfit.localize(str(movie), camera=CAM)
    np.testing.assert_array_equal(locs["x"].to_numpy(), ref["x"].to_numpy())
    np.testing.assert_array_equal(locs["photons"].to_numpy(), ref["photons"].to_numpy())
    m = match(truth, locs[locs["status"] == "converged"], tolerance=1.0)
    # ~6 spots per 64x64 frame (500-5000 photons, 20 bg; some overlap, as simulate places them freely):
    # measured recall 0.94, precision 0.98, RMSE 0.13 px (overlapping pairs dominate it).
    assert m["recall"] > 0.9 and m["precision"] > 0.9 and m["rmse"] < 0.2, m
    assert abs(m["bias_x"]) < 0.03 and abs(m["bias_y"]) < 0.03, m
    md = locs.attrs["spotfit"]
    assert md["camera"]["sensitivity"] == 0.5 and md["pixel_size_nm"] == 100.0
    assert tuple(md["movie_shape"]) == (40, 64, 64) and md["source"]["files"] == [str(movie)]
    # The one-line summary: count, timing, mean precision in px and nm.
    summary = stdout.strip().splitlines()[-1]
    assert summary.startswith(f"{len(locs)} localizations") and "frames/s" in summary and " nm" in summary
    assert "localize" in stderr and "frame/s" in stderr       # tqdm progress bar with the frame rate


def test_camera_options_override_metadata(sim):
    d, movie, _ = sim
    a, b = d / "a.parquet", d / "b.parquet"
    assert main(["localize", str(movie), "-o", str(a), "-q"]) == 0
    assert main(["localize", str(movie), "-o", str(b), "-q", "--sensitivity", "1.0"]) == 0
    la, lb = sio.load(a), sio.load(b)
    # photons = (ADU - baseline) * sensitivity: doubling it doubles photons and background; the Poisson
    # likelihood is scale-equivariant and the threshold is relative, so positions stay (float32 noise).
    assert len(la) == len(lb) and lb.attrs["spotfit"]["camera"]["sensitivity"] == 1.0
    ok = (la["status"] == "converged") & (lb["status"] == "converged")
    np.testing.assert_allclose(lb["photons"][ok] / la["photons"][ok], 2.0, rtol=2e-3)
    np.testing.assert_allclose(lb["x"][ok], la["x"][ok], atol=2e-3)


def test_bigtiff_two_file_series_and_separate(sim, tmp_path):
    _, movie, truth = sim
    frames = sio.read_movie(movie)
    p1, p2 = tmp_path / "part_1.tif", tmp_path / "part_2.tif"
    tifffile.imwrite(p1, frames[:25], bigtiff=True)
    tifffile.imwrite(p2, frames[25:], bigtiff=True)
    assert tifffile.TiffFile(p1).is_bigtiff
    out = tmp_path / "series.csv"
    rc, _, err = run_cli("localize", p1, p2, "-o", out, "--camera-baseline", 100, "--sensitivity", 0.5,
                         "--chunk-frames", 8, "-q")
    assert rc == 0, err
    series = sio.load(out)
    whole = spotfit.localize(frames, camera=CAM)
    # Frames continue from file to file: identical to localizing the concatenated movie.
    np.testing.assert_array_equal(series["frame"].to_numpy(), whole["frame"].to_numpy())
    np.testing.assert_array_equal(series["x"].to_numpy(), whole["x"].to_numpy())
    assert series.attrs["spotfit"]["source"]["frames_per_file"] == [25, 15]
    assert match(truth, series, tolerance=1.0)["recall"] > 0.9
    # --separate: one table per movie, each with its own 0-based frames.
    folder = tmp_path / "each"
    assert main(["localize", str(p1), str(p2), "-o", str(folder), "--separate", "-q",
                 "--camera-baseline", "100", "--sensitivity", "0.5"]) == 0
    one, two = sio.load(folder / "part_1.csv"), sio.load(folder / "part_2.csv")
    assert one["frame"].max() == 24 and two["frame"].min() == 0 and two["frame"].max() == 14
    np.testing.assert_array_equal(np.r_[one["x"], two["x"]], whole["x"].to_numpy())


@pytest.mark.parametrize("fmt, name", [("thunderstorm", "ts.csv"), ("picasso", "p.hdf5"), ("parquet", "l.pq"),
                                       ("csv", "n.csv")])
def test_output_formats(sim, fmt, name):
    d, movie, _ = sim
    out = d / name
    assert main(["localize", str(movie), "-o", str(out), "--format", fmt, "-q"]) == 0
    ref = spotfit.localize(str(movie), camera=CAM)
    back = sio.load(out, format=fmt, pixel_size_nm=100.0)
    assert len(back) == len(ref)
    np.testing.assert_allclose(back["x"], ref["x"], atol=1e-4)       # float32 (picasso) round trip
    np.testing.assert_array_equal(back["frame"], ref["frame"])
    if fmt == "thunderstorm":
        header = out.read_text().splitlines()[0]
        assert header.startswith('"id","frame","x [nm]","y [nm]"')
        first = out.read_text().splitlines()[1].split(",")
        assert int(first[1]) == ref["frame"].iloc[0] + 1                           # 1-based frames
        assert float(first[2]) == pytest.approx((ref["x"].iloc[0] + 0.5) * 100.0, rel=1e-6)  # nm, corner
    if fmt == "picasso":
        import yaml
        docs = list(yaml.safe_load_all(out.with_suffix(".yaml").read_text()))
        assert (docs[0]["Width"], docs[0]["Height"], docs[0]["Frames"]) == (64, 64, 40)
        assert docs[1]["Pixelsize"] == 100.0


def test_render_convert_info(sim, capsys):
    d, movie, _ = sim
    locs_path = d / "r.parquet"
    assert main(["localize", str(movie), "-o", str(locs_path), "-q"]) == 0
    png, tif = d / "img.png", d / "img.tif"
    assert main(["render", str(locs_path), "-o", str(png), "--zoom", "4"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["render", str(locs_path), "-o", str(tif), "--render-pixel-size", "20", "--method", "gaussian"]) == 0
    img = tifffile.imread(tif)
    assert img.shape == (320, 320)                  # 64 px x (100 nm / 20 nm)
    n = len(sio.load(locs_path))
    assert img.sum() == pytest.approx(n, rel=0.02)  # unit mass per localization, little lost at the border
    # convert to ThunderSTORM and back.
    ts = d / "conv.csv"
    assert main(["convert", str(locs_path), "-o", str(ts), "--format", "thunderstorm"]) == 0
    back = sio.load(ts, pixel_size_nm=100.0)
    np.testing.assert_allclose(back["x"], sio.load(locs_path)["x"], atol=1e-9)
    capsys.readouterr()
    assert main(["render", str(ts), "-o", str(d / "ts.png")]) == 2      # nm file needs the pixel size
    assert "--pixel-size NM" in capsys.readouterr().err
    assert main(["info", str(movie)]) == 0
    text = capsys.readouterr().out
    assert "frames:     40" in text and "64 rows x 64 cols" in text and "uint16" in text
    assert "baseline=100, sensitivity=0.5" in text and "pixel size: 100 nm" in text


def test_errors_are_one_line_exit_2_and_leave_no_output(sim, tmp_path):
    d, movie, _ = sim
    data = movie.read_bytes()
    trunc = tmp_path / "trunc.tif"
    trunc.write_bytes(data[: len(data) // 3])
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"not a tiff at all" * 100)
    folder = tmp_path / "a_folder.tif"
    folder.mkdir()
    out = tmp_path / "out.csv"
    cases = [
        ([trunc], "ends early"), ([garbage], "not a readable TIFF"), ([folder], "is a directory"),
        ([tmp_path / "missing.tif"], "not found"), ([movie, "--box", "4"], "box"),
        ([movie, "--estimator", "nope"], "invalid choice"), ([movie, "--no-such-option"], "unrecognized"),
        ([movie, "--format", "thunderstorm", "--pixel-size", "-3"], "pixel_size_nm"),
    ]
    for args, message in cases:
        rc, stdout, stderr = (run_cli("localize", *args, "-o", out) if args[0] is trunc
                              else (None, None, None))
        if rc is None:  # the same through main(), in this process (faster)
            import contextlib
            import io as _io
            buf = _io.StringIO()
            with contextlib.redirect_stderr(buf):
                rc = main(["localize", *map(str, args), "-o", str(out), "-q"])
            stderr = buf.getvalue()
        assert rc == 2, (args, stderr)
        lines = [line for line in stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "error" in lines[0] and message in lines[0], (args, stderr)
        assert "Traceback" not in stderr
        assert not out.exists() and not leftovers(tmp_path), args
    assert str(trunc) in run_cli("info", trunc)[2]     # the message names the file


def test_missing_output_folder_and_unknown_suffix(sim, capsys):
    d, movie, _ = sim
    assert main(["localize", str(movie), "-o", str(d / "no" / "such" / "x.csv")]) == 2
    assert main(["localize", str(movie), "-o", str(d / "x.unknown")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "--format" in err
    assert main([]) == 2 and main(["--version"]) == 0
    assert main(["localize", "--help"]) == 0


def test_ctrl_c_exits_130_without_output(tmp_path, ctrl_c_handled):
    # Long enough (seconds: every local maximum fitted in a 31 px box; the default settings finish 600
    # frames in ~0.05 s on a fast machine, before the signal lands) and small chunks, so that Python
    # regains control often (the C++ core releases the GIL per chunk).
    movie, _ = spotfit.simulate(frames=600, shape=(64, 64), density=10, camera=CAM, seed=0)
    path = tmp_path / "long.tif"
    tifffile.imwrite(path, movie, imagej=True)
    out = tmp_path / "locs.parquet"
    p = subprocess.Popen([sys.executable, "-m", "spotfit.cli", "localize", str(path), "-o", str(out),
                          "--chunk-frames", "4", "--threads", "1", "--box", "31", "--threshold-mode", "absolute",
                          "--threshold=1e-9"], stderr=subprocess.PIPE, stdout=subprocess.PIPE, env=ENV)
    started = threading.Event()
    err = []

    def reader():
        for chunk in iter(lambda: p.stderr.read1(256), b""):
            err.append(chunk)
            if b"localize" in chunk:      # the progress bar has appeared: main() is running
                started.set()
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    assert started.wait(120), b"".join(err)
    p.send_signal(signal.SIGINT)  # at once
    rc = p.wait(60)
    t.join(5)
    text = b"".join(err).decode(errors="replace")
    assert rc == 130, text
    assert "interrupted" in text and "Traceback" not in text
    assert not out.exists() and not leftovers(tmp_path)


MEMORY_CHILD = r"""
import json, sys
import spotfit
def peak():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM:"))
locs = spotfit.localize(sys.argv[1], chunk_frames=int(sys.argv[2]), threads=1)
print(json.dumps({"peak": peak(), "n": len(locs)}))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM from /proc (Linux)")
def test_memory_stays_flat_with_movie_length(tmp_path):
    """Peak RSS of localize(path) for movies of 1, 4 and 16 chunks (bench/bench_memory.py in small).

    VmHWM (the process's own peak RSS) is used, not ru_maxrss: on Linux a child's ru_maxrss starts at
    the parent's RSS at fork time.
    """
    chunk, size = 16, 512                               # one chunk = 8 MiB of uint16
    block, _ = spotfit.simulate(frames=chunk, shape=(size, size), density=5, camera=CAM, seed=1)
    peaks = {}
    for n_chunks in (1, 4, 16):
        path = tmp_path / f"m{n_chunks}.tif"
        with tifffile.TiffWriter(path, bigtiff=True) as tw:
            tw.write((np.roll(block[i % chunk], i, axis=1) for i in range(n_chunks * chunk)),
                     shape=(n_chunks * chunk, size, size), dtype=np.uint16, photometric="minisblack")
        out = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(path), str(chunk)], capture_output=True,
                             text=True, env=dict(ENV, OMP_NUM_THREADS="1"), timeout=300)
        assert out.returncode == 0, out.stderr
        peaks[n_chunks] = json.loads(out.stdout.strip().splitlines()[-1])["peak"] / 2**20
        path.unlink()
    chunk_mib = chunk * size * size * 2 / 2**20
    # Reading the whole movie (or a memory map that keeps read pages resident) would add 15 chunks of
    # uint16 from 1x to 16x and 12 from 4x to 16x. A streaming reader holds ~2 chunks at once (the one
    # being fitted and the next); the allocator adds jitter of up to ~2 chunks (measured with
    # bench/bench_memory.py: +0.5 to +2.4 chunks over 1x, the same for 4x, 16x and 32x).
    assert peaks[16] - peaks[1] < 4 * chunk_mib, peaks
    assert peaks[16] - peaks[4] < 3 * chunk_mib, peaks


def test_demo_and_contributed_subcommands(capsys, tmp_path):
    assert "spotfit.cli.classify" in SUBCOMMAND_MODULES
    assert main(["classify", "--help"]) == 0
    assert "train" in capsys.readouterr().out
    assert main(["demo", "--frames", "20", "--image", str(tmp_path / "demo.png")]) == 2
    assert "--frames must be >= 500" in capsys.readouterr().err
    assert not (tmp_path / "demo.png").exists()


def test_python_localize_of_a_path_uses_the_files_camera_like_the_cli(sim, tmp_path):
    d, movie, _ = sim
    from_path = spotfit.localize(str(movie))                 # camera from the ImageJ metadata (sensitivity 0.5)
    explicit = spotfit.localize(tifffile.imread(movie), camera=CAM)
    np.testing.assert_array_equal(from_path.photons.to_numpy(), explicit.photons.to_numpy())
    out = tmp_path / "cli.csv"
    assert main(["localize", str(movie), "-o", str(out)]) == 0
    np.testing.assert_allclose(sio.load(out).photons.to_numpy(), from_path.photons.to_numpy(), rtol=1e-6)


def test_options_that_would_be_ignored_or_absurd_are_usage_errors(sim, tmp_path, capsys):
    d, movie, _ = sim
    out = tmp_path / "x.csv"
    for extra, needle in ((["--threshold", "-1"], "--threshold must be > 0"),
                          (["--threshold", "0"], "--threshold must be > 0"),
                          (["--drop-bad"], "--drop-bad"),
                          (["--roi-origin", "0,0"], "--calibration")):
        assert main(["localize", str(movie), "-o", str(out), *extra]) == 2, extra
        assert needle in capsys.readouterr().err
    assert not out.exists()
    with pytest.raises(ValueError, match="threshold"):
        spotfit.localize(np.zeros((2, 16, 16), np.uint16), threshold=-1)
    with pytest.raises(ValueError, match="classifier"):
        spotfit.localize(np.zeros((2, 16, 16), np.uint16), drop_bad=True)


def test_info_piped_into_a_closed_pipe_is_not_an_error(sim):
    d, movie, _ = sim
    p = subprocess.run(f"{sys.executable} -m spotfit.cli info {movie} | head -c 1", shell=True, env=ENV,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "Broken pipe" not in p.stderr, p.stderr


def test_calibration_that_is_not_npy_gets_a_plain_message(tmp_path):
    bad = tmp_path / "calib.npy"
    bad.write_text("not numpy")
    with pytest.raises(ValueError, match="not a NumPy") as err:
        spotfit.Camera.from_calibration(bad)
    assert "pickle" not in str(err.value)


def _subparsers(parser):
    """(prog, parser) of ``parser`` and of every command below it."""
    import argparse
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):   # aliases map to the same parser
                yield from _subparsers(sub)


def test_every_option_says_what_it_is_and_its_default():
    import argparse
    from spotfit.cli import build_parser
    checked = 0
    for prog, parser in _subparsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)) or \
                    action.help == argparse.SUPPRESS:
                continue
            where = f"{prog} {'/'.join(action.option_strings) or action.dest}"
            assert action.help and action.help.strip(), f"{where} has no help"
            flag = action.nargs == 0                       # store_true, --x/--no-x, ...
            if action.option_strings and not flag and not action.required:
                assert "default" in action.help, f"{where}: the help does not say the default"
                checked += 1
    assert checked > 40


def test_simulate_defaults_are_spotfit_simulates():
    import inspect
    from spotfit.cli import build_parser
    sig = {k: p.default for k, p in inspect.signature(spotfit.simulate).parameters.items()}
    args = build_parser().parse_args(["simulate", "-o", "x.tif"])
    for name in ("frames", "density", "background", "psf_sigma", "border", "min_distance", "seed"):
        assert getattr(args, name) == sig[name], name
    assert (args.rows, args.cols) == tuple(sig["shape"]) and tuple(args.photons) == tuple(sig["photons"])


def test_localize_options_come_from_localize_options():
    from spotfit.cli import build_parser
    from spotfit.cli.common import options_from_args
    from spotfit.options import LocalizeOptions, fields
    args = build_parser().parse_args(["localize", "m.tif", "-o", "x.csv"])
    for name, default, _, _ in fields():
        assert getattr(args, name) == default, name
    assert options_from_args(args) == LocalizeOptions()
    args = build_parser().parse_args(["localize", "m.tif", "-o", "x.csv", "--box", "9", "--no-mask-neighbours",
                                      "--estimator", "lsq", "--threads", "2"])
    assert options_from_args(args) == LocalizeOptions(box=9, mask_neighbours=False, estimator="lsq", threads=2)
    assert build_parser().parse_args(["localize", "m.tif", "-o", "x", "--estimator", "ridge"]).estimator == "ridge"


def test_usage_errors_name_the_flag(sim, tmp_path, capsys):
    d, movie, _ = sim
    out = tmp_path / "x.csv"
    for extra, needle in ((["--estimator", "missing.npz"], "no regressor file"),
                          (["--box", "4"], "--box must be"),
                          (["--qe", "2"], "--qe"),
                          (["--calibration", str(tmp_path / "none.npy")], "--calibration"),
                          (["--workers", "2", "--scheduler", "tcp://x:1"], "not both")):
        assert main(["localize", str(movie), "-o", str(out), "-q", *extra]) == 2, extra
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, (extra, err)
    assert not out.exists()


def test_camera_pixel_size_is_pixel_size_everywhere(sim, tmp_path, capsys):
    d, movie, _ = sim
    locs_path = tmp_path / "l.parquet"
    assert main(["localize", str(movie), "-o", str(locs_path), "-q"]) == 0
    ts = tmp_path / "ts.csv"
    assert main(["convert", str(locs_path), "-o", str(ts), "--format", "thunderstorm"]) == 0
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    assert main(["render", str(ts), "-o", str(a), "--pixel-size", "100", "--zoom", "2"]) == 0
    assert main(["render", str(ts), "-o", str(b), "--camera-pixel-size", "100", "--zoom", "2"]) == 0  # old name
    assert "deprecated" in capsys.readouterr().err
    np.testing.assert_array_equal(tifffile.imread(a), tifffile.imread(b))
    c = tmp_path / "c.tif"     # the rendered pixel size: 100 nm camera pixels / 50 nm = zoom 2
    assert main(["render", str(ts), "-o", str(c), "--pixel-size", "100", "--render-pixel-size", "50"]) == 0
    np.testing.assert_array_equal(tifffile.imread(c), tifffile.imread(a))
    back = tmp_path / "back.csv"
    assert main(["convert", str(ts), "-o", str(back), "--pixel-size", "100"]) == 0
    np.testing.assert_allclose(sio.load(back)["x"], sio.load(locs_path)["x"], atol=1e-9)


def test_demo_is_the_whole_trip_and_the_grid_is_resolved_only_after_correction(tmp_path, capsys):
    """Issue 17: the demo simulates a drifting, blinking grid and runs localize -> undrift -> link -> render ->
    report; its exit code is 0 only when the drift error is < 5 nm and the corrected grid's contrast is > 2x
    the uncorrected one (measured: 0.9 nm; contrast 0.4 before, 28.5 after)."""
    folder = tmp_path / "demo"
    assert main(["demo", "--out", str(folder), "-q"]) == 0
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) <= 6 and str(folder) in out
    for name in ("demo.png", "demo_before.png", "demo_drift.png"):
        assert (folder / name).read_bytes()[:4] == b"\x89PNG", name
    assert len(sio.load(folder / "demo_locs.csv")) > 1000
    events, locs = sio.load(folder / "demo_events.csv"), sio.load(folder / "demo_undrifted.csv")
    assert 0 < len(events) < len(locs) and events["n"].sum() == len(locs)
    assert "<img" in (folder / "demo_report.html").read_text()
    contrast = [float(v) for v in out.split("grid contrast (sites/gaps) ")[1].split(" after")[0].split(" before, ")]
    assert contrast[1] > 2 * max(contrast[0], 1.0)


def test_summary_reports_the_median_precision():
    # Issue 16.6: one converged fit with uncertainty 149.7 px pushed the "mean precision" to 42.5 nm.
    import pandas as pd
    from spotfit.cli.localize import _summary
    n = 101
    locs = pd.DataFrame({"uncertainty_x": np.full(n, 0.25), "uncertainty_y": np.full(n, 0.25),
                         "status": pd.Categorical(["converged"] * n)})
    locs.loc[0, ["uncertainty_x", "uncertainty_y"]] = 149.7
    locs.attrs = {"spotfit": {"pixel_size_nm": 100.0}}
    line = _summary(locs, 10, 1.0, "out.csv")
    assert "median precision 0.2500 px = 25.0 nm" in line, line
