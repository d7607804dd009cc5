"""spotfit.link against simulated blinking with known event membership (spotfit.simulate_smlm)."""
import numpy as np
import pandas as pd
import pytest

import spotfit
from spotfit.postprocess.link import GATE, RADIUS_QUANTILE, _quantile_of_larger, mortensen_uncertainty


def exact_fraction(true_event, group) -> float:
    """Share of true events whose rows are exactly one linked group (no row missing, none added)."""
    t = pd.DataFrame({"t": np.asarray(true_event), "g": np.asarray(group)})
    per_t = t.groupby("t")["g"].agg(["nunique", "first", "size"])
    group_size = t.groupby("g").size()
    ok = (per_t["nunique"] == 1) & (group_size.reindex(per_t["first"]).to_numpy() == per_t["size"].to_numpy())
    return float(ok.mean())


# (structure, mean_on, mean_off, photons, max_dark_frames): DNA-PAINT-like kinetics (mean_off >> mean_on) at
# two precisions (photons 3000: ~0.02 px; 800: ~0.05 px; first/last frames of a blink dimmer), and a dense
# case (2 % of sites on per frame, grid sites 0.6 px apart) where a site's next blink can follow after a
# single off frame: only max_dark_frames=0 keeps those blinks apart there (a 1-frame off period is a
# fraction 1/mean_off of them; geometric off times).
CASES = [
    ("grid", 3.0, 1500.0, 3000.0, 1),
    ("grid", 8.0, 1500.0, 800.0, 1),
    ("points", 3.0, 1000.0, 800.0, 1),   # 480 random sites (count scaled below)
    ("grid", 3.0, 147.0, 3000.0, 0),
    ("lines", 5.0, 400.0, 1500.0, 0),
]


@pytest.mark.parametrize("kind,mean_on,mean_off,photons,dark", CASES)
def test_events_are_recovered_with_exactly_their_members(kind, mean_on, mean_off, photons, dark):
    count = {"grid": 40, "points": 480, "lines": 40}[kind]      # 480 sites each for grid and points
    sim = spotfit.simulate_smlm(kind, frames=6000, shape=(128, 128), count=count, mean_on=mean_on,
                                mean_off=mean_off, photons=photons, drift=None, seed=3)
    grouped = spotfit.link(sim.locs, max_dark_frames=dark, groups=True)
    frac = exact_fraction(sim.truth["event"], grouped["group"])
    n_events = sim.truth["event"].nunique()
    assert n_events > 1500
    print(kind, mean_on, mean_off, photons, dark, n_events, len(sim.locs), frac)
    assert frac >= 0.99, (frac, n_events)


def test_linked_positions_have_their_reported_uncertainty():
    sim = spotfit.simulate_smlm("grid", frames=8000, shape=(128, 128), count=40, mean_on=4.0, mean_off=1500.0,
                                drift=None, seed=5)
    grouped = spotfit.link(sim.locs, groups=True)
    events = spotfit.link(sim.locs)
    # True position of each linked event: its rows' site (all the same when linked right).
    truth = sim.truth.assign(group=grouped["group"]).groupby("group")[["x", "y"]].mean()
    ex = events["x"] - truth["x"]
    ey = events["y"] - truth["y"]
    rmse = np.sqrt(np.mean(np.r_[ex, ey] ** 2))
    reported = np.sqrt(np.mean(np.r_[events.uncertainty_x, events.uncertainty_y] ** 2))
    z = np.sqrt(np.mean(np.r_[ex / events.uncertainty_x, ey / events.uncertainty_y] ** 2))
    assert 0.9 <= rmse / reported <= 1.1, (rmse, reported)
    assert 0.9 <= z <= 1.1, z
    # An event is more precise than its best member (inverse-variance weighting).
    best = sim.locs.groupby(grouped["group"])["uncertainty_x"].min()
    assert (events.uncertainty_x[events.n > 1] < best[events.n > 1]).all()


