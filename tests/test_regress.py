"""Learned centroid estimators (spotfit.regress): accuracy against simulated truth, the LM fit and the CRLB.

Tolerances: with 20,000 held-out patches the RMSE is known to about 0.5% (relative standard error
1/sqrt(2n)), and the mean error to about 0.0003 px (hi) / 0.001 px (lo), so the margins below are
many standard errors wide yet would catch a real regression (e.g. ridge on raw pixels: 0.13 px).
"""
import sys

import numpy as np
import pytest

import spotfit
from spotfit.ml.regress import CentroidRegressor, normalize, training_set
from spotfit.ml.regress import frame_patches as extract_patches

try:
    import tensorflow  # noqa: F401
    HAVE_TF = True
except ImportError:
    HAVE_TF = False
requires_tf = pytest.mark.skipif(not HAVE_TF, reason="TensorFlow is not importable (pip install spotfit[tf])")

HI = dict(photons=(500, 5000), background=20.0)       # the acceptance condition
LO = dict(photons=(200, 1000), background=50.0)       # the dim condition
MIX = dict(photons=(150, 6000), background=(5, 80), log_photons=True)


def rmse(e):
    return float(np.sqrt(np.mean(np.square(e))))


def crlb_rms(truth):
    """RMS over the set of the x Cramér–Rao bound (9x9 box, known sigma; x and y bounds are equal)."""
    ph = truth["photons"].to_numpy()[:2000]
    c = spotfit.crlb(ph, float(truth["background"].iloc[0]), 1.3, box=9, model="fixed_sigma")["x"]
    return float(np.sqrt(np.mean(c ** 2)))


@pytest.fixture(scope="module")
def held_out():
    return {"hi": training_set(20000, psf_sigma=1.3, seed=101, **HI),
            "lo": training_set(20000, psf_sigma=1.3, seed=102, **LO)}


def errors(model, data):
    p, t = data
    return model.predict(p) - t[["x", "y"]].to_numpy()


# ------------------------------------------------------------------------------------------- data
def test_training_set_truth_and_reproducible():
    p, t = training_set(4000, size=9, psf_sigma=(1.2, 1.4), photons=(1000, 2000), background=10, seed=3)
    assert p.shape == (4000, 9, 9) and p.dtype == np.float32
    assert list(t.columns) == ["x", "y", "photons", "background", "sigma"]
    assert t.x.abs().max() <= 0.5 and t.y.abs().max() <= 0.5 and t.x.std() > 0.25
    assert t.sigma.between(1.2, 1.4).all() and t.photons.between(1000, 2000).all()
    # Poisson counts: mean of (patch - expected image) is 0 within 4 standard errors
    from spotfit.simulate import expected_image
    mu = np.array([expected_image((9, 9), [4 + r.x], [4 + r.y], [r.photons], r.background, r.sigma)
                   for r in t.iloc[:500].itertuples()])
    resid = (p[:500] - mu).sum(axis=(1, 2)) / np.sqrt(mu.sum(axis=(1, 2)))
    assert abs(resid.mean()) < 4 / np.sqrt(500) and 0.85 < resid.std() < 1.15
    p2, t2 = training_set(4000, size=9, psf_sigma=(1.2, 1.4), photons=(1000, 2000), background=10, seed=3)
    assert np.array_equal(p, p2) and t.equals(t2)


def test_training_set_camera_counts():
    cam = spotfit.Camera(baseline=100, sensitivity=0.5)
    pa, _ = training_set(100, camera=cam, seed=1)
    pp, _ = training_set(100, seed=1)
    assert np.allclose(cam.to_photons(pa), pp)


@pytest.mark.parametrize("kw", [dict(n=-1), dict(n=10, size=8), dict(n=10, photons=(5, 1)),
                                dict(n=10, psf_sigma=0), dict(n=10, background=-1)])
def test_training_set_rejects_bad_input(kw):
    with pytest.raises((ValueError, TypeError)):
        training_set(**kw)


def test_normalize_offset_and_gain_invariant():
    p, _ = training_set(500, seed=4)
    q1, s1 = normalize(p)
    q2, s2 = normalize(p * 3.0 + 100.0)
    assert np.allclose(q1, q2, atol=1e-4)
    assert np.allclose(s1.snr, s2.snr, rtol=1e-3)
    assert np.allclose(s2.background, 3 * s1.background + 100, rtol=1e-5)


