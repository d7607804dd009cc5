"""sCMOS cameras: per-pixel offset, gain and read-noise variance maps (Huang et al. 2013, Nat. Methods 10:653).

A simulated sCMOS movie has isolated spots on a sensor where ~15% of the pixels have a large read noise.
The variance-aware MLE (data and model both shifted by variance/gain^2, Huang et al. eq. 3) must localize
spots that touch a noisy pixel better than the same fit that ignores the variance; a sensor ROI must use
the matching part of the maps; and the real storm-analysis sample must localize sanely with its maps.
"""
from pathlib import Path

import numpy as np
import pytest

import spotfit
from spotfit import io as sio
from spotfit.cli import main
from spotfit.evaluate import match
from scipy.special import erf

SCMOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "storm-analysis-scmos"
SIGMA = 1.3


def scmos_maps(shape, seed=0, noisy_fraction=0.03):
    """offset (ADU), gain (ADU/e-), variance (ADU^2): like calib.npy, with a heavy tail of noisy pixels."""
    rng = np.random.default_rng(seed)
    offset = rng.normal(100.0, 3.0, shape)
    gain = rng.uniform(1.8, 2.4, shape)
    variance = rng.uniform(3.0, 8.0, shape)
    noisy = rng.random(shape) < noisy_fraction
    variance[noisy] = rng.uniform(500.0, 3000.0, noisy.sum())  # 11-27 e- rms read noise
    return offset, gain, variance


def _expected(shape, x, y, photons, background):
    """Expected photons per pixel: background + pixel-integrated Gaussians (Smith et al. 2010, eq. 3),
    written separably (an outer product per spot) because it is ~100x faster than a per-pixel loop."""
    def edges(n, c):  # (spots, n): integral of a unit 1D Gaussian over each pixel [i - 0.5, i + 0.5)
        e = (np.arange(n + 1) - 0.5)[None, :] - c[:, None]
        return np.diff(0.5 * erf(e / (np.sqrt(2) * SIGMA)), axis=1)
    return background + photons * np.einsum("sr,sc->rc", edges(shape[0], y), edges(shape[1], x))


def simulate_scmos(frames, shape, offset, gain, variance, seed=1, photons=800.0, background=10.0):
    """Isolated spots on a grid (11 px apart, random sub-pixel offsets); ADU = gain*Poisson + offset + N(0, var)."""
    rng = np.random.default_rng(seed)
    rows, cols = shape
    grid = [(r, c) for r in range(8, rows - 7, 11) for c in range(8, cols - 7, 11)]
    movie = np.empty((frames,) + shape, np.uint16)
    truth = []
    for f in range(frames):
        yx = np.array(grid, float) + rng.uniform(-0.5, 0.5, (len(grid), 2))
        lam = _expected(shape, yx[:, 1], yx[:, 0], photons, background)
        adu = gain * rng.poisson(lam) + offset + rng.normal(0.0, np.sqrt(variance))
        movie[f] = np.clip(np.rint(adu), 0, 65535)
        truth += [(f, x, y, photons) for y, x in yx]
    import pandas as pd
    return movie, pd.DataFrame(truth, columns=["frame", "x", "y", "photons"])


@pytest.fixture(scope="module")
def scmos_movie():
    shape = (64, 64)
    offset, gain, variance = scmos_maps(shape)
    movie, truth = simulate_scmos(150, shape, offset, gain, variance)
    return movie, truth, offset, gain, variance


