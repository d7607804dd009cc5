"""Wavelet filter and local maxima against straightforward scipy/numpy references."""
import numpy as np
import pytest
from conftest import mirror_pad_reference

import spotfit


def reference_planes(image):
    v1 = mirror_pad_reference(image, 1)
    v2 = mirror_pad_reference(v1, 2)
    return image - v1, v1 - v2


SHAPES = [(1, 1), (1, 7), (7, 1), (2, 2), (3, 5), (4, 9), (9, 4), (16, 16), (33, 64), (256, 256)]


@pytest.mark.parametrize("shape", SHAPES)
def test_wavelet_planes_match_scipy_mirror(shape):
    rng = np.random.default_rng(sum(shape))
    image = rng.uniform(0, 1000, shape).astype(np.float32)
    w1, w2 = spotfit.wavelet_filter(image)
    r1, r2 = reference_planes(image.astype(np.float64))
    # The core computes in float32, scipy in float64: four passes over values up to 1000 (ulp 6e-5)
    # stay within 1e-3; any indexing or border error would be off by whole pixel values.
    np.testing.assert_allclose(w1, r1, rtol=0, atol=1e-3)
    np.testing.assert_allclose(w2, r2, rtol=0, atol=1e-3)


def reference_maxima(f, threshold):
    """Raster-order tie rule: > earlier 8-neighbours, >= later ones; outside neighbours ignored."""
    rows, cols = f.shape
    out = []
    for r in range(rows):
        for c in range(cols):
            v = f[r, c]
            if not v > threshold:
                continue
            ok = True
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    if dr == dc == 0:
                        continue
                    rr, cc = r + dr, c + dc
                    if not (0 <= rr < rows and 0 <= cc < cols):
                        continue
                    earlier = (dr, dc) < (0, 0)
                    if (earlier and f[rr, cc] >= v) or (not earlier and f[rr, cc] > v):
                        ok = False
            if ok:
                out.append((r, c))
    return out


@pytest.mark.parametrize("shape", SHAPES[:-1] + [(64, 64)])
def test_local_maxima_match_reference(shape):
    rng = np.random.default_rng(7 + sum(shape))
    f = rng.integers(0, 6, shape).astype(np.float32)  # small integers: many plateaus and ties
    peaks = spotfit.find_peaks(f, 1.5)
    assert list(zip(peaks.row, peaks.col)) == reference_maxima(f, 1.5)


def test_detection_on_filtered_random_images_matches_reference():
    rng = np.random.default_rng(3)
    for _ in range(5):
        img = rng.poisson(20, (48, 40)).astype(np.float32)
        w1, w2 = spotfit.wavelet_filter(img)
        thr = 1.0 * float(w1.std())
        peaks = spotfit.find_peaks(w2, thr)
        assert list(zip(peaks.row, peaks.col)) == reference_maxima(w2, thr)


def test_min_distance_keeps_stronger_peak():
    f = np.zeros((20, 20), np.float32)
    f[5, 5], f[5, 8], f[15, 15] = 10, 7, 3
    assert len(spotfit.find_peaks(f, 0.5)) == 3
    p = spotfit.find_peaks(f, 0.5, min_distance=4)
    assert list(zip(p.row, p.col)) == [(5, 5), (15, 15)]


def test_border_excludes_edge_peaks():
    f = np.zeros((20, 20), np.float32)
    f[1, 10], f[10, 10] = 5, 5
    p = spotfit.find_peaks(f, 0.5, border=3)
    assert list(zip(p.row, p.col)) == [(10, 10)]


def test_filter_rejects_bad_input():
    with pytest.raises(ValueError):
        spotfit.wavelet_filter(np.zeros((0, 5)))
    with pytest.raises(ValueError):
        spotfit.wavelet_filter(np.zeros((2, 3, 4)))
    with pytest.raises(ValueError, match="NaN"):
        spotfit.wavelet_filter(np.full((4, 4), np.nan))