def test_extract_patches_interior_and_border():
    rng = np.random.default_rng(0)
    img = rng.poisson(20, (40, 50)).astype(np.float32)
    out = extract_patches(img, [10, 0, 39], [20, 3, 49], size=9)
    assert out.shape == (3, 9, 9) and np.isfinite(out).all()
    assert np.array_equal(out[0], img[6:15, 16:25])
    assert np.array_equal(out[1][4:, 1:], img[0:5, 0:8])
    ring_in = np.concatenate([img[4, 0:8], img[0:4, 7]])          # in-image ring pixels of patch 1
    assert np.allclose(out[1][:4, :], np.median(ring_in))
    with pytest.raises(ValueError):
        extract_patches(img, [40], [0])


def test_spot_near_border_is_located():
    """3 px from the edge the filled patch is as good as an interior one (measured RMSE 0.032 px).

    Closer, flux is lost outside the image and the learned estimators are biased outward
    (measured 0.05 px at 2 px, 0.28 px at 1 px): that is documented, and asserted here as bounded.
    """
    from spotfit.simulate import expected_image
    model = CentroidRegressor.pretrained("ridge")
    rng = np.random.default_rng(5)
    for col, max_rmse in ((3, 0.05), (1, 0.4)):
        errs = []
        for _ in range(200):
            x, y = col + rng.uniform(-0.5, 0.5), 20 + rng.uniform(-0.5, 0.5)
            img = rng.poisson(expected_image((40, 40), [x], [y], [3000], 20, 1.3)).astype(np.float32)
            d = model.predict(extract_patches(img, [20], [col]))[0]
            errs.append([col + d[0] - x, 20 + d[1] - y])
        errs = np.array(errs)
        assert np.isfinite(errs).all() and rmse(errs) < max_rmse
        if col == 3:
            assert abs(errs[:, 0].mean()) < 0.01


# ------------------------------------------------------------------------------------------ ridge
def test_pretrained_ridge_meets_targets(held_out):
    model = CentroidRegressor.pretrained("ridge")
    assert model.kind == "ridge" and model.size == 9 and model.info["training"]["psf_sigma"] == [1.1, 1.5]
    e_hi = errors(model, held_out["hi"])
    bound_hi = crlb_rms(held_out["hi"][1])
    assert 0.040 < bound_hi < 0.046                      # ≈0.043 px, the figure
    assert rmse(e_hi) <= 0.06                            # acceptance
    assert rmse(e_hi) <= 1.10 * bound_hi                 # measured 1.01x
    assert np.abs(e_hi.mean(axis=0)).max() < 0.02
    p, t = held_out["hi"]
    fit = spotfit.fit_spots(p, psf_sigma=1.3)
    e_fit = np.column_stack([fit.x - 4, fit.y - 4]) - t[["x", "y"]].to_numpy()
    assert rmse(e_hi) <= 1.10 * rmse(e_fit)              # as precise as the MLE fit (measured 1.00x)
    e_lo = errors(model, held_out["lo"])
    bound_lo = crlb_rms(held_out["lo"][1])
    assert rmse(e_lo) <= 0.06 / 0.043 * bound_lo         # same ratio as the 0.06 px target
    assert np.abs(e_lo.mean(axis=0)).max() < 0.02


def test_ridge_on_raw_pixels_is_worse_than_normalized(held_out):
    """The issue's motivation: normalization is what brings ridge near the bound."""
    from sklearn.linear_model import RidgeCV
    p, t = training_set(30000, psf_sigma=1.3, seed=7, **HI)
    raw = RidgeCV(alphas=np.logspace(-3, 4, 15)).fit(p.reshape(len(p), -1), t[["x", "y"]])
    pt, tt = held_out["hi"]
    e_raw = raw.predict(pt.reshape(len(pt), -1)) - tt[["x", "y"]].to_numpy()
    model = CentroidRegressor("ridge").fit(p, t)
    e = errors(model, held_out["hi"])
    assert rmse(e_raw) > 0.10 and rmse(e) < 0.05


def test_ridge_trained_on_counts_works_on_counts(held_out):
    cam = spotfit.Camera(baseline=100, sensitivity=0.5)
    p, t = training_set(30000, psf_sigma=1.3, camera=cam, seed=8, **HI)
    model = CentroidRegressor("ridge", snr_bins=3).fit(p, t)
    pt, tt = held_out["hi"]
    xy_counts = model.predict(np.rint(cam.to_adu(pt)))
    assert rmse(xy_counts - tt[["x", "y"]].to_numpy()) <= 0.05
    assert np.allclose(model.predict(pt), xy_counts, atol=2e-3)     # offset and gain cancel