def test_event_columns():
    sim = spotfit.simulate_smlm("grid", frames=3000, mean_on=4.0, mean_off=800.0, drift=None, seed=1)
    locs = sim.locs
    locs.attrs = {"spotfit": {"pixel_size_nm": 100.0}}
    ev = spotfit.link(locs)
    grouped = spotfit.link(locs, groups=True)
    g = grouped.groupby("group")
    assert list(ev.columns[:3]) == ["frame", "last_frame", "n"]
    np.testing.assert_array_equal(ev["frame"], g["frame"].min())
    np.testing.assert_array_equal(ev["last_frame"], g["frame"].max())
    np.testing.assert_array_equal(ev["n"], g.size())
    np.testing.assert_allclose(ev["photons"], g["photons"].sum())
    np.testing.assert_allclose(ev["background"], g["background"].mean())
    np.testing.assert_allclose(ev["sigma"], g["sigma"].mean())
    w = 1 / grouped["uncertainty_x"] ** 2
    by = grouped["group"]
    np.testing.assert_allclose(ev["x"], (grouped["x"] * w).groupby(by).sum() / w.groupby(by).sum())
    np.testing.assert_allclose(ev["uncertainty_x"], 1 / np.sqrt(w.groupby(grouped["group"]).sum()))
    assert ev["frame"].is_monotonic_increasing
    assert ev.attrs["spotfit"]["pixel_size_nm"] == 100.0
    # groups=True is the input table, same order and index, plus the group
    assert grouped.drop(columns="group").equals(locs)


def test_unsorted_frames_link_as_sorted():
    sim = spotfit.simulate_smlm("grid", frames=2000, mean_on=4.0, mean_off=500.0, drift=None, seed=2)
    locs = sim.locs
    shuffled = locs.sample(frac=1.0, random_state=0)
    a = spotfit.link(locs, groups=True)["group"]
    b = spotfit.link(shuffled, groups=True)["group"].loc[locs.index]
    # Same partition (numbering may differ only where frames tie, as rows of one frame change order).
    pairs = pd.DataFrame({"a": a.to_numpy(), "b": b.to_numpy()})
    assert pairs.groupby("a")["b"].nunique().max() == 1 and pairs.groupby("b")["a"].nunique().max() == 1
    def canonical(ev):
        return ev.sort_values(["frame", "x"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(canonical(spotfit.link(locs)), canonical(spotfit.link(shuffled)), rtol=1e-12)


def test_dark_frames_bridge_missed_detections():
    sim = spotfit.simulate_smlm("grid", frames=6000, shape=(128, 128), count=40, mean_on=6.0, mean_off=3000.0,
                                drift=None, seed=4)
    rng = np.random.default_rng(0)
    keep = rng.random(len(sim.locs)) > 0.05          # 5 % of detections missed
    locs, truth = sim.locs[keep], sim.truth[keep]
    bridged = exact_fraction(truth["event"], spotfit.link(locs, max_dark_frames=1, groups=True)["group"])
    strict = exact_fraction(truth["event"], spotfit.link(locs, max_dark_frames=0, groups=True)["group"])
    assert bridged >= 0.99 and strict < 0.95, (bridged, strict)


def test_fixed_radius_and_fallback_uncertainties():
    sim = spotfit.simulate_smlm("grid", frames=3000, mean_on=3.0, mean_off=1000.0, drift=None, seed=6)
    locs = sim.locs
    # No uncertainty columns: Mortensen's precision from photons, background, sigma (the same as simulated).
    bare = locs.drop(columns=["uncertainty_x", "uncertainty_y"])
    np.testing.assert_allclose(mortensen_uncertainty(bare), locs["uncertainty_x"], rtol=2e-3)
    assert exact_fraction(sim.truth["event"], spotfit.link(bare, groups=True)["group"]) >= 0.99
    # A fixed radius with no uncertainty at all: unweighted means, no uncertainty columns.
    xy = locs[["frame", "x", "y"]]
    ev = spotfit.link(xy, radius=0.25)
    assert "uncertainty_x" not in ev and len(ev) > 0
    assert exact_fraction(sim.truth["event"], spotfit.link(xy, radius=0.25, groups=True)["group"]) >= 0.98
    with pytest.raises(ValueError, match="radius"):
        spotfit.link(xy)


def test_one_frame_and_small_tables():
    one = pd.DataFrame({"frame": [5, 5, 5], "x": [1.0, 1.01, 3.0], "y": [1.0, 1.0, 1.0],
                        "uncertainty_x": 0.05, "uncertainty_y": 0.05})
    ev = spotfit.link(one)
    assert len(ev) == 3 and (ev["n"] == 1).all()       # one frame: each localization is its own event
    two = pd.DataFrame({"frame": [0, 1], "x": [1.0, 1.02], "y": [2.0, 2.0], "uncertainty_x": 0.05,
                        "uncertainty_y": 0.05})
    ev = spotfit.link(two)
    assert len(ev) == 1 and ev["n"].iloc[0] == 2 and ev["uncertainty_x"].iloc[0] == pytest.approx(0.05 / np.sqrt(2))


@pytest.mark.parametrize("change,match", [
    (lambda t: t.iloc[:0], "empty"),
    (lambda t: t.assign(x=np.where(np.arange(len(t)) == 3, np.nan, t.x)), "NaN"),
    (lambda t: t.assign(uncertainty_x=0.0), "uncertainty"),
    (lambda t: t.drop(columns="frame"), "frame"),
    (lambda t: t.assign(frame=t.frame + 0.5), "whole numbers"),
])
def test_bad_input_is_a_clear_error(change, match):
    sim = spotfit.simulate_smlm("grid", frames=200, drift=None, seed=1)
    with pytest.raises(ValueError, match=match):
        spotfit.link(change(sim.locs))


@pytest.mark.parametrize("column,value", [("x", np.inf), ("y", np.nan), ("uncertainty_x", -0.05),
                                          ("uncertainty_y", np.inf), ("uncertainty_x", np.nan), ("uncertainty_y", 1e-200)])
@pytest.mark.parametrize("radius", [None, 0.3])
def test_bad_rows_name_their_column(column, value, radius):
    # The core refuses the rows; the message names the column, counts the rows and gives the first one.
    sim = spotfit.simulate_smlm("grid", frames=300, drift=None, seed=1)
    locs = sim.locs.sample(frac=1.0, random_state=2)     # unsorted: the first row is in the caller's order
    bad = locs.copy()
    bad.iloc[[7, 40], bad.columns.get_loc(column)] = value
    what = "NaN or infinite" if column in ("x", "y") else "uncertainty"
    with pytest.raises(ValueError, match=f"{what}.*2 row.*first at row 7"):
        spotfit.link(bad, radius=radius)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 999, 1000, 1001, 5000, 12345, 70000, 300001])
