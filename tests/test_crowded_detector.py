"""The crowded-field detector (spotfit.ml.CrowdedDetector) and localize(..., detector=) (issue 19)."""
import pickle

import numpy as np
import pandas as pd
import pytest

import spotfit
from spotfit.evaluate import match_pairs
from spotfit.ml import CrowdedDetector, as_detector, crowded_training_set
from spotfit.ml.crowded import UPSAMPLE


def test_training_targets_hold_the_truth():
    frames, targets, truth = crowded_training_set(12, size=32, seed=5)
    assert frames.shape == (12, 32, 32) and targets.shape == (12, 64, 64, 3)
    for t, tr in zip(targets, truth):
        x, y = tr[:, 0], tr[:, 1]
        inside = (x >= -0.5) & (x < 31.5) & (y >= -0.5) & (y < 31.5)
        cells = {(int(np.floor((b + 0.5) * UPSAMPLE)), int(np.floor((a + 0.5) * UPSAMPLE)))
                 for a, b in zip(x[inside], y[inside])}
        assert int(t[..., 0].sum()) == len(cells)          # one mark per occupied cell
        r, c = np.nonzero(t[..., 0])
        px = (c + 0.5) / UPSAMPLE - 0.5 + t[r, c, 1]
        py = (r + 0.5) / UPSAMPLE - 0.5 + t[r, c, 2]
        d = np.hypot(px[:, None] - x[None], py[:, None] - y[None]).min(axis=1)
        assert d.max() < 1e-5                               # each mark decodes to an emitter's centre
        assert np.abs(t[..., 1:]).max() <= 0.5 / UPSAMPLE + 1e-6
    again = crowded_training_set(12, size=32, seed=5)[0]
    np.testing.assert_array_equal(frames, again)
    assert not np.array_equal(frames, crowded_training_set(12, size=32, seed=6)[0])


def test_training_set_bad_settings():
    with pytest.raises(ValueError, match="unknown training ranges"):
        crowded_training_set(2, photon=3)
    with pytest.raises(ValueError, match="n"):
        crowded_training_set(0)


@pytest.fixture(scope="module")
def tiny():
    return CrowdedDetector(channels=4).fit(steps=2, batch=2, validation=4)


def test_save_load_and_pickle_keep_the_outputs(tiny, tmp_path):
    frames = crowded_training_set(2, size=24, seed=1)[0]
    before = tiny.probabilities(frames)
    assert before.shape == (2, 48, 48, 3) and ((before[..., 0] >= 0) & (before[..., 0] <= 1)).all()
    tiny.save(tmp_path / "d.npz")
    for other in (CrowdedDetector.load(tmp_path / "d.npz"), as_detector(tmp_path / "d.npz"),
                  pickle.loads(pickle.dumps(tiny))):
        np.testing.assert_allclose(other.probabilities(frames), before, rtol=1e-5, atol=1e-6)
        assert other.threshold == tiny.threshold and other.channels == 4
    # odd sizes are padded for the network and cut back
    assert tiny.probabilities(frames[0, :21, :18]).shape == (1, 42, 36, 3)


def test_bad_detectors_and_input(tiny, tmp_path):
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a spotfit CrowdedDetector"):
        CrowdedDetector.load(tmp_path / "other.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot read"):
        CrowdedDetector.load(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="does not exist"):
        as_detector(str(tmp_path / "missing.npz"))
    with pytest.raises(TypeError, match="detector must be"):
        as_detector(42)
    with pytest.raises(ValueError, match="not trained"):
        CrowdedDetector().candidates(np.zeros((8, 8)))
    with pytest.raises(ValueError, match="threshold"):
        CrowdedDetector(threshold=1.5)
    with pytest.raises(ValueError, match="NaN"):
        tiny.probabilities(np.full((8, 8), np.nan))
    with pytest.raises(ValueError, match="at least 4x4"):
        tiny.probabilities(np.zeros((2, 3)))
    movie = np.full((2, 32, 32), 110, np.uint16)
    with pytest.raises(ValueError, match="max_emitters > 1"):
        spotfit.localize(movie, detector=tiny)
    with pytest.raises(TypeError, match="detector must be"):
        spotfit.localize(movie, detector=object(), max_emitters=4)