def test_variance_map_makes_mle_better_on_noisy_pixels(scmos_movie):
    movie, truth, offset, gain, variance = scmos_movie
    with_var = spotfit.Camera(offset_map=offset, gain_map=gain, variance_map=variance)
    no_var = spotfit.Camera(offset_map=offset, gain_map=gain)               # same maps, variance ignored
    plain = spotfit.Camera(baseline=100.0, sensitivity=1 / 2.1)              # an EMCCD-style camera model
    noisy_px = variance > 400
    results = {}
    for name, cam in (("variance", with_var), ("no_variance", no_var), ("plain", plain)):
        locs = spotfit.localize(movie, camera=cam, psf_sigma=SIGMA, box=7, estimator="mle")
        m = match(truth, locs[locs["status"] == "converged"], tolerance=1.0)
        pairs = m["pairs"]
        t, l = truth.iloc[pairs["truth"]], locs[locs["status"] == "converged"].iloc[pairs["loc"]]
        err = np.hypot(pairs["dx"].to_numpy(), pairs["dy"].to_numpy())
        # A spot is "on noisy pixels" when its 3x3 core holds one (those pixels carry most of the signal),
        # "clean" when its whole 7x7 fit box has none.
        r, c = np.rint(t["y"].to_numpy()).astype(int), np.rint(t["x"].to_numpy()).astype(int)
        hit, dirty = np.zeros(len(t), bool), np.zeros(len(t), bool)
        for dr in range(-3, 4):
            for dc in range(-3, 4):
                near = noisy_px[r + dr, c + dc]
                dirty |= near
                if abs(dr) <= 1 and abs(dc) <= 1:
                    hit |= near
        results[name] = dict(recall=m["recall"], rmse_noisy=np.sqrt(np.mean(err[hit] ** 2)),
                             rmse_clean=np.sqrt(np.mean(err[~dirty] ** 2)), n_noisy=hit.sum(),
                             n_clean=(~dirty).sum(),
                             photon_bias=np.median(l["photons"].to_numpy()[hit]) / 800 - 1)
    v, nv, p = results["variance"], results["no_variance"], results["plain"]
    assert v["n_noisy"] > 500 and v["n_clean"] > 500, results   # RMSE of 500 spots is known to ~3%
    # Without the variance term, pixels with 20+ e- rms read noise get the weight of Poisson pixels; the
    # variance-weighted MLE must be clearly more precise on those spots (a 15% gain is 5x the ~3%
    # sampling error of each RMSE) and the same on spots whose box has only low-noise pixels.
    assert v["rmse_noisy"] < 0.85 * nv["rmse_noisy"], results
    assert v["rmse_noisy"] < 0.85 * p["rmse_noisy"], results
    print(results)
    assert 0.93 < v["rmse_clean"] / nv["rmse_clean"] < 1.07, results
    assert v["recall"] > 0.95, results
    # Photons: per-pixel gains make the estimate unbiased (the plain camera's single gain does not).
    assert abs(v["photon_bias"]) < 0.05, results


def test_roi_uses_matching_part_of_maps(scmos_movie):
    movie, truth, offset, gain, variance = scmos_movie
    full = spotfit.Camera(offset_map=offset, gain_map=gain, variance_map=variance)
    rows, cols = slice(10, 42), slice(20, 56)
    roi = full.crop(rows, cols)
    np.testing.assert_array_equal(roi.variance_map, variance[rows, cols].astype(np.float32))
    np.testing.assert_array_equal(roi.offset_map, offset[rows, cols].astype(np.float32))
    sub = movie[:40, rows, cols]
    a = spotfit.localize(movie[:40], camera=full, psf_sigma=SIGMA)
    b = spotfit.localize(sub, camera=roi, psf_sigma=SIGMA)
    # Spots well inside the ROI see the same pixels in both cases: identical fits after the shift.
    inner = (b["x"] > 4) & (b["x"] < 31) & (b["y"] > 4) & (b["y"] < 27) & (b["status"] == "converged")
    b = b[inner]
    assert len(b) > 50
    a = a.assign(x=a["x"] - 20, y=a["y"] - 10)
    key = ["frame", "peak_row", "peak_col"]
    b = b.assign(peak_row=b["peak_row"] + 10, peak_col=b["peak_col"] + 20)
    a = a.assign(peak_row=a["peak_row"], peak_col=a["peak_col"])
    merged = b.merge(a, on=key, suffixes=("_roi", "_full"))
    assert len(merged) == len(b)
    np.testing.assert_allclose(merged["x_roi"], merged["x_full"], atol=1e-4)
    np.testing.assert_allclose(merged["y_roi"], merged["y_full"], atol=1e-4)
    np.testing.assert_allclose(merged["photons_roi"], merged["photons_full"], rtol=1e-4)
    # A crop from the wrong place of the sensor changes the photometry (offsets and gains differ).
    wrong = spotfit.localize(sub, camera=full.crop(slice(0, 32), slice(0, 36)), psf_sigma=SIGMA)
    assert not np.allclose(np.sort(wrong["photons"])[:10], np.sort(b["photons"])[:10], rtol=1e-3)
    # Maps of the wrong size are refused with a hint at crop().
    with pytest.raises(ValueError, match="crop"):
        spotfit.localize(sub, camera=full)


