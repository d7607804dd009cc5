"""Hardening (issue 8): fitter robustness, thread safety, Ctrl-C, atomic output, bounded memory.

The property-based half is tests/test_properties.py; .ci/sanitize.sh runs both under ASan/UBSan.
"""
from __future__ import annotations

import _thread
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spotfit
from spotfit.simulate import expected_image

SANITIZED = os.environ.get("SPOTFIT_SANITIZE") == "1"  # set by .ci/sanitize.sh (ASan: ~3x slower, more RSS)
FIT_COLUMNS = ["x", "y", "photons", "background", "sigma_x", "sigma_y", "uncertainty_x", "uncertainty_y",
               "uncertainty_photons", "uncertainty_background", "loglik", "chi2"]


def _spot(x, y, photons=2000.0, background=10.0, sigma=1.3, shape=(7, 7)):
    return expected_image(shape, [x], [y], [photons], background, sigma)


class LazyMovie:
    """A long movie that is never in memory as a whole: frame i is pool[i % len(pool)].

    Quacks like the arrays :func:`spotfit.localize` slices chunk by chunk (``ndim``, ``shape``,
    slicing with a step-1 slice along frames).
    """

    def __init__(self, pool: np.ndarray, n_frames: int):
        self.pool, self.ndim = pool, 3
        self.shape = (n_frames,) + pool.shape[1:]
        self.dtype = pool.dtype

    def __getitem__(self, s):
        start, stop, _ = s.indices(self.shape[0])
        return self.pool[np.arange(start, stop) % len(self.pool)]


@pytest.fixture(scope="module")
def movie():
    cam = spotfit.Camera(baseline=100, sensitivity=0.5)
    mov, truth = spotfit.simulate(frames=24, shape=(64, 64), density=6, camera=cam, seed=8)
    return mov, cam


# --------------------------------------------------------------------------------------------------
# Fitter robustness: each awkward box gets a status that says what happened, and no NaN hides
# behind "converged".
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("estimator", ["mle", "lsq"])
@pytest.mark.parametrize("model", ["gauss", "fixed_sigma", "elliptical"])
def test_awkward_boxes_have_honest_status(estimator, model):
    K = 7
    border = _spot(3.2, 2.9)
    border[:, :3] = np.nan  # a spot whose box is clipped by the image edge
    one_valid = np.full((K, K), np.nan)
    one_valid[3, 3] = 50.0
    boxes = {
        "flat": np.full((K, K), 20.0),
        "zeros": np.zeros((K, K)),
        "two_spots": _spot(1.5, 3.0) + _spot(4.5, 3.0, background=0.0),
        "clipped_by_border": border,
        "spot_at_box_edge": _spot(0.2, 3.0),
        "saturated": np.minimum(_spot(3.0, 3.0, photons=20000.0), 600.0),
        "one_valid_pixel": one_valid,
        "all_nan": np.full((K, K), np.nan),
        "clean": _spot(3.2, 2.9),
    }
    res = spotfit.fit_spots(np.stack(list(boxes.values())), estimator=estimator, model=model, threads=1)
    res.index = list(boxes)
    conv = res[res.status == "converged"]
    assert np.isfinite(conv[FIT_COLUMNS].to_numpy(float)).all(), conv
    # Too few valid pixels: not fitted, with NaN bounds (never a made-up number).
    for name in ("one_valid_pixel", "all_nan"):
        assert res.status[name] == "not_fitted"
        assert np.isnan(res.uncertainty_x[name])
    # A clean spot, and one whose box lost 3 columns to the border, are found where they are
    # (noise-free data: the fit is exact to float32 round-off; 0.01 px leaves room for it).
    for name, (x, y) in {"clean": (3.2, 2.9), "clipped_by_border": (3.2, 2.9), "spot_at_box_edge": (0.2, 3.0)}.items():
        assert res.status[name] == "converged", (name, res.status[name])
        assert abs(res.x[name] - x) < 0.01 and abs(res.y[name] - y) < 0.01, (name, res.x[name], res.y[name])
    # No spot (flat or empty box): whatever the status, it is not a confident localization: either not
    # converged, or a CRLB of > 1 px on the position / a photon count at the floor.
    for name in ("flat", "zeros"):
        r = res.loc[name]
        if r.status == "converged":
            assert r.uncertainty_x > 1.0 or r.photons <= 1.0 + 1e-3, r
    # Two spots 3 px apart fitted as one: the fit says so through a wide sigma or a bad chi^2.
    r = res.loc["two_spots"]
    if r.status == "converged":
        assert max(r.sigma_x, r.sigma_y) > 1.5 * 1.3 or r.chi2 > 50, r


