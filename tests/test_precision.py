"""spotfit.nena and spotfit.frc on simulated SMLM data (spotfit.simulate_smlm) with known precision."""
import json
import os
import subprocess

import numpy as np
import pandas as pd
import pytest

import spotfit


# (photons, mean_on, mean_off, structure): precisions ~0.023 and ~0.053 px, blinks of 3-6 frames, sparse and
# dense. partial_frames=False: every localization has the same precision, which NeNA's single-scale law
# assumes; the median precision is then the precision.
@pytest.mark.parametrize("photons,mean_on,mean_off,kind", [(3000.0, 4.0, 400.0, "grid"), (800.0, 3.0, 200.0, "grid"),
                                                            (1500.0, 6.0, 1000.0, "points")])
def test_nena_is_within_5_percent_of_the_true_precision(photons, mean_on, mean_off, kind):
    sim = spotfit.simulate_smlm(kind, frames=4000, shape=(128, 128), count=40 if kind == "grid" else 400,
                                mean_on=mean_on, mean_off=mean_off, photons=photons, drift=None, seed=11,
                                partial_frames=False)
    true = sim.locs["uncertainty_x"].median()
    res = spotfit.nena(sim.locs)
    assert res.n_pairs > 2000
    assert res.precision == pytest.approx(true, rel=0.05), (res.precision, true)
    assert res.uncertainty_scale == pytest.approx(1.0, abs=0.05)
    # the curve: a density on [0, max_distance] and its fit
    assert np.trapezoid(res.curve["density"], res.curve["distance"]) == pytest.approx(1.0, rel=0.05)
    assert np.abs(res.curve["density"] - res.curve["fit"]).max() < 0.25 * res.curve["density"].max()


@pytest.mark.parametrize("photons,mean_on", [(3000.0, 4.0), (800.0, 6.0)])
def test_nena_with_a_spread_of_precisions(photons, mean_on):
    """First and last frames of a blink are dimmer (10-100 % of the photons): precisions vary ~3x. The
    single-scale NeNA then lies above the median (measured 1.11-1.16x: the wide pairs pull it); the fit of the
    reported uncertainties' scale gives the median within 5 %."""
    sim = spotfit.simulate_smlm("grid", frames=4000, shape=(128, 128), count=40, mean_on=mean_on, mean_off=400.0,
                                photons=photons, drift=None, seed=12)
    true = sim.locs["uncertainty_x"].median()
    res = spotfit.nena(sim.locs)
    assert res.median_precision == pytest.approx(true, rel=0.05)
    assert true < res.precision < np.sqrt((sim.locs["uncertainty_x"] ** 2).mean())


def test_nena_finds_a_wrong_uncertainty_scale():
    sim = spotfit.simulate_smlm("grid", frames=3000, shape=(96, 96), count=25, mean_on=4.0, mean_off=300.0,
                                drift=None, seed=13)
    locs = sim.locs.assign(uncertainty_x=sim.locs.uncertainty_x * 0.5, uncertainty_y=sim.locs.uncertainty_y * 0.5)
    res = spotfit.nena(locs)
    assert res.uncertainty_scale == pytest.approx(2.0, rel=0.05)


def test_nena_bad_input():
    sim = spotfit.simulate_smlm("grid", frames=100, drift=None, seed=1)
    with pytest.raises(ValueError, match="empty"):
        spotfit.nena(sim.locs.iloc[:0])
    with pytest.raises(ValueError, match="one frame"):
        spotfit.nena(sim.locs[sim.locs.frame == sim.locs.frame.iloc[0]])
    with pytest.raises(ValueError, match="NaN"):
        spotfit.nena(sim.locs.assign(y=np.nan))
    with pytest.raises(ValueError, match="too few"):
        spotfit.nena(sim.locs.iloc[:15])


def frc_sim(photons, seed=21, **kw):
    return spotfit.simulate_smlm("grid", frames=3000, shape=(64, 64), count=12, mean_on=4.0, mean_off=200.0,
                                 photons=photons, drift=None, seed=seed, **kw)


def test_frc_follows_the_precision():
    """A better precision gives a better FRC resolution, and the resolution lies where the structure and the
    precision put it: above the localization precision, below the 60 nm site spacing (100 nm pixels)."""
    sim = frc_sim(3000.0)
    fine = spotfit.frc(sim.locs, pixel_size_nm=100.0)
    coarse = spotfit.frc(frc_sim(300.0).locs, pixel_size_nm=100.0)
    prec_nm = sim.locs.uncertainty_x.median() * 100
    assert prec_nm < fine.resolution_nm < 60.0
    assert coarse.resolution_nm > 1.5 * fine.resolution_nm
    c = fine.curve
    assert c["frc"].iloc[1] > 0.9 and c["frequency"].is_monotonic_increasing
    assert fine.threshold == pytest.approx(1 / 7)
    assert fine.block_frames == 150 and min(fine.n_locs) > 0.4 * sum(fine.n_locs)


