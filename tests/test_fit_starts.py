"""spotcore fit_starts (joint fits of clusters of given starts): truths recovered from perturbed starts
within their Cramer-Rao bounds, bad input rejected, rows independent of the thread count."""
import numpy as np
import pytest
from scipy.spatial import cKDTree

import spotfit
from spotfit import _spotcore

SIGMA = 1.3


def _options(threads=1):
    o = _spotcore.LocalizeOptions()
    o.fit.psf_sigma = SIGMA
    o.fit.tolerance = 0.01
    o.fit.max_iterations = 60
    o.fit.threads = threads
    return o


def _movie(density, photons, seed, frames=8, min_distance=0.0):
    movie, truth = spotfit.simulate(frames=frames, shape=(64, 64), density=density, photons=photons, seed=seed,
                                    psf_sigma=SIGMA, min_distance=min_distance)
    truth = truth.sort_values("frame", kind="stable").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    x = (truth.x.to_numpy() + rng.normal(0, 0.3, len(truth))).astype(np.float32)
    y = (truth.y.to_numpy() + rng.normal(0, 0.3, len(truth))).astype(np.float32)
    return movie, truth, truth.frame.to_numpy(np.int64), x, y


def _standardized_errors(truth, rec):
    """Per truth: (x error / CRLB_x, y error / CRLB_y) of its nearest row, NaN when that row is not converged."""
    z = np.full((len(truth), 2), np.nan)
    for f in np.unique(truth.frame):
        t = np.flatnonzero(truth.frame.to_numpy() == f)
        r = rec[rec["frame"] == f]
        if len(r) == 0:
            continue
        _, i = cKDTree(np.column_stack([r["x"], r["y"]])).query(truth[["x", "y"]].to_numpy()[t])
        ok = r["status"][i] == int(_spotcore.FitStatus.converged)
        z[t[ok], 0] = (r["x"][i] - truth.x.to_numpy()[t])[ok] / r["uncertainty_x"][i][ok]
        z[t[ok], 1] = (r["y"][i] - truth.y.to_numpy()[t])[ok] / r["uncertainty_y"][i][ok]
    return z


# density: emitters per 54 x 54 px frame area (border 5): 5 isolated (>= 8 px apart), 20 (nearest neighbour
# ~6 px on average, some overlapping), 60 (~3.5 px, 2.7 sigma: clusters and strong overlap).
# Measured (fraction within 4 bounds, median |z|): isolated 1.00 / ~0.6-0.7; 20: 0.96 / 0.75 at 1000
# photons, 0.88 / 0.83 at 5000; 60: 0.88 / 0.98.
@pytest.mark.parametrize("density,photons", [(5, 1000.0), (5, 5000.0), (20, 1000.0), (20, 5000.0), (60, 1000.0)])
def test_truths_recovered_within_crlb(density, photons):
    isolated = density == 5
    movie, truth, frame, x, y = _movie(density, photons, seed=int(density + photons), frames=40 if isolated else 8,
                                       min_distance=8.0 if isolated else 0.0)
    rec, group, n_in_group = _spotcore.fit_starts(movie, spotfit.Camera(), _options(), frame, x, y,
                                                  _spotcore.StartsOptions(), 0)
    assert len(rec) <= len(truth) and len(group) == len(rec) == len(n_in_group)
    assert (np.diff(rec["frame"]) >= 0).all() and (n_in_group >= 1).all() and (n_in_group <= 6).all()
    z = _standardized_errors(truth, rec)
    within = np.isfinite(z).all(1) & (np.abs(z) <= 4).all(1)
    med = np.nanmedian(np.abs(z))
    if isolated:
        # Spots >= 8 px apart: the bound holds (median |z| of a normal: 0.674; from ~200 spots +-0.07);
        # outside 4 bounds has probability 6e-5 per coordinate.
        assert within.mean() >= 0.99, within.mean()
        assert 0.55 < med < 0.8, med
    else:
        # Crowded: every other emitter enters as a fixed offset at its last estimate, so the neighbours'
        # errors add to the cluster's own (the bound counts only the latter): looser limits.
        assert within.mean() >= 0.83, within.mean()
        assert med < (0.95 if density == 20 else 1.2), med


def test_threads_identical():
    movie, truth, frame, x, y = _movie(40, 2000.0, seed=3, frames=6)
    a, b = (_spotcore.fit_starts(movie, spotfit.Camera(), _options(t), frame + 5, x, y, _spotcore.StartsOptions(), 5)
            for t in (1, 2))
    assert len(a[0]) > 0.9 * len(truth) and a[0]["frame"].min() >= 5
    assert a[0].tobytes() == b[0].tobytes()
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(a[2], b[2])


def test_bad_input_raises():
    movie = np.full((2, 16, 16), 10, np.uint16)
    cam, o, so = spotfit.Camera(), _options(), _spotcore.StartsOptions()
    f, x, y = np.array([0, 1]), np.array([3.0, 4.0], np.float32), np.array([5.0, 6.0], np.float32)

    def call(f=f, x=x, y=y, so=so, first=0):
        return _spotcore.fit_starts(movie, cam, o, f, x, y, so, first)

    assert len(call(f[:0], x[:0], y[:0])[0]) == 0  # no starts: no rows
    with pytest.raises(ValueError, match="same length"):
        call(x=x[:1])
    with pytest.raises(ValueError, match="1D"):
        call(y=y[None, :])
    with pytest.raises(ValueError, match="frame"):
        call(f=np.array([0, 2]))  # past the last frame
    with pytest.raises(ValueError, match="non-decreasing"):
        call(f=np.array([1, 0]))
    with pytest.raises(ValueError, match="frame"):
        call(first=1)  # frame 0 before first_frame
    with pytest.raises(ValueError, match="x must be finite"):
        call(x=np.array([np.nan, 4.0], np.float32))
    with pytest.raises(ValueError, match="y must be finite"):
        call(y=np.array([5.0, 15.5], np.float32))
    for field, value in (("sweeps", 0), ("link", -1.0), ("max_cluster", 11), ("margin", 16)):
        bad = _spotcore.StartsOptions()
        setattr(bad, field, value)
        with pytest.raises(ValueError, match=field):
            call(so=bad)
