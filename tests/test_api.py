"""The API layer: LocalizeOptions, one detection for every estimator, movies as objects, the front door."""
import pickle

import numpy as np
import pandas as pd
import pytest

import spotfit
from spotfit.options import LocalizeOptions, fields, names

CAM = spotfit.Camera(baseline=100, sensitivity=0.5)


@pytest.mark.parametrize("density, threshold, min_distance, border, seed", [
    (15, 1.5, 0.0, 0, 1), (40, 1.0, 0.0, 3, 2), (8, 3.0, 2.5, 0, 3), (60, 1.5, 0.0, 0, 4)])
def test_regressor_detects_exactly_the_peaks_of_the_fit(density, threshold, min_distance, border, seed):
    movie, _ = spotfit.simulate(frames=12, shape=(96, 80), density=density, camera=CAM, seed=seed)
    kw = dict(camera=CAM, threshold=threshold, min_distance=min_distance, border=border, chunk_frames=5)
    fit = spotfit.localize(movie, estimator="mle", **kw)
    learned = spotfit.localize(movie, estimator="ridge", **kw)
    assert len(fit) > 10 * 12 * density / 100              # something was detected
    key = ["frame", "peak_row", "peak_col"]
    pd.testing.assert_frame_equal(learned[key], fit[key])
    # and the regressor's centres sit near the fit's (both estimate the same spots)
    assert np.median(np.hypot(learned.x - fit.x, learned.y - fit.y)) < 0.15


def test_options_are_validated_frozen_and_round_trip():
    opt = LocalizeOptions(box=9, estimator="lsq")
    with pytest.raises(Exception):
        opt.box = 7                                          # frozen
    assert opt.replace(box=5).box == 5 and opt.box == 9
    for bad, exc in [(dict(box=8), ValueError), (dict(model="airy"), ValueError), (dict(threads=0), ValueError),
                     (dict(threshold=-1), ValueError), (dict(psf_sigma="1"), TypeError),
                     (dict(mask_neighbours=1), TypeError), (dict(classify_threshold=2), ValueError)]:
        with pytest.raises(exc):
            LocalizeOptions(**bad)
    with pytest.raises(TypeError, match="unknown localize option"):
        LocalizeOptions.from_keywords(boxx=7)
    assert names() == [f[0] for f in fields()] and all(f[2] for f in fields())   # every option has a help text
    assert pickle.loads(pickle.dumps(opt)) == opt


def test_options_object_and_keywords_give_the_same_rows():
    movie, _ = spotfit.simulate(frames=6, shape=(64, 64), camera=CAM, seed=5)
    opt = LocalizeOptions(box=9, model="elliptical", threshold=2.0)
    a = spotfit.localize(movie, opt, camera=CAM)
    b = spotfit.localize(movie, camera=CAM, box=9, model="elliptical", threshold=2.0)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert a.attrs["spotfit"]["parameters"] == opt.parameters()
    c = spotfit.localize(movie, opt, camera=CAM, box=7)      # keywords override the object
    assert c.attrs["spotfit"]["parameters"]["box"] == 7


def test_a_movie_object_localizes_like_its_array_and_carries_its_camera(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    movie, _ = spotfit.simulate(frames=9, shape=(48, 40), camera=CAM, seed=6)
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, movie, imagej=True, metadata={"axes": "TYX", "spotfit.baseline": 100.0,
                                                         "spotfit.sensitivity": 0.5})
    m = spotfit.io.open_movie(path)
    assert m.shape == movie.shape and len(m) == 9 and m.camera.sensitivity == 0.5
    np.testing.assert_array_equal(m[2:5], movie[2:5])
    np.testing.assert_array_equal(m[-1], movie[-1])
    np.testing.assert_array_equal(np.asarray(m), movie)
    again = pickle.loads(pickle.dumps(m))                   # picklable: only paths and shapes
    np.testing.assert_array_equal(again[3], movie[3])
    ref = spotfit.localize(movie, camera=CAM)
    pd.testing.assert_frame_equal(spotfit.core.localize(m, chunk_frames=4), ref, check_exact=True)
    pd.testing.assert_frame_equal(spotfit.localize(str(path)), ref, check_exact=True)
    with pytest.raises(TypeError, match="open_movie"):
        spotfit.core.localize(str(path))                    # the API layer takes movies, not paths


def test_localize_of_a_dask_array_is_lazy_and_equal():
    da = pytest.importorskip("dask.array")
    pytest.importorskip("distributed")
    movie, _ = spotfit.simulate(frames=10, shape=(48, 48), camera=CAM, seed=7)
    lazy = spotfit.localize(da.from_array(movie, chunks=(4, 48, 48)), camera=CAM)
    assert type(lazy).__module__.startswith("dask")
    pd.testing.assert_frame_equal(lazy.compute().reset_index(drop=True), spotfit.localize(movie, camera=CAM),
                                  check_exact=True)


@pytest.mark.parametrize("camera", [CAM, spotfit.Camera(offset_map=np.full((20, 24), 99.0, np.float32),
                                                        gain_map=np.linspace(1.5, 2.5, 480).reshape(20, 24), qe=0.8)])
def test_camera_to_photons_is_the_core_conversion_of_detection(camera):
    rng = np.random.default_rng(8)
    frames = rng.integers(90, 4000, (3, 20, 24)).astype(np.uint16)
    ph = camera.to_photons(frames)
    boxes, _, inside = spotfit.cut_boxes(frames, [0, 1, 2], [10, 0, 19], [12, 0, 23], 3, camera=camera)
    for k, (f, r, c) in enumerate([(0, 10, 12), (1, 0, 0), (2, 19, 23)]):
        window = ph[f, max(r - 1, 0):r + 2, max(c - 1, 0):c + 2]
        assert np.array_equal(boxes[k][inside[k]], window.ravel())     # bit-identical: one conversion
    np.testing.assert_array_equal(camera.to_photons(frames[1]), ph[1])
    with pytest.raises(ValueError, match="camera maps"):
        spotfit.Camera(offset_map=np.zeros((5, 5))).to_photons(frames)
