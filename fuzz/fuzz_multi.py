"""Fuzz target: arbitrary inputs -> the multi-emitter fitter (spotcore fit_region, localize_multi, fit_starts,
fit_frame).

The bytes choose the region size, max_emitters (valid or not, -2..12), p_value, psf_sigma (any float32 bit
pattern or a plausible value), the starts (any float32) and the pixels (raw float32 or scaled bytes), and
a small movie for localize(max_emitters=...); fit_starts on such a movie and fit_frame on one frame (raw
float32 pixels: NaN, inf, huge) with fuzzed starts (frames, x, y: any float32 or plausible) and StartsOptions
(valid or not). Contract: invalid settings raise ValueError naming them; valid ones give 1..max_emitters
emitters, converged ones finite and inside the region; fit_starts / fit_frame give one row per start, finite,
inside the frame and within max_shift of its start; never a crash or hang.
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
    if b3 & 32:
        _fit_frame(body, b0, b1, b2, raw)
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


# StartsOptions fields: (valid choices, invalid choices); the bytes pick one of either.
_STARTS_FIELDS = {
    "max_iterations": ([40, 1, 200], [0, 1001]),
    "tolerance": ([1e-4, 0.5, 1e-12], [0.0, 1.0, float("nan")]),
    "window": ([3, 1, 16], [0, 17]),
    "cg_iterations": ([15, 1, 200], [0, 201]),
    "warmup": ([5, 0, 100], [-1, 101]),
    "max_shift": ([2.0, 0.0, 0.3, 16.0], [-0.1, 16.5, float("inf")]),
    "prior_sigma": ([0.2, 0.0, 5.0], [-1.0, 17.0, float("nan")]),
    "crlb_radius": ([2.5, 0.0, 16.0], [-1.0, 16.5, float("nan")]),
}


def _starts_options(body: bytes, b1: int):
    """StartsOptions from the bytes; every field valid unless b1 & 4 (then each invalid with odds 1/4)."""
    so = _spotcore.StartsOptions()
    valid = True
    key = (body[-9:] if len(body) >= 9 else body + b"\0" * 9)
    for i, (field, (good, bad)) in enumerate(_STARTS_FIELDS.items()):
        c = key[i]
        if b1 & 4 and c % 4 == 0:
            setattr(so, field, bad[(c // 4) % len(bad)])
            valid = False
        else:
            setattr(so, field, good[c % len(good)])
    return so, valid


def _starts_xy(body: bytes, n: int, rows: int, cols: int, raw: bool) -> np.ndarray:
    xy = _floats(body[::-1], 2 * n, raw).reshape(2, n) if n else np.zeros((2, 0), np.float32)
    if not raw:  # plausible: spread over the frame
        xy = np.vstack([xy[0] / 4080.0 * cols - 0.5, xy[1] / 4080.0 * rows - 0.5]).astype(np.float32)
    return xy


def _in_frame(xy: np.ndarray, rows: int, cols: int) -> bool:
    return bool(np.isfinite(xy).all() and (xy[0] >= -0.5).all() and (xy[0] < np.float32(cols - 0.5)).all()
                and (xy[1] >= -0.5).all() and (xy[1] < np.float32(rows - 0.5)).all())


def _check_fitted(x, y, photons, finite_photons, sx, sy, rows, cols, so):
    """Positions finite, inside the frame and within max_shift of the starts (x and y each); photons not NaN,
    and finite where `finite_photons` (a converged fit; an unconverged one may step past float32's range)."""
    assert np.isfinite(x).all() and np.isfinite(y).all() and not np.isnan(photons).any()
    assert np.isfinite(photons[finite_photons]).all(), "inf photons in a converged fit"
    assert ((x >= -0.5) & (x <= cols - 0.5) & (y >= -0.5) & (y <= rows - 0.5)).all()
    tol = so.max_shift + 1e-4   # float32 rows
    assert (np.abs(x - sx) <= tol).all() and (np.abs(y - sy) <= tol).all(), "moved past max_shift"


def _fit_starts(body: bytes, b0: int, b1: int, b2: int, raw: bool):
    rows, cols = [(16, 16), (9, 20), (3, 7), (1, 8), (31, 5)][b0 % 5]
    movie = _floats(body, 2 * rows * cols, False).reshape(2, rows, cols).astype(np.uint16)
    n = b2 % 12
    xy = _starts_xy(body, n, rows, cols, raw)
    frame = np.sort(np.resize(np.frombuffer(body or b"\0", np.uint8), n) % (3 if b1 & 2 else 2)).astype(np.int64)
    if b1 & 1 and n > 1:
        frame = frame[::-1].copy()  # possibly decreasing
    so, valid_opts = _starts_options(body, b1)
    o = _spotcore.LocalizeOptions()
    o.fit.psf_sigma = [1.3, 0.7, 2.5, 12.0, 0.2][(b2 // 60) % 5]
    o.fit.threads = 1 + b0 % 2
    first = [0, 1, -1][(b0 // 5) % 3]
    valid = valid_opts and 0.3 <= o.fit.psf_sigma <= 10 and first >= 0 and _in_frame(xy, rows, cols) and \
        (np.diff(frame) >= 0).all() and ((frame >= first) & (frame < first + 2)).all()
    try:
        rec, group, n_in_group = _spotcore.fit_starts(movie, spotfit.Camera(), o, frame, xy[0], xy[1], so, first)
    except ValueError as exc:
        assert not valid, exc
        return
    assert valid, "fit_starts accepted invalid input"
    assert len(rec) == n and len(group) == len(rec) == len(n_in_group)
    np.testing.assert_array_equal(rec["frame"], frame)
    _check_fitted(rec["x"], rec["y"], rec["photons"], rec["status"] == 0, xy[0], xy[1], rows, cols, so)
    assert (n_in_group == np.bincount(frame - first, minlength=2)[frame - first]).all()
    assert np.isin(rec["status"], [0, 1]).all()


def _fit_frame(body: bytes, b0: int, b1: int, b2: int, raw: bool):
    rows, cols = [(16, 16), (9, 20), (3, 7), (1, 8), (31, 5)][(b0 // 3) % 5]
    img = _floats(body, rows * cols, raw).reshape(rows, cols)   # raw: any float32, NaN and inf included
    n = (b2 // 3) % 10
    xy = _starts_xy(body, n, rows, cols, not raw and bool(b1 & 8))
    so, valid_opts = _starts_options(body, b1)
    sigma = [1.3, 0.7, 2.5, 12.0, 0.2][(b2 // 7) % 5]
    valid = valid_opts and 0.3 <= sigma <= 10 and _in_frame(xy, rows, cols) and np.isfinite(img).all()
    try:
        d = _spotcore.fit_frame(img, sigma, xy[0], xy[1], so)
    except ValueError as exc:
        assert not valid, exc
        return
    assert valid, "fit_frame accepted invalid input"
    e = d["emitters"]
    assert e.shape == (n, 7)
    # Pixels near float32's limit (> 1e30) can step photons past its range (inf), even in a "converged" fit
    # (tolerance 0.5 after one step): not asserted there.
    representable = float(np.abs(img).max(initial=0)) < 1e30
    _check_fitted(e[:, 0], e[:, 1], e[:, 2], np.full(n, d["converged"] and representable), xy[0], xy[1], rows, cols,
                  so)
    assert not np.isnan(e[:, 3:]).any(), "NaN bound"   # inf allowed: an emitter the data do not determine
    assert not np.isnan(d["chi2"]) and np.isfinite(d["background"])


if __name__ == "__main__":
    main(test_one_input)