def test_inf_and_overflow_pixels_are_refused(movie):
    mov, cam = movie
    bad = mov[:2].astype(np.float64)
    bad[0, 5, 5] = 1e39  # finite in float64, inf in the core's float32: would blank the frame silently
    with pytest.raises(ValueError, match="float32"):
        spotfit.localize(bad, camera=cam)
    bad[0, 5, 5] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        spotfit.localize(bad, camera=cam)


def test_absurd_thread_count_is_refused_not_a_segfault(movie):
    # threads=100000 made libgomp fail to create threads and the process died of SIGSEGV.
    mov, cam = movie
    with pytest.raises(ValueError, match="threads"):
        spotfit.localize(mov[:2], camera=cam, threads=100_000)
    with pytest.raises(ValueError, match="threads"):
        spotfit.fit_spots(np.zeros((1, 7, 7), np.float32), threads=100_000)


@pytest.mark.parametrize("param, value", [("border", 2**31), ("max_iterations", 2**40), ("chunk_frames", 0),
                                          ("border", float("nan")), ("threshold", None), ("max_iterations", "30")])
def test_out_of_range_integers_give_short_clear_errors(movie, param, value):
    # Before: pybind11's "incompatible function arguments" TypeError with the whole movie printed.
    mov, cam = movie
    with pytest.raises((ValueError, TypeError), match=param) as info:
        spotfit.localize(mov[:2], camera=cam, **{param: value})
    assert len(str(info.value)) < 200


# --------------------------------------------------------------------------------------------------
# Thread safety
# --------------------------------------------------------------------------------------------------
def test_concurrent_localize_equals_serial(movie):
    mov, cam = movie
    jobs = [dict(stack=mov[i * 6:(i + 1) * 6], estimator=est, model=mod, threads=t)
            for i, (est, mod, t) in enumerate([("mle", "gauss", 1), ("lsq", "gauss", 2),
                                               ("mle", "elliptical", 2), ("lsq", "fixed_sigma", 1)])]
    jobs = jobs + jobs  # the same inputs from two threads at once as well
    serial = [spotfit.localize(j["stack"], camera=cam, **{k: v for k, v in j.items() if k != "stack"})
              for j in jobs]
    assert all(len(s) > 0 for s in serial)
    results: list = [None] * len(jobs)
    errors: list = []
    barrier = threading.Barrier(len(jobs))

    def work(i):
        try:
            barrier.wait()
            for _ in range(3):
                j = jobs[i]
                results[i] = spotfit.localize(j["stack"], camera=cam, chunk_frames=2,
                                              **{k: v for k, v in j.items() if k != "stack"})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    for s, r in zip(serial, results):
        pd.testing.assert_frame_equal(s, r, check_exact=True)


def test_concurrent_fit_spots_and_filters_equal_serial():
    rng = np.random.default_rng(4)
    boxes = (rng.poisson(15, (200, 7, 7)) + 0.0).astype(np.float32)
    boxes[:, 2:5, 2:5] += 400
    image = rng.poisson(100, (128, 128)).astype(np.float32)
    ref_fit = spotfit.fit_spots(boxes, threads=1)
    ref_w = spotfit.wavelet_filter(image)
    out, errors = [], []

    def work():
        try:
            for _ in range(5):
                out.append((spotfit.fit_spots(boxes, threads=2), spotfit.wavelet_filter(image)))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    ts = [threading.Thread(target=work) for _ in range(4)]
    [t.start() for t in ts]
    [t.join(120) for t in ts]
    assert not errors and len(out) == 20
    for fit, (w1, w2) in out:
        pd.testing.assert_frame_equal(fit, ref_fit, check_exact=True)
        np.testing.assert_array_equal(w1, ref_w[0])
        np.testing.assert_array_equal(w2, ref_w[1])


# --------------------------------------------------------------------------------------------------
# Ctrl-C and output files
# --------------------------------------------------------------------------------------------------
def test_keyboard_interrupt_stops_a_long_run_promptly(movie, ctrl_c_handled):
    mov, cam = movie
    spotfit.localize(mov[:8], camera=cam, chunk_frames=4, threads=1)   # warm-up
    t0 = time.perf_counter()
    spotfit.localize(LazyMovie(mov, 400), camera=cam, chunk_frames=4, threads=1)   # the long run's settings
    per_frame = (time.perf_counter() - t0) / 400
    n_frames = max(2000, int(20.0 / per_frame))  # a run of >= ~20 s
    long_movie = LazyMovie(mov, n_frames)
    delay = 0.5
    timer = threading.Timer(delay, _thread.interrupt_main)
    t0 = time.perf_counter()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            spotfit.localize(long_movie, camera=cam, chunk_frames=4, threads=1)
    finally:
        timer.cancel()
    elapsed = time.perf_counter() - t0
    # Python sees the signal between chunks: the run stops within one chunk (4 frames, a few ms) of
    # the interrupt. 2 s leaves room for a loaded CI machine and ASan; the whole run would take >= 20 s.
    assert elapsed < delay + 2.0, f"took {elapsed:.2f} s to stop (full run ~{per_frame * n_frames:.0f} s)"


