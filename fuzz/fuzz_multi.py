"""Fuzz target: arbitrary inputs -> the multi-emitter fitter (spotcore fit_region, localize_multi, fit_starts).

The bytes choose the region size, max_emitters (valid or not, -2..12), p_value, psf_sigma (any float32 bit
pattern or a plausible value), the starts (any float32) and the pixels (raw float32 or scaled bytes), and
a small movie for localize(max_emitters=...), and fit_starts on such a movie with fuzzed starts (frames,
x, y: any float32 or plausible) and StartsOptions (valid or not). Contract: invalid settings raise
ValueError naming them; valid ones give 1..max_emitters emitters, converged ones finite and inside the
region; fit_starts rows at most one per start, finite and inside the frame; never a crash.
Seeds: fuzz/corpus/multi.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import instrumented, main  # noqa: E402

with instrumented("spotfit"):
    import spotfit  # noqa: E402
    from spotfit import _spotcore  # noqa: E402

import numpy as np  # noqa: E402

SIZES = [3, 5, 7, 9, 11, 15]


def _floats(data: bytes, count: int, raw: bool) -> np.ndarray:
    if raw:
        buf = (data * (4 * count // max(len(data), 1) + 1))[:4 * count] if data else b"\0" * (4 * count)
        return np.frombuffer(buf, np.float32).copy()
    buf = (data * (count // max(len(data), 1) + 1))[:count] if data else b"\0" * count
    return np.frombuffer(buf, np.uint8).astype(np.float32) * 16.0


def test_one_input(data: bytes):
    if len(data) < 8:
        return
    b0, b1, b2, b3 = data[0], data[1], data[2], data[3]
    S = SIZES[b0 % len(SIZES)]
    max_emitters = b1 % 15 - 2
    raw = bool(b3 & 2)
    sigma = float(np.frombuffer(data[4:8], np.float32)[0]) if b3 & 1 else [1.3, 0.7, 2.5][b3 % 3]
    body = data[8:]
    region = _floats(body, S * S, raw).reshape(S, S)
    k = 1 + b2 % 4
    starts = _floats(body[::-1], 3 * k, raw).reshape(k, 3) if b3 & 4 else \
        np.column_stack([np.full(k, S // 2), np.full(k, S // 2), np.full(k, 500.0)]).astype(np.float32)
    multi = _spotcore.MultiOptions()
    multi.max_emitters = max_emitters
    multi.p_value = [1e-6, 0.5, 0.0, 1.0][(b2 // 4) % 4]
    fit = _spotcore.FitOptions()
    fit.box = S
    fit.psf_sigma = sigma
    fit.max_iterations = 10
    valid = 1 <= max_emitters <= 10 and 0 < multi.p_value < 1 and k <= max_emitters and np.isfinite(sigma) \
        and np.float32(sigma) > 0
    if b3 & 16:
        _fit_starts(body, b0, b1, b2, raw)
    try:
        res = _spotcore.fit_region(region, None, fit, multi, starts)
    except ValueError as exc:
        assert not valid or "fit_emitters" in str(exc), exc
        return
    n = len(res["status"])
    assert 1 <= n <= max(max_emitters, k)
    ok = res["status"] == int(_spotcore.FitStatus.converged)
    em = res["emitters"][ok]
    assert np.isfinite(em).all(), "NaN/inf in a converged emitter"
    assert ((em[:, :2] >= -0.5) & (em[:, :2] <= S - 0.5)).all()
    if b3 & 8 and 1 <= max_emitters <= 10:
        movie = (_floats(body, 2 * 16 * 16, False).reshape(2, 16, 16)).astype(np.uint16)
        try:
            locs = spotfit.localize(movie, max_emitters=max_emitters, psf_sigma=[1.3, 0.7, 2.5][b3 % 3], threads=1,
                                    max_iterations=10)
        except ValueError as exc:
            assert "box" in str(exc) or "stack" in str(exc), exc
            return
        if max_emitters > 1:
            assert (locs.n_in_group <= max_emitters).all()
        else:
            assert "n_in_group" not in locs   # max_emitters=1: the single-emitter table


def _fit_starts(body: bytes, b0: int, b1: int, b2: int, raw: bool):
    rows, cols = [(16, 16), (9, 20), (3, 7), (2, 8), (31, 5)][b0 % 5]
    movie = _floats(body, 2 * rows * cols, False).reshape(2, rows, cols).astype(np.uint16)
    n = b2 % 12
    xy = _floats(body[::-1], 2 * n, raw).reshape(2, n) if n else np.zeros((2, 0), np.float32)
    if not raw:  # plausible: spread over the frame
        xy = np.vstack([xy[0] / 4080.0 * cols - 0.5, xy[1] / 4080.0 * rows - 0.5]).astype(np.float32)
    frame = np.sort(np.resize(np.frombuffer(body or b"\0", np.uint8), n) % (3 if b1 & 2 else 2)).astype(np.int64)
    if b1 & 1 and n > 1:
        frame = frame[::-1].copy()  # possibly decreasing
    so = _spotcore.StartsOptions()
    so.sweeps = [2, 1, 10, 0, 11][b1 % 5]
    so.link = [2.0, 0.0, 20.0, -1.0, float("nan"), 7.5][(b1 // 5) % 6]
    so.max_cluster = [6, 1, 10, 0, 11][(b2 // 12) % 5]
    so.margin = [3, 0, 15, -1, 16][(b1 // 30) % 5]
    o = _spotcore.LocalizeOptions()
    o.fit.psf_sigma = [1.3, 0.7, 2.5, 12.0][(b2 // 60) % 4]
    o.fit.max_iterations = 10
    o.fit.threads = 1 + b0 % 2
    first = [0, 1, -1][(b0 // 5) % 3]
    valid_opts = 1 <= so.sweeps <= 10 and 0 <= so.link <= 20 and 1 <= so.max_cluster <= 10 and \
        0 <= so.margin <= 15 and o.fit.psf_sigma <= 10 and first >= 0
    in_frame = (np.isfinite(xy).all() and (xy[0] >= -0.5).all() and (xy[0] < np.float32(cols - 0.5)).all()
                and (xy[1] >= -0.5).all() and (xy[1] < np.float32(rows - 0.5)).all())
    valid = valid_opts and in_frame and (np.diff(frame) >= 0).all() and ((frame >= first) & (frame < first + 2)).all() \
        and (n == 0 or min(rows, cols) >= 3)
    try:
        rec, group, n_in_group = _spotcore.fit_starts(movie, spotfit.Camera(), o, frame, xy[0], xy[1], so, first)
    except ValueError as exc:
        assert not valid, exc
        return
    assert valid, "fit_starts accepted invalid input"
    assert len(rec) <= n and len(group) == len(rec) == len(n_in_group)
    assert np.isfinite(rec["x"]).all() and np.isfinite(rec["y"]).all() and np.isfinite(rec["photons"]).all()
    assert ((rec["x"] >= -0.5) & (rec["x"] < cols - 0.5) & (rec["y"] >= -0.5) & (rec["y"] < rows - 0.5)).all()
    assert (np.diff(rec["frame"]) >= 0).all() and ((n_in_group >= 1) & (n_in_group <= so.max_cluster)).all()
    assert np.isin(rec["status"], [0, 1, 5]).all()


if __name__ == "__main__":
    main(test_one_input)
