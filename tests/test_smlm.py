"""The simulated SMLM experiments that the post-processing tests rely on (spotfit.simulate_smlm)."""
import numpy as np
import pandas as pd
import pytest

import spotfit
from spotfit import smlm


@pytest.mark.parametrize("mean_on,mean_off", [(1.5, 200.0), (3.0, 150.0), (8.0, 600.0)])
def test_blinking_kinetics_match_the_requested_means(mean_on, mean_off):
    ev = smlm.blink(300, 20000, mean_on=mean_on, mean_off=mean_off, seed=3)
    inner = ev[(ev.start > 0) & (ev.start + ev.length < 20000)]   # not clipped by the movie's ends
    assert inner.length.mean() == pytest.approx(mean_on, rel=0.05)
    on_fraction = ev.length.sum() / (300 * 20000)
    assert on_fraction == pytest.approx(mean_on / (mean_on + mean_off), rel=0.08)
    # A site's events never overlap.
    for _, g in ev.groupby("site"):
        assert (g.start.to_numpy()[1:] >= (g.start + g.length).to_numpy()[:-1] + 1).all()


@pytest.mark.parametrize("kind", ["grid", "lines", "points"])
def test_localizations_scatter_by_their_uncertainty_around_site_plus_drift(kind):
    sim = spotfit.simulate_smlm(kind, frames=3000, shape=(64, 64), count=12 if kind == "points" else 6, photons=1500,
                                seed=5)
    locs, truth = sim.locs, sim.truth
    assert len(locs) == len(truth) > 300
    assert (np.diff(locs.frame) >= 0).all()
    drift = sim.drift.set_index("frame").loc[locs.frame]
    assert np.allclose(truth.drift_x, drift.x) and np.allclose(truth.drift_y, drift.y)
    for axis in "xy":
        z = (locs[axis] - truth[axis] - truth[f"drift_{axis}"]) / locs[f"uncertainty_{axis}"]
        assert z.std() == pytest.approx(1.0, abs=0.06) and abs(z.mean()) < 0.1
    # Each event is one site on consecutive frames.
    g = pd.DataFrame({"event": truth.event, "site": truth.site, "frame": locs.frame}).groupby("event")
    assert (g.site.nunique() == 1).all()
    assert ((g.frame.max() - g.frame.min() + 1) == g.size()).all()


def test_drift_trajectory_components():
    d = smlm.drift_trajectory(1000, random_walk=0.0, linear=(1.0, -2.0), sine=(0.0, 0.0), jump=(600, 0.5, 0.0))
    assert d.x.iloc[0] == 0 and d.y.iloc[0] == 0
    assert d.y.iloc[-1] == pytest.approx(-2.0)
    assert d.x.iloc[600] - d.x.iloc[599] == pytest.approx(0.5 + 1.0 / 999)
    walk = smlm.drift_trajectory(20000, random_walk=0.002, linear=(0, 0), sine=(0, 0), seed=1)
    assert np.diff(walk.x).std() == pytest.approx(0.002, rel=0.03)


def test_movie_has_the_emitters_where_the_truth_says():
    sim = spotfit.simulate_smlm("grid", frames=40, shape=(48, 48), count=2, mean_off=20, photons=5000,
                                movie=True, seed=2)
    assert sim.movie.shape == (40, 48, 48)
    f = sim.locs.frame.iloc[0]
    x = sim.truth.x.iloc[0] + sim.truth.drift_x.iloc[0]
    y = sim.truth.y.iloc[0] + sim.truth.drift_y.iloc[0]
    assert sim.movie[f, int(round(y)), int(round(x))] > np.median(sim.movie[f]) + 50


@pytest.mark.parametrize("kwargs,match", [
    ({"frames": 0}, "frames"),
    ({"photons": -1}, "photons"),
    ({"structure_kind": "spiral"}, "structure"),
    ({"structure_kind": np.zeros((3, 3))}, "sites"),
    ({"drift": pd.DataFrame({"frame": [0], "x": [0.0], "y": [0.0]})}, "every frame"),
])
def test_bad_simulation_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        spotfit.simulate_smlm(**{"frames": 10, **kwargs})