def test_fourth_root_transform(held_out):
    p, t = training_set(30000, psf_sigma=1.3, seed=9, **HI)
    model = CentroidRegressor("ridge", transform="fourth_root", snr_bins=2).fit(p, t)
    e = errors(model, held_out["hi"])
    assert rmse(e) < 0.07 and np.abs(e.mean(axis=0)).max() < 0.02


def test_estimate_photons_background(held_out):
    model = CentroidRegressor.pretrained("ridge")
    p, t = held_out["hi"]
    est = model.estimate(p)
    assert list(est.columns) == ["x", "y", "photons", "background", "snr"]
    # sum over the patch minus the ring mean: the ring holds some PSF tail, so about 4% low (measured 0.959)
    assert 0.93 < np.median(est.photons / t.photons) < 0.99
    # ring mean includes the PSF tail (measured +1.3 photons/px at ~2750 photons); the CNN corrects it
    assert 0 < np.median(est.background - t.background) < 2.0


def test_save_load_roundtrip(tmp_path, held_out):
    model = CentroidRegressor.pretrained("ridge")
    model.info["note"] = "x"
    model.save(tmp_path / "m.npz")
    back = CentroidRegressor.load(tmp_path / "m.npz")
    p = held_out["hi"][0][:100]
    assert np.array_equal(back.predict(p), model.predict(p)) and back.info["note"] == "x"
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    with pytest.raises(ValueError):
        CentroidRegressor.load(tmp_path / "bad.npz")


def test_errors():
    with pytest.raises(ValueError):
        CentroidRegressor("forest")
    with pytest.raises(RuntimeError, match="not trained"):
        CentroidRegressor().predict(np.zeros((1, 9, 9)))
    model = CentroidRegressor.pretrained("ridge")
    with pytest.raises(ValueError, match="9x9"):
        model.predict(np.zeros((1, 7, 7)))
    bad = np.zeros((1, 9, 9))
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.predict(bad)
    with pytest.raises(ValueError):
        CentroidRegressor("ridge").fit(np.zeros((200, 9, 9)), np.zeros((200, 1)))
    with pytest.raises(ValueError):
        CentroidRegressor("tf-cnn").fit(np.zeros((200, 9, 9)), np.zeros((200, 2)))


def test_missing_tensorflow_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    p, t = training_set(500, seed=1)
    with pytest.raises(ImportError, match=r"pip install spotfit\[tf\]"):
        CentroidRegressor("tf-linear").fit(p, t)
    # the packaged tf-linear weights predict with numpy alone
    assert CentroidRegressor.pretrained("tf-linear").predict(p).shape == (500, 2)


def test_pretrained_tf_linear(held_out):
    model = CentroidRegressor.pretrained("tf-linear")
    e = errors(model, held_out["hi"])
    assert rmse(e) <= 1.15 * crlb_rms(held_out["hi"][1]) and np.abs(e.mean(axis=0)).max() < 0.02


# ------------------------------------------------------------------------------------- TensorFlow
@pytest.fixture(scope="module")
def cnn():
    p, t = training_set(30000, psf_sigma=1.3, seed=11, **MIX)
    return CentroidRegressor("tf-cnn", epochs=8, batch_size=256, seed=0).fit(p, t)


@requires_tf
def test_tf_linear_trains(held_out):
    p, t = training_set(30000, psf_sigma=1.3, seed=10, **HI)
    model = CentroidRegressor("tf-linear", snr_bins=2, epochs=4, batch_size=256, seed=0).fit(p, t)
    e = errors(model, held_out["hi"])
    assert rmse(e) <= 0.06 and np.abs(e.mean(axis=0)).max() < 0.02
    assert model.info["history"]["loss"][-1] < model.info["history"]["loss"][0]


@requires_tf
@pytest.mark.parametrize("cond", ["hi", "lo"])
def test_tf_cnn_near_crlb(cnn, held_out, cond):
    e = errors(cnn, held_out[cond])
    bound = crlb_rms(held_out[cond][1])
    assert rmse(e) <= 1.15 * bound                       # acceptance (measured 1.03x hi, 0.85x lo)
    assert np.abs(e.mean(axis=0)).max() < 0.02


@requires_tf
def test_tf_cnn_photons_background_and_roundtrip(cnn, held_out, tmp_path):
    p, t = held_out["hi"]
    est = cnn.estimate(p)
    assert abs(np.median(est.photons / t.photons) - 1) < 0.03
    assert abs(np.median(est.background - t.background)) < 0.5
    cnn.save(tmp_path / "cnn.npz")
    back = CentroidRegressor.load(tmp_path / "cnn.npz")
    assert np.allclose(back.predict(p[:500]), cnn.predict(p[:500]), atol=1e-5)
