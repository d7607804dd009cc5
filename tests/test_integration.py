"""localize() with a trained classifier and with a learned centroid estimator."""
import numpy as np
import pandas as pd
import pytest

import spotfit
from spotfit.evaluate import match


@pytest.fixture(scope="module")
def small_movie():
    cam = spotfit.Camera(baseline=100, sensitivity=0.5)
    movie, truth = spotfit.simulate(frames=40, camera=cam, seed=11)
    return movie, truth, cam


def test_localize_with_packaged_ridge_regressor(small_movie):
    movie, truth, cam = small_movie
    fit = spotfit.localize(movie, camera=cam)
    ridge = spotfit.localize(movie, camera=cam, estimator="ridge")
    # Same detection, different centre estimator.
    assert len(ridge) == len(fit)
    np.testing.assert_array_equal(ridge.peak_row.to_numpy(), fit.peak_row.to_numpy())
    m_fit, m_ridge = match(truth, fit), match(truth, ridge)
    assert m_ridge["recall"] == pytest.approx(m_fit["recall"], abs=0.01)
    assert m_ridge["rmse"] < 1.3 * m_fit["rmse"]
    assert ridge.status.isna().all() and ridge.uncertainty_x.isna().all()


def test_localize_with_classifier_adds_good_column(small_movie, tmp_path):
    movie, truth, cam = small_movie
    locs = spotfit.localize(movie, camera=cam)
    labels, _ = spotfit.label_spots(locs, psf_sigma=1.3)
    patches = spotfit.extract_patches(movie, locs, size=9, camera=cam)
    clf = spotfit.SpotClassifier(model="logistic").fit(patches, labels)
    path = tmp_path / "clf.zip"
    clf.save(path)
    out = spotfit.localize(movie, camera=cam, classifier=path, chunk_frames=16)
    assert {"good", "p_good"} <= set(out.columns)
    np.testing.assert_array_equal(out.good.to_numpy(), clf.predict(patches))
    # drop_bad screens before the fit: the same rows, bit for bit, as fitting all and dropping the bad
    kept = spotfit.localize(movie, camera=cam, classifier=clf, drop_bad=True, chunk_frames=7)
    assert 0 < len(kept) == int(out.good.sum()) < len(out)
    pd.testing.assert_frame_equal(kept, out[out.good].reset_index(drop=True), check_exact=True)
    # with an sCMOS variance map (the boxes carry their variance to the fit)
    rng = np.random.default_rng(4)
    scmos = spotfit.Camera(offset_map=np.full(movie.shape[1:], cam.baseline, np.float32),
                           gain_map=np.full(movie.shape[1:], 1 / cam.sensitivity, np.float32),
                           variance_map=rng.uniform(0, 9, movie.shape[1:]).astype(np.float32))
    full = spotfit.localize(movie, camera=scmos, classifier=clf)
    kept = spotfit.localize(movie, camera=scmos, classifier=clf, drop_bad=True)
    pd.testing.assert_frame_equal(kept, full[full.good].reset_index(drop=True), check_exact=True)


def test_unknown_estimator_is_a_clear_error(small_movie):
    movie, _, cam = small_movie
    with pytest.raises(ValueError, match="estimator"):
        spotfit.localize(movie[:2], camera=cam, estimator="magic")