def test_cli_calibration_with_roi(tmp_path, scmos_movie):
    movie, truth, offset, gain, variance = scmos_movie
    import tifffile
    calib = tmp_path / "calib.npy"
    np.save(calib, np.stack([offset, variance, gain]))     # storm-analysis order: offset, variance, gain
    rows, cols = slice(10, 42), slice(20, 56)
    tifffile.imwrite(tmp_path / "roi.tif", movie[:20, rows, cols], imagej=True)
    out = tmp_path / "roi.csv"
    assert main(["localize", str(tmp_path / "roi.tif"), "-o", str(out), "-q", "--calibration", str(calib),
                 "--roi-origin", "10,20"]) == 0
    got = sio.load(out)
    cam = spotfit.Camera(offset_map=offset, gain_map=gain, variance_map=variance).crop(rows, cols)
    ref = spotfit.localize(movie[:20, rows, cols], camera=cam)
    np.testing.assert_allclose(got["x"], ref["x"], atol=1e-6)
    np.testing.assert_allclose(got["photons"], ref["photons"], rtol=1e-6)
    # Without the ROI origin the map/movie size mismatch is a usage error; no output is written.
    bad = tmp_path / "bad.csv"
    assert main(["localize", str(tmp_path / "roi.tif"), "-o", str(bad), "-q", "--calibration", str(calib)]) == 2
    assert not bad.exists()


@pytest.fixture(scope="module")
def storm_sample():
    if not (SCMOS / "sample.tif").exists() or not (SCMOS / "calib.npy").exists():
        pytest.skip("../shared/data/storm-analysis-scmos is not present on this machine")
    return SCMOS / "sample.tif", SCMOS / "calib.npy"


def test_real_scmos_sample_with_calibration(storm_sample):
    movie_path, calib_path = storm_sample
    cam = spotfit.Camera.from_calibration(calib_path, pixel_size_nm=160.0)
    assert cam.offset_map.shape == (256, 256)
    locs = spotfit.localize(str(movie_path), camera=cam, psf_sigma=1.3)
    ok = locs[locs["status"] == "converged"]
    movie = sio.read_movie(movie_path)
    photons_px = (movie - cam.offset_map) / cam.gain_map
    # Sparse dim spots: ~90 per frame are found, nearly all fits converge (measured: 1034, 992).
    assert len(locs) > 500 and len(ok) > 0.9 * len(locs)
    assert set(locs["frame"]) == set(range(movie.shape[0]))
    # Spots cut by the frame edge may be centred just outside it (measured: 6 of 992, within 0.9 px).
    assert ok["x"].between(-1.5, 256.5).all() and ok["y"].between(-1.5, 256.5).all()
    # Background near spots is the sensor's typical level in photons (median pixel ~8 e-), spots are
    # dim (tens to thousands of photons) and the PSF is 1-2 px (160 nm pixels).
    assert 0.7 * np.median(photons_px) < ok["background"].median() < 1.5 * np.median(photons_px)
    assert 50 < ok["photons"].median() < 2000
    assert 0.8 < ok["sigma_x"].median() < 2.0
    assert (ok["uncertainty_x"] > 0).all() and ok["uncertainty_x"].median() < 0.5
    # The same spots are found without the maps, at nearly the same places: the maps refine, not move.
    plain = spotfit.localize(str(movie_path), camera=spotfit.Camera(baseline=float(np.median(cam.offset_map)),
                                                                    sensitivity=1 / float(np.median(cam.gain_map))))
    m = match(ok, plain[plain["status"] == "converged"], tolerance=0.5)
    assert m["recall"] > 0.9 and m["rmse"] < 0.15, m