def test_frc_blocks_keep_a_blink_on_one_side():
    """Only the random split can put the two halves of one blink in both images; with blocks of frames every
    event's localizations stay in one half except those crossing a block boundary."""
    sim = frc_sim(3000.0)
    res = spotfit.frc(sim.locs, pixel_size_nm=100.0, block_frames=100)
    half = ((sim.locs.frame - sim.locs.frame.min()) // 100) % 2
    split_events = pd.Series(half.to_numpy()).groupby(sim.truth["event"].to_numpy()).nunique()
    assert (split_events > 1).mean() < 0.05
    assert np.isfinite(res.resolution_nm)


def test_frc_bad_input():
    sim = frc_sim(3000.0)
    with pytest.raises(ValueError, match="pixel size"):
        spotfit.frc(sim.locs)
    with pytest.raises(ValueError, match="two blocks"):
        spotfit.frc(sim.locs[sim.locs.frame < 10], pixel_size_nm=100.0)
    with pytest.raises(ValueError, match="empty"):
        spotfit.frc(sim.locs.iloc[:0], pixel_size_nm=100.0)
    with pytest.raises(ValueError, match="NaN"):
        spotfit.frc(sim.locs.assign(x=np.nan), pixel_size_nm=100.0)
    with pytest.raises(ValueError, match="nm"):
        spotfit.frc(sim.locs, pixel_size_nm=0.1)


PICASSO_FRC = '''
import io as _io, json, sys
_o, _e = sys.stdout, sys.stderr
sys.stdout = sys.stderr = _io.StringIO()     # Picasso's imports print about audio backends
from picasso import postprocess
sys.stdout, sys.stderr = _o, _e
import numpy as np, pandas as pd
t = pd.read_csv(sys.argv[1])
px = float(sys.argv[2])
f32 = np.float32
locs = pd.DataFrame({"frame": t.frame.astype(np.uint32), "x": t.x.astype(f32), "y": t.y.astype(f32),
                     "photons": t.photons.astype(f32), "sx": t.sigma.astype(f32), "sy": t.sigma.astype(f32),
                     "bg": t.background.astype(f32), "lpx": t.uncertainty_x.astype(f32),
                     "lpy": t.uncertainty_y.astype(f32)})
info = [{"Frames": int(t.frame.max()) + 1, "Height": 64, "Width": 64, "Pixelsize": px}]
_, lp = postprocess.nena(locs.copy(), info)
vp = ((float(t.y.min()), float(t.x.min())), (float(t.y.max()), float(t.x.max())))
r = postprocess.frc(locs, info, vp)
print(json.dumps({"nena": float(lp), "resolution": r["resolution"], "bin_nm": float(lp) / 2 * px}))
'''


def test_frc_agrees_with_picasso(peers_python, tmp_path):
    """Picasso 0.11.3's postprocess.frc on the same table (its random split of the rows, its NeNA/2 render
    pixel): spotfit's frc with the same split and pixel agrees within 10 %; the block split differs by what a
    blink on both sides adds (measured: < 5 % here, blinks of 4 frames in blocks of 150)."""
    sim = frc_sim(1000.0)   # Picasso renders at NeNA / 2: coarser precision keeps its image (and time) small
    csv = tmp_path / "locs.csv"
    sim.locs.to_csv(csv, index=False)
    res = subprocess.run([peers_python, "-c", PICASSO_FRC, str(csv), "100"], capture_output=True, text=True,
                         env=dict(os.environ, MPLBACKEND="Agg"), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    theirs = json.loads(res.stdout.strip().splitlines()[-1])
    ours = spotfit.frc(sim.locs, pixel_size_nm=100.0, split="random", render_pixel_nm=theirs["bin_nm"])
    blocks = spotfit.frc(sim.locs, pixel_size_nm=100.0, render_pixel_nm=theirs["bin_nm"])
    print("FRC nm: picasso", theirs["resolution"], "spotfit random", ours.resolution_nm, "blocks", blocks.resolution_nm)
    assert ours.resolution_nm == pytest.approx(theirs["resolution"], rel=0.10)
    assert blocks.resolution_nm == pytest.approx(theirs["resolution"], rel=0.10)
    assert spotfit.nena(sim.locs).precision == pytest.approx(theirs["nena"], rel=0.05)
