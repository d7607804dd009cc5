"""Fuzz target: arbitrary fitter inputs -> spotfit.fit_spots.

The bytes choose the box size, number of boxes, model (bit 8 of byte 3: the astigmatic model with a
calibration read from the bytes, valid or not), estimator, psf_sigma (any float32 bit pattern:
NaN, inf, 0, denormals, negatives), the pixel values (raw float32 bit patterns, or scaled bytes for
realistic counts) and an optional variance map. Contract: invalid parameters raise ValueError; valid
ones give one row per box, converged rows finite and inside their box, and each box's fit does not
depend on the other boxes of the batch. Seeds: fuzz/corpus/fit.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import instrumented, main  # noqa: E402

with instrumented("spotfit"):
    import spotfit  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

BOXES = [3, 5, 7, 9, 11, 15, 31]
COLS = ["x", "y", "photons", "background", "sigma_x", "sigma_y", "uncertainty_x", "uncertainty_y", "loglik", "chi2"]


def _floats(data: bytes, count: int, raw: bool) -> np.ndarray:
    if raw:
        buf = (data * (4 * count // max(len(data), 1) + 1))[:4 * count] if data else b"\0" * (4 * count)
        return np.frombuffer(buf, np.float32).copy()
    buf = (data * (count // max(len(data), 1) + 1))[:count] if data else b"\0" * count
    return np.frombuffer(buf, np.uint8).astype(np.float32) * 16.0  # 0..4080 photons


def test_one_input(data: bytes):
    if len(data) < 8:
        return
    b0, b1, b2, b3 = data[0], data[1], data[2], data[3]
    box = BOXES[b0 % len(BOXES)]
    n = b1 % 17
    model = ["gauss", "elliptical", "fixed_sigma"][b2 % 3]
    estimator = ["mle", "lsq"][(b2 // 3) % 2]
    psf_sigma = float(np.frombuffer(data[4:8], np.float32)[0]) if b3 & 1 else [1.3, 0.5, 3.0, 1e-3][b3 % 4]
    raw = bool(b3 & 2)
    body = data[8:]
    boxes = _floats(body, n * box * box, raw).reshape(n, box, box)
    variance = None
    if b3 & 4:
        variance = _floats(body[::-1], n * box * box, raw).reshape(n, box, box)
    kw = dict(psf_sigma=psf_sigma, model=model, estimator=estimator, variance=variance, threads=1)
    valid_sigma = np.isfinite(psf_sigma) and psf_sigma > 0
    if b3 & 8:
        coef = _floats(body[:48], 12, bool(b3 & 16)).astype(float)
        if not b3 & 16:   # scaled bytes -> plausible coefficients
            coef = coef / 4080.0 * np.array([3, 1200, 800, 2, 2, 3, 1200, 800, 2, 2, 1500, 1500]) - \
                np.array([0, 600, 0, 1, 1, 0, 600, 0, 1, 1, 1500, 0])
        try:
            kw.update(model="astigmatic", calibration=spotfit.AstigmaticCalibration(
                tuple(coef[:5]), tuple(coef[5:10]), (coef[10], coef[11])))
        except ValueError as exc:
            assert "calibration" in str(exc), exc
            return
    try:
        res = spotfit.fit_spots(boxes, **kw)
    except ValueError as exc:
        assert not valid_sigma or "psf_sigma" in str(exc) or "tolerance" in str(exc) or "astigmatism" in str(exc), exc
        return
    if b3 & 8:
        zmin, zmax = kw["calibration"].z_range
        conv = res[res.status == "converged"]
        assert np.isfinite(conv[["z", "uncertainty_z"]].to_numpy(float)).all()
        assert ((conv.z > zmin) & (conv.z < zmax)).all(), "converged z outside the calibrated range"
    # psf_sigma below float32's smallest value rounds to 0 in the core and is refused above.
    assert len(res) == n
    conv = res[res.status == "converged"]
    assert np.isfinite(conv[COLS].to_numpy(float)).all(), "NaN/inf in a converged row"
    half = (box - 1) / 2
    assert ((conv.x - half).abs() <= half + 0.5 + 1e-4).all() and ((conv.y - half).abs() <= half + 0.5 + 1e-4).all()
    if n > 1:
        k = b1 % n
        alone = spotfit.fit_spots(boxes[k:k + 1], **{**kw, "variance": None if variance is None else variance[k:k + 1]})
        pd.testing.assert_frame_equal(res.iloc[[k]].reset_index(drop=True), alone, check_exact=True)


if __name__ == "__main__":
    main(test_one_input)