@pytest.mark.parametrize("fmt, suffix", [("csv", ".csv"), ("thunderstorm", ".csv"), ("parquet", ".parquet")])
def test_interrupted_save_leaves_old_file_and_no_partial_file(tmp_path, movie, monkeypatch, fmt, suffix):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    mov, cam = movie
    locs = spotfit.localize(mov[:4], camera=cam)
    target = tmp_path / f"locs{suffix}"
    spotfit.io.save(locs.iloc[:3], target, format=fmt, pixel_size_nm=100)
    before = target.read_bytes()

    # Interrupt in the middle of writing the table: the writer has created and half-filled the file.
    real_to_csv = pd.DataFrame.to_csv

    def interrupted_to_csv(self, path_or_buf=None, *args, **kwargs):
        if hasattr(path_or_buf, "write"):
            path_or_buf.write("frame,x,y\n0,1.0,")
        elif path_or_buf is not None:
            Path(path_or_buf).write_text("frame,x,y\n0,1.0,")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_csv", interrupted_to_csv)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        def interrupted_write_table(table, where, *a, **k):
            Path(where).write_bytes(b"PAR1 partial")
            raise KeyboardInterrupt
        monkeypatch.setattr(pq, "write_table", interrupted_write_table)
    with pytest.raises(KeyboardInterrupt):
        spotfit.io.save(locs, target, format=fmt, pixel_size_nm=100)
    monkeypatch.setattr(pd.DataFrame, "to_csv", real_to_csv)
    assert target.read_bytes() == before, "the previous file was damaged"
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name], "a partial/temporary file was left"


