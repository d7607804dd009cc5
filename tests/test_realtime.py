"""Real-time localization (spotfit.realtime): agreement with truth, with localize, and streaming."""
import numpy as np
import pandas as pd
import pytest

import spotfit
from spotfit.evaluate import match
from spotfit.ml import Localizer, localize_stream

CAM = spotfit.Camera(baseline=100, sensitivity=1.0)


@pytest.fixture(scope="module")
def movie():
    return spotfit.simulate(frames=20, shape=(128, 128), density=10, photons=(1000, 5000), seed=3,
                            min_distance=8, border=6, camera=CAM)


def test_process_matches_truth(movie):
    mov, truth = movie
    loc = Localizer(camera=CAM, estimator="ridge")
    parts = [loc.process(f) for f in mov]
    locs = pd.concat(parts, ignore_index=True)
    assert list(locs.columns) == ["frame", "x", "y", "photons", "background", "snr", "peak_row", "peak_col"]
    assert loc.frames_processed == 20 and np.array_equal(np.unique(locs.frame), np.arange(20))
    m = match(truth, locs, tolerance=1.0)
    # isolated bright spots: detection as localize; precision near the bound (~0.03 px here)
    assert m["recall"] > 0.95 and m["precision"] > 0.9
    assert m["rmse"] < 0.08 and abs(m["bias_x"]) < 0.02 and abs(m["bias_y"]) < 0.02
    ref = spotfit.localize(mov, camera=CAM)
    assert len(locs) == len(ref)                     # same detection step


def test_stream_equals_process_and_fit_path(movie):
    mov, truth = movie
    out = list(localize_stream(iter(mov[:5]), camera=CAM))
    assert len(out) == 5
    loc = Localizer(camera=CAM)
    for i, df in enumerate(out):
        assert (df.frame == i).all()
        pd.testing.assert_frame_equal(df, loc.process(mov[i]))
    fit = list(localize_stream(mov[:3], camera=CAM, estimator="mle", first_frame=10))
    assert [int(d.frame.iloc[0]) for d in fit] == [10, 11, 12] and "uncertainty_x" in fit[0]


def test_empty_frame_and_errors():
    loc = Localizer(camera=CAM)
    empty = loc.process(np.full((64, 64), 100, np.uint16))
    assert len(empty) == 0 and "x" in empty
    with pytest.raises(ValueError):
        loc.process(np.zeros((2, 8, 8)))
    with pytest.raises(TypeError):
        Localizer(estimator="forest")
    with pytest.raises(TypeError):
        Localizer(camera="cam")


def test_latency_is_recorded(movie):
    loc = Localizer(camera=CAM)
    loc.process(movie[0][0])
    assert 0 < loc.last_latency < 0.5
