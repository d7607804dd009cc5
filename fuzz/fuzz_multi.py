"""Fuzz target: arbitrary inputs -> the multi-emitter fitter (spotcore fit_region and localize_multi).

The bytes choose the region size, max_emitters (valid or not, -2..12), p_value, psf_sigma (any float32 bit
pattern or a plausible value), the starts (any float32) and the pixels (raw float32 or scaled bytes), and
a small movie for localize(max_emitters=...). Contract: invalid settings raise ValueError naming them; valid
ones give 1..max_emitters emitters, converged ones finite and inside the region; never a crash.
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


if __name__ == "__main__":
    main(test_one_input)