def test_cli_ctrl_c_writes_no_output(tmp_path, movie, ctrl_c_handled):
    tifffile = pytest.importorskip("tifffile")
    mov, cam = movie
    path = tmp_path / "long.tif"
    with tifffile.TiffWriter(path) as tw:  # 120 frames at ~0.3 s each with the settings below
        for _ in range(5):
            tw.write(mov, contiguous=True)
    out = tmp_path / "locs.csv"
    code = textwrap.dedent(f"""
        import sys
        from spotfit.cli import main
        print("ready", flush=True)
        sys.exit(main(["localize", {str(path)!r}, "-o", {str(out)!r}, "-q", "--chunk-frames", "1",
                       "--threads", "1", "--box", "31", "--threshold-mode", "absolute", "--threshold=1e-9"]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    # Wait until it is inside main() and working (the first chunks), then Ctrl-C.
    assert proc.stdout.readline().strip() == "ready", proc.communicate()
    time.sleep(1.0 if not SANITIZED else 3.0)
    if proc.poll() is not None:
        pytest.fail(f"the run ended before it could be interrupted: {proc.communicate()}")
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert time.perf_counter() - t0 < 5.0
    assert proc.returncode == 130, (proc.returncode, stderr)
    assert "interrupted" in stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.tif"], "output or temporary file left behind"


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------
_RSS_SCRIPT = r"""
import resource, sys, numpy as np, spotfit
sys.path.insert(0, {tests!r})
from test_hardening import LazyMovie
cam = spotfit.Camera(baseline=100, sensitivity=0.5)
pool, _ = spotfit.simulate(frames=16, shape=(128, 128), density=10, camera=cam, seed=3)
def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
spotfit.localize(LazyMovie(pool, 64), camera=cam, chunk_frames=32, threads=2)   # warm-up: same chunk size
before = peak_mb()
locs = spotfit.localize(LazyMovie(pool, {frames}), camera=cam, chunk_frames=32, threads=2)
print(before, peak_mb(), len(locs), locs.memory_usage(deep=True).sum() / 2**20)
"""


def test_peak_rss_bounded_for_a_long_movie():
    """Localizing a movie 80x longer than a chunk must not grow peak RSS by more than the output table
    (+ slack for the allocator): the movie (2560 frames x 128 x 128 uint16 = 80 MiB) is never resident."""
    frames = 2560
    code = _RSS_SCRIPT.format(tests=os.path.dirname(__file__), frames=frames)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OMP_NUM_THREADS": "2"})
    assert out.returncode == 0, out.stderr
    before, after, n_locs, table_mb = map(float, out.stdout.split()[-4:])
    movie_mb = frames * 128 * 128 * 2 / 2**20
    assert n_locs > frames  # it really localized every frame
    growth = after - before
    # Records accumulate per chunk (~ 100 B per localization, twice while the table is built) plus the
    # final DataFrame: a few times table_mb. 20 MiB of allocator slack (ASan's quarantine: 300 MiB).
    slack = 300.0 if SANITIZED else 20.0
    assert growth < 4 * table_mb + slack, (growth, table_mb, movie_mb)
    assert growth < movie_mb / 2 or SANITIZED


# --------------------------------------------------------------------------------------------------
# Regression tests of bugs found by fuzzing and the sanitizers (fixed; see docs/hardening.md)
# --------------------------------------------------------------------------------------------------
def test_fit_runs_clean_under_ubsan():
    code = ("import numpy as np, spotfit; "
            "print(spotfit.fit_spots(np.full((1, 7, 7), 20, np.float32)).status[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]


def test_zero_size_tiff_frame_is_a_movie_error():
    path = Path(__file__).resolve().parent.parent / "fuzz" / "corpus" / "tiff" / "regress_zero_size_frame.tif"
    if not path.exists():
        pytest.skip("fuzz corpus not present")
    with pytest.raises(spotfit.io.MovieError):
        spotfit.io.movie_info(path)


def test_huge_single_pixel_box_is_not_converged_with_inf():
    box = np.zeros((1, 5, 5), np.float32)
    box[0, 3, 1] = 3.7185e19
    res = spotfit.fit_spots(box, psf_sigma=3.0, model="gauss", estimator="mle", threads=1)
    row = res.iloc[0]
    assert row.status != "converged" or np.isfinite(res[FIT_COLUMNS].to_numpy(float)).all(), row


# A damaged TIFF must give MovieError quickly from every entry point; run in a child process so that a
# regression (a hang inside tifffile) fails the test on its timeout instead of hanging the suite.
_TIFF_BOUNDED_SCRIPT = r"""
import sys, time, spotfit, spotfit.io as io
calls = {"movie_info": io.movie_info, "read_movie": io.read_movie,
         "iter_chunks": lambda p: list(io.iter_chunks(p, chunk_frames=2)),
         "localize": lambda p: spotfit.localize(p, box=3, threads=1)}
for path in sys.argv[1:]:
    for name, call in calls.items():
        t0 = time.perf_counter()
        try:
            call(path)
            outcome = "ok"
        except io.MovieError as exc:
            outcome = "MovieError " + str(exc).replace("\n", " ")
        print(f"{time.perf_counter() - t0:.3f}\t{name}\t{path}\t{outcome}", flush=True)
"""


def _open_damaged_tiffs(paths, limit_s=20.0):
    """{(path, call): message} for the four movie entry points; each call must end within limit_s."""
    out = subprocess.run([sys.executable, "-c", _TIFF_BOUNDED_SCRIPT, *map(str, paths)],
                         capture_output=True, text=True, timeout=4 * len(paths) * limit_s + 60)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = [line.split("\t") for line in out.stdout.splitlines()]
    assert len(rows) == 4 * len(paths), out.stdout
    slow = [r[:3] for r in rows if float(r[0]) > limit_s]
    assert not slow, slow
    return {(r[2], r[1]): r[3] for r in rows}


def test_tiff_with_a_looping_ifd_chain_fails_fast():
    """Finding 9: a 291-byte fuzz input whose last (empty) IFD names itself as the next IFD. tifffile
    only detects such loops when it indexes all pages at once, so TiffFile.series parsed the same IFD
    up to 2**32 times (minutes, then hours). Now every entry point raises MovieError in < 20 s (~0.05 s)."""
    path = Path(__file__).resolve().parent / "data" / "ifd_loop_291b.tif"  # = fuzz/findings/hang-...
    results = _open_damaged_tiffs([path])
    for (_, call), outcome in results.items():
        assert outcome.startswith("MovieError") and "ifd_loop_291b.tif" in outcome, (call, outcome)
        assert "loop" in outcome, (call, outcome)


def _loop_and_overlap_tiffs(tmp_path, bigtiff):
    """Valid 3-page files made damaged: the last IFD points back to the first, or a SubIFD names a page."""
    import struct

    tifffile = pytest.importorskip("tifffile")
    ofmt = "<Q" if bigtiff else "<I"
    valid = tmp_path / f"valid{int(bigtiff)}.tif"
    with tifffile.TiffWriter(valid, bigtiff=bigtiff) as tw:
        for i in range(3):
            tw.write(np.full((8, 8), i, np.uint16), photometric="minisblack", metadata=None,
                     subifds=1 if i == 0 else None)
            if i == 0:
                tw.write(np.zeros((4, 4), np.uint16), photometric="minisblack", subfiletype=1)
    with tifffile.TiffFile(valid) as tif:
        pages = [(p.offset, len(p.tags)) for p in tif.pages]
        subifd_value_at = tif.pages[0].tags[330].valueoffset
    tagno, tagsize = (8, 20) if bigtiff else (2, 12)
    data = valid.read_bytes()
    loop = bytearray(data)  # next-IFD offset of the last page -> first page
    last, ntags = pages[-1]
    struct.pack_into(ofmt, loop, last + tagno + ntags * tagsize, pages[0][0])
    shared = bytearray(data)  # page 0's SubIFD is page 1's IFD
    struct.pack_into(ofmt, shared, subifd_value_at, pages[1][0])
    overlap = bytearray(data)  # page 1's next IFD starts inside page 1's own tag entries
    first1, ntags1 = pages[1]
    struct.pack_into(ofmt, overlap, first1 + tagno + ntags1 * tagsize, first1 + tagsize)
    out = {"valid": valid}
    for name, content in (("loop", loop), ("shared", shared), ("overlap", overlap)):
        out[name] = tmp_path / f"{name}{int(bigtiff)}.tif"
        out[name].write_bytes(bytes(content))
    return out


@pytest.mark.parametrize("bigtiff", [False, True])
def test_tiff_ifd_loops_and_overlaps_are_refused(tmp_path, bigtiff):
    files = _loop_and_overlap_tiffs(tmp_path, bigtiff)
    assert spotfit.io.movies._scan_ifds(files["valid"]) == 3  # the undamaged file passes the IFD walk
    results = _open_damaged_tiffs([files["loop"], files["shared"], files["overlap"]])
    for (path, call), outcome in results.items():
        assert outcome.startswith("MovieError"), (path, call, outcome)
        expect = "overlap" if "overlap" in Path(path).name else "a second time"
        assert expect in outcome and Path(path).name in outcome, (path, call, outcome)


def test_tiff_with_a_float_data_offset_is_a_movie_error():
    """A fuzzed StripOffsets tag of type DOUBLE made tifffile report a float data offset, which reached
    file.seek() as a TypeError (CI fuzz finding; = fuzz/findings/tiff-float-dataoffset.tif)."""
    path = Path(__file__).resolve().parent / "data" / "tiff_float_dataoffset.tif"
    with pytest.raises(spotfit.io.MovieError, match="data offset"):
        spotfit.localize(path, spotfit.LocalizeOptions(box=3, chunk_frames=2, threads=1),
                         camera=spotfit.Camera())


def test_multi_emitter_fit_near_float_max_is_not_converged_with_inf():
    """Pixels near FLT_MAX fitted to photons beyond float, reported as converged with photons = inf (CI fuzz
    finding of fuzz/fuzz_multi.py; = fuzz/findings/multi-converged-inf-photons-51b.bin)."""
    from spotfit import _spotcore
    region = np.full((5, 5), 8.457e37, np.float32)
    region[2, 0], region[4, 0], region[4, 1] = 2.6e-35, 5.8e-11, 4.45e37
    multi = _spotcore.MultiOptions()
    multi.max_emitters = 1
    fit = _spotcore.FitOptions()
    fit.box, fit.psf_sigma, fit.max_iterations = 5, 1.3, 10
    res = _spotcore.fit_region(region, None, fit, multi, np.array([[2, 2, 500]], np.float32))
    converged = res["status"] == int(_spotcore.FitStatus.converged)
    assert np.isfinite(res["emitters"][converged]).all(), res


def test_tiff_with_an_ifd_inside_its_header_fails_fast():
    """A 517-byte fuzz input (CI run of 2026-12-05) whose first IFD's next-IFD offset is 2, inside the header:
    tifffile parsed the header bytes as a 42-tag IFD, whose chain then looped back to it, and TiffFile.series
    spun on it (the libFuzzer timeout); the walk used to stop there and leave it to tifffile. Now every entry
    point raises MovieError at once."""
    path = Path(__file__).resolve().parent / "data" / "ifd_in_header_517b.tif"  # = fuzz/findings/hang-...
    results = _open_damaged_tiffs([path])
    for (_, call), outcome in results.items():
        assert outcome.startswith("MovieError") and "inside the file header" in outcome, (call, outcome)