def test_radius_quantile_is_numpys(n):
    rng = np.random.default_rng(n)
    ux = rng.gamma(2.0, 0.02, n)
    ties = np.round(rng.random(n), 2) + 0.01
    # The largest values where a strided sample misses them, and only where it sees them (then the rows above
    # its threshold are too few, and all rows are used).
    hidden = np.where(np.arange(n) % 64 == 0, 0.01, ux)
    spiked = np.where(np.arange(n) % 64 == 0, 1.0 + ux, 1e-3 * ux)
    for a, b in ((ux, ux), (ux, rng.gamma(2.0, 0.02, n)), (ties, ties), (ties, ux), (hidden, hidden), (spiked, ux),
                 (np.sort(ux), np.sort(ux)[::-1].copy())):
        for q in (RADIUS_QUANTILE, 0.5, 0.99):
            assert _quantile_of_larger(a, b, q) == np.quantile(np.maximum(a, b), q), (q, n)


def test_bad_options():
    sim = spotfit.simulate_smlm("grid", frames=200, drift=None, seed=1)
    with pytest.raises(ValueError):
        spotfit.link(sim.locs, radius=-1)
    with pytest.raises(ValueError):
        spotfit.link(sim.locs, max_dark_frames=-1)
    with pytest.raises(TypeError):
        spotfit.link(sim.locs.to_numpy())
    for threads in (0, -1, True, 1.5):
        with pytest.raises(ValueError, match="threads"):
            spotfit.link(sim.locs, threads=threads)
    assert GATE > 4


def test_same_events_for_any_thread_count():
    # Above 10^5 rows a second thread works ahead of the frame sweep: the same events, bit for bit.
    sim = spotfit.simulate_smlm("points", frames=1500, shape=(256, 256), count=8000, mean_on=3.0, mean_off=100.0,
                                drift=None, seed=4)
    locs = sim.locs
    assert len(locs) > 100_000
    for kw in ({}, {"radius": 0.2}, {"groups": True}):
        one = spotfit.link(locs, threads=1, **kw)
        pd.testing.assert_frame_equal(one, spotfit.link(locs, threads=2, **kw), check_exact=True)
