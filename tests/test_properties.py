"""Property-based tests (hypothesis) of the bindings on adversarial arrays and parameters (issue 8).

Every call either returns a well-formed table or raises a clear ValueError/TypeError; it never
crashes, and (checked by .ci/sanitize.sh, which runs this file under ASan/UBSan) never reads out of
bounds. Array layout must not matter: a strided, reversed, Fortran-ordered, big-endian or read-only
view gives bit-for-bit the result of its C-contiguous native copy.

Example counts are kept small for a 2-core CI; set SPOTFIT_HYPOTHESIS_EXAMPLES to search harder.
"""
from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import spotfit

EXAMPLES = int(os.environ.get("SPOTFIT_HYPOTHESIS_EXAMPLES", "40"))
SETTINGS = dict(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

DTYPES = ["u1", "u2", "i2", "u4", "i4", "i8", "u8", "f2", "f4", "f8", ">u2", ">i2", ">u4", ">f4", ">f8"]
FIT_COLUMNS = ["x", "y", "photons", "background", "sigma_x", "sigma_y", "uncertainty_x", "uncertainty_y",
               "uncertainty_photons", "uncertainty_background", "loglik", "chi2"]
LOC_COLUMNS = ["frame", "x", "y", "photons", "background", "sigma_x", "sigma_y", "uncertainty_x",
               "uncertainty_y", "uncertainty_photons", "uncertainty_background", "uncertainty_sigma_x",
               "uncertainty_sigma_y", "loglik", "chi2", "iterations", "status", "peak_row", "peak_col"]

# Frame shapes: mostly small, sometimes a single row/column, rarely the 2048-wide extremes.
small = st.tuples(st.integers(1, 40), st.integers(1, 40))
thin = st.one_of(st.tuples(st.just(1), st.integers(1, 300)), st.tuples(st.integers(1, 300), st.just(1)))
huge = st.sampled_from([(1, 2048), (2048, 1), (2048, 2048), (3, 2048), (2048, 5)])
frame_shapes = st.one_of(small, small, small, small, thin, huge)


def _values(kind: str, shape, dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    info = np.iinfo(dtype) if dtype.kind in "ui" else None
    hi = min(65535, info.max) if info else (60000.0 if dtype.itemsize == 2 else 65535.0)  # f2 max: 65504
    if kind == "zeros":
        a = np.zeros(shape)
    elif kind == "saturated":
        a = np.full(shape, hi)
    elif kind == "constant":
        a = np.full(shape, hi // 3 if info else 123.25)
    elif kind == "negative":
        lo = max(-30000, info.min) if info else -1e4
        a = rng.uniform(lo, hi if hi < 30000 else 30000, shape)
    elif kind == "spots":
        a = rng.poisson(110, shape).astype(float)
        n = max(1, a.size // 150)
        a.flat[rng.integers(0, a.size, n)] += 3000
        a = np.minimum(a, hi)
    else:  # "noise"
        a = rng.uniform(0, hi, shape)
    if info is not None:
        a = np.clip(np.round(a), info.min, info.max)
    return a.astype(dtype)


def _layout(a: np.ndarray, layout: str) -> np.ndarray:
    """A view of `a`'s values with an unusual memory layout (same logical contents)."""
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "reversed":  # negative strides on every axis
        return np.ascontiguousarray(a[::-1, ::-1, ::-1])[::-1, ::-1, ::-1]
    if layout == "strided":  # every other element of a larger buffer
        big = np.zeros((a.shape[0], 2 * a.shape[1], 3 * a.shape[2]), a.dtype)
        big[:, ::2, ::3] = a
        return big[:, ::2, ::3]
    if layout == "transposed":
        return np.ascontiguousarray(a.transpose(0, 2, 1)).transpose(0, 2, 1)
    if layout == "readonly":
        b = a.copy()
        b.setflags(write=False)
        return b
    if layout == "broadcast" and a.shape[0] >= 1:  # zero frame stride, read-only
        return np.broadcast_to(a[:1], a.shape)
    return a


@st.composite
def stacks(draw, allow_huge=True):
    rows, cols = draw(frame_shapes if allow_huge else small)
    frames = 1 if rows * cols > 100_000 else draw(st.integers(1, 3))
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    kinds = ["zeros", "saturated", "constant", "spots", "noise"] + (["negative"] if dtype.kind != "u" else [])
    kind = draw(st.sampled_from(kinds))
    seed = draw(st.integers(0, 2**32 - 1))
    a = _values(kind, (frames, rows, cols), dtype, np.random.default_rng(seed))
    layout = draw(st.sampled_from(["c", "fortran", "reversed", "strided", "transposed", "readonly", "broadcast"]))
    if layout == "broadcast":
        a = np.broadcast_to(a[:1], a.shape).copy()
    return _layout(a, layout)


def _check_table(locs: pd.DataFrame, n_frames: int, rows: int, cols: int, box: int):
    assert list(locs.columns) == LOC_COLUMNS
    if len(locs) == 0:
        return
    assert locs.frame.between(0, n_frames - 1).all()
    assert locs.peak_row.between(0, rows - 1).all() and locs.peak_col.between(0, cols - 1).all()
    # The core's one list (spotfit.FIT_STATUS), which keeps the codes of spotfit 0.1 first.
    assert list(locs.status.cat.categories) == list(spotfit.FIT_STATUS)
    assert list(spotfit.FIT_STATUS)[:6] == ["converged", "max_iterations", "singular", "out_of_box", "not_fitted",
                                           "unreliable"]
    conv = locs[locs.status == "converged"]
    num = conv[[c for c in LOC_COLUMNS if c not in ("status",)]].to_numpy(float)
    assert np.isfinite(num).all(), "NaN/inf in a row whose status is 'converged'"
    # A converged centre lies in its fit box (the core reports out_of_box otherwise).
    half = box // 2
    assert ((conv.x - conv.peak_col).abs() <= half + 0.5 + 1e-4).all()
    assert ((conv.y - conv.peak_row).abs() <= half + 0.5 + 1e-4).all()


def _same(a: pd.DataFrame, b: pd.DataFrame):
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True), check_exact=True)


@settings(**SETTINGS)
@given(stack=stacks(), data=st.data())
def test_localize_any_layout_and_values(stack, data):
    """Random shapes/dtypes/layouts/values and parameters: a valid table or a clear error, and the
    same table as for the C-contiguous native-order copy."""
    frames, rows, cols = stack.shape
    big = rows * cols > 100_000
    box = data.draw(st.sampled_from([3, 5, 7, 9, 31] if not big else [3, 7]), "box")
    kwargs = dict(
        box=box,
        psf_sigma=data.draw(st.sampled_from([1e-6, 1e-3, 0.3, 1.3, 4.0, 30.0]), "psf_sigma"),
        estimator=data.draw(st.sampled_from(["mle", "lsq"]), "estimator"),
        model=data.draw(st.sampled_from(["gauss", "elliptical", "fixed_sigma"]), "model"),
        border=data.draw(st.sampled_from([0, 0, 1, 3, 100]), "border"),
        min_distance=data.draw(st.sampled_from([0.0, 0.0, 2.5]), "min_distance"),
        chunk_frames=data.draw(st.integers(1, 3), "chunk_frames"),
        max_iterations=data.draw(st.sampled_from([1, 5, 30]), "max_iterations"),
        threads=data.draw(st.sampled_from([None, 1, 2]), "threads"),
    )
    mode = data.draw(st.sampled_from(["std", "std_huge", "absolute", "absolute_low"]), "threshold")
    kwargs["threshold_mode"] = "std" if mode.startswith("std") else "absolute"
    kwargs["threshold"] = {"std": 1.5, "std_huge": 1e30, "absolute": 50.0,
                           "absolute_low": 1e-30}[mode]          # every maximum above 0 (<= 0 is refused)
    if big and kwargs["threshold_mode"] == "std":
        kwargs["threshold"] = max(kwargs["threshold"], 3.0)
    try:
        locs = spotfit.localize(stack, **kwargs)
    except ValueError as exc:
        # The only ValueError a valid array can raise: the box does not fit in the frame.
        assert "larger than the frame" in str(exc) and box > max(rows, cols)
        return
    _check_table(locs, frames, rows, cols, box)
    if mode == "std_huge":
        assert len(locs) == 0, "a threshold of 1e30 std(W1) detected something"
    native = np.ascontiguousarray(stack, dtype=stack.dtype.newbyteorder("="))
    _same(locs, spotfit.localize(native, **kwargs))


@settings(**SETTINGS)
@given(shape=small, dtype=st.sampled_from(["f2", "f4", "f8", ">f4", ">f8"]),
       bad=st.sampled_from([np.nan, np.inf, -np.inf]), seed=st.integers(0, 2**16))
def test_localize_nonfinite_pixels_raise(shape, dtype, bad, seed):
    shape = (shape[0] + 2, shape[1] + 2)  # at least the 3x3 box
    rng = np.random.default_rng(seed)
    a = rng.uniform(90, 200, (2,) + shape).astype(dtype)
    idx = tuple(int(rng.integers(0, s)) for s in a.shape)
    a[idx] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        spotfit.localize(a, box=3)


@settings(**SETTINGS)
@given(n=st.integers(0, 20), box=st.sampled_from([3, 5, 7, 11, 31]),
       kind=st.sampled_from(["zeros", "saturated", "spots", "noise", "negative", "nan", "inf", "huge", "tiny"]),
       variance=st.sampled_from([None, "ok", "nan", "negative", "huge"]),
       psf_sigma=st.sampled_from([1e-30, 1e-6, 0.2, 1.3, 10.0, 1e4]),
       estimator=st.sampled_from(["mle", "lsq"]), model=st.sampled_from(["gauss", "elliptical", "fixed_sigma"]),
       layout=st.sampled_from(["c", "fortran", "reversed", "f8"]), seed=st.integers(0, 2**16))
def test_fit_spots_any_input(n, box, kind, variance, psf_sigma, estimator, model, layout, seed):
    """fit_spots on adversarial boxes: one row per box; converged rows are finite and in the box;
    each fit is independent of its batch neighbours; layout does not matter."""
    rng = np.random.default_rng(seed)
    shape = (n, box, box)
    boxes = {"zeros": np.zeros(shape), "saturated": np.full(shape, 65535.0),
             "spots": rng.poisson(20, shape) + 0.0, "noise": rng.uniform(0, 1000, shape),
             "negative": rng.uniform(-500, 100, shape), "huge": np.full(shape, 3e38),
             "tiny": np.full(shape, 1e-42), "nan": rng.poisson(20, shape) + 0.0,
             "inf": rng.poisson(20, shape) + 0.0}[kind]
    if kind == "spots" and n:
        c = box // 2
        boxes[:, c - 1:c + 2, c - 1:c + 2] += 800
    if kind in ("nan", "inf") and n:
        mask = rng.random(shape) < 0.3
        boxes[mask] = np.nan if kind == "nan" else np.inf
    boxes = boxes.astype(np.float32)
    var = None
    if variance is not None:
        var = {"ok": np.full(shape, 4.0), "nan": np.full(shape, np.nan), "negative": np.full(shape, -3.0),
               "huge": np.full(shape, 1e30)}[variance].astype(np.float32)
    view = {"c": boxes, "fortran": np.asfortranarray(boxes), "f8": boxes.astype(np.float64),
            "reversed": np.ascontiguousarray(boxes[::-1, ::-1, ::-1])[::-1, ::-1, ::-1]}[layout]
    kw = dict(psf_sigma=psf_sigma, estimator=estimator, model=model, variance=var, threads=1)
    res = spotfit.fit_spots(view, **kw)
    assert len(res) == n
    conv = res[res.status == "converged"]
    assert np.isfinite(conv[FIT_COLUMNS].to_numpy(float)).all()
    half = (box - 1) / 2
    assert ((conv.x - half).abs() <= half + 0.5 + 1e-4).all() and ((conv.y - half).abs() <= half + 0.5 + 1e-4).all()
    fitted = res[res.status != "not_fitted"]
    assert np.isfinite(fitted[["x", "y", "photons", "background"]].to_numpy(float)).all() or \
        (fitted.status == "singular").any()
    if n:
        _same(res, spotfit.fit_spots(boxes, **kw))
        k = int(rng.integers(0, n))  # batch independence: box k alone gives its row of the batch
        alone = spotfit.fit_spots(boxes[k:k + 1], **{**kw, "variance": None if var is None else var[k:k + 1]})
        _same(res.iloc[[k]], alone)


@settings(**SETTINGS)
@given(stack=stacks(allow_huge=False), threshold=st.sampled_from([-1e30, 0.0, 5.0, 1e30]),
       border=st.integers(0, 50), min_distance=st.sampled_from([0.0, 1.5, 4.0]))
def test_filter_and_find_peaks_any_layout(stack, threshold, border, min_distance):
    img = stack[0]
    w1, w2 = spotfit.wavelet_filter(img)
    ref1, ref2 = spotfit.wavelet_filter(np.ascontiguousarray(img, dtype=img.dtype.newbyteorder("=")))
    np.testing.assert_array_equal(w1, ref1)
    np.testing.assert_array_equal(w2, ref2)
    assert w1.shape == img.shape and np.isfinite(w1).all() and np.isfinite(w2).all()
    peaks = spotfit.find_peaks(w2, threshold, min_distance=min_distance, border=border)
    rows, cols = img.shape
    assert peaks.row.between(border, rows - 1 - border).all() and peaks.col.between(border, cols - 1 - border).all()
    assert (peaks.value > threshold).all()
    _same(peaks, spotfit.find_peaks(np.asfortranarray(w2)[::1], threshold, min_distance=min_distance, border=border))


@settings(**SETTINGS)
@given(param=st.sampled_from(["psf_sigma", "box", "threshold", "min_distance", "border", "max_iterations",
                              "tolerance", "threads", "chunk_frames", "estimator", "model", "threshold_mode",
                              "max_emitters"]),
       value=st.sampled_from([0, -1, 0.0, -0.5, 2, 33, 1e308, float("nan"), float("inf"), -float("inf"),
                              "x", None, True, 2**31, 2**63, 10**6]))
def test_localize_bad_parameters_raise_clearly(param, value):
    """Bad parameter values: a ValueError/TypeError that names the parameter, or a valid result."""
    stack = np.full((2, 16, 16), 100, np.uint16)
    stack[:, 8, 8] = 3000
    try:
        locs = spotfit.localize(stack, **{param: value})
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        assert param in msg or param.replace("_", " ") in msg, msg
        assert len(msg) < 500, "error message should be short, not a dump of the arguments"
        return
    # max_emitters > 1 adds the region's columns (group, n_in_group) to the same table.
    _check_table(locs.drop(columns=["group", "n_in_group"], errors="ignore"), 2, 16, 16,
                 locs.attrs["spotfit"]["parameters"]["box"])
