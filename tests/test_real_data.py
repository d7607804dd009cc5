"""Real recordings from ../shared/data (skipped with a reason when that folder is absent)."""
import os

import numpy as np
import pytest
import tifffile

import spotfit


# rapidSTORM's pixel size on this crop: its header's Position "max" is (128 - 1) x pixel size = 16954.5 nm.
RAPIDSTORM_PIXEL_NM = 16954.5 / 127


def _rapidstorm_pairs(shared_data, **options):
    """(spotfit row, rapidSTORM row in spotfit's pixels) for each rapidSTORM localization in the crop's 5 frames."""
    folder = os.path.join(shared_data, "locan-dstorm")
    ref = spotfit.io.load(os.path.join(folder, "rapidSTORM_from_images.txt"), pixel_size_nm=RAPIDSTORM_PIXEL_NM)
    movie = tifffile.imread(os.path.join(folder, "images.tif"))
    ref = ref[ref["frame"] < len(movie)]
    assert len(ref) == 4
    locs = spotfit.localize(movie, camera=spotfit.Camera(baseline=520, sensitivity=1.0), psf_sigma=1.3, **options)
    pairs = []
    for _, r in ref.iterrows():
        here = locs[locs.frame == r.frame]
        assert len(here), r
        pairs.append((here.iloc[int(np.argmin(np.hypot(here.x - r.x, here.y - r.y)))], r))
    return pairs


def test_locan_dstorm_rapidstorm_references_found_within_1px(shared_data):
    for ours, theirs in _rapidstorm_pairs(shared_data):
        assert np.hypot(ours.x - theirs.x, ours.y - theirs.y) <= 1.0, (ours, theirs)


@pytest.mark.parametrize("model", ["gauss", "elliptical"])
def test_locan_dstorm_least_squares_agrees_with_rapidstorm_within_the_uncertainty(shared_data, model):
    """Issue 16.8: rapidSTORM fits by least squares with pixel i's centre at i x 133.5 nm (its source and header),
    so spotfit's LSQ fit of the same spots lands within the Cramér–Rao bound of it (measured: <= 3.4 nm, bounds
    2.3-5.1 nm). The 20-60 nm offsets seen before came from reading rapidSTORM as corner-origin with 133 nm pixels."""
    for ours, theirs in _rapidstorm_pairs(shared_data, estimator="lsq", model=model):
        assert abs(ours.x - theirs.x) < ours.uncertainty_x and abs(ours.y - theirs.y) < ours.uncertainty_y, \
            (ours, theirs)


def test_locan_rapidstorm_file_reads_as_the_manual_conversion(shared_data):
    folder = os.path.join(shared_data, "locan-dstorm")
    ref = np.loadtxt(os.path.join(folder, "rapidSTORM_from_images.txt"), comments="#")
    df = spotfit.io.load(os.path.join(folder, "rapidSTORM_from_images.txt"), pixel_size_nm=RAPIDSTORM_PIXEL_NM)
    assert len(df) == len(ref) > 0
    np.testing.assert_allclose(df["x"], ref[:, 0] / RAPIDSTORM_PIXEL_NM)
    np.testing.assert_allclose(df["y"], ref[:, 1] / RAPIDSTORM_PIXEL_NM)
    np.testing.assert_array_equal(df["frame"], ref[:, 2].astype(np.int64))


PICASSO_FIT = '''
import io as _io, json, sys
_o, _e = sys.stdout, sys.stderr
sys.stdout = sys.stderr = _io.StringIO()     # Picasso's imports print about audio backends
from picasso import io, localize
sys.stdout, sys.stderr = _o, _e
import numpy as np
movie, _ = io.load_movie(sys.argv[1])
camera = {"Baseline": 0, "Sensitivity": 1, "Gain": 1, "Qe": 1, "Pixelsize": 160}
ids, _ = localize.identify(movie, 5000, 7, threaded=False)
out = {}
for method in ("gaussmle", "gausslq"):
    locs, _ = localize.fit(movie, camera_info=camera, identifications=ids, box=7, fitting_method=method,
                           multiprocess=False)
    out[method] = {k: np.asarray(locs[k]).tolist() for k in ("frame", "x", "y", "lpx", "lpy")}
print(json.dumps(out))
'''


def test_picasso_fits_of_its_dnapaint_movie_are_matched(shared_data, peers_python):
    """Issue 16 acceptance: Picasso 0.11.3's own identify + fit of its DNA-PAINT test movie, run now in the peers'
    venv, against spotfit on the same movie and camera: every one of its localizations matched within 0.002 px
    (measured: 30/30, max 0.0013 px), with the same uncertainties for the MLE (median ratio 1.000).
    Picasso's stored testdata_locs.hdf5 is not the reference: it was written by an older gaussmle with a loose
    stopping rule (its sigmas ~2 % larger), and only 25-29 of 30 rows agree to 0.002 px."""
    import json
    import subprocess
    raw = os.path.join(shared_data, "picasso-dnapaint", "testdata.raw")
    res = subprocess.run([peers_python, "-c", PICASSO_FIT, raw], capture_output=True, text=True,
                         env=dict(os.environ, MPLBACKEND="Agg"), timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    theirs = json.loads(res.stdout.strip().splitlines()[-1])
    movie = spotfit.io.open_movie(raw)
    for method, estimator in (("gaussmle", "mle"), ("gausslq", "lsq")):
        ref = theirs[method]
        assert len(ref["x"]) >= 25
        locs = spotfit.localize(movie, camera=spotfit.Camera(baseline=0), box=7, estimator=estimator)
        ratios = []
        for frame, x, y, lpx, lpy in zip(ref["frame"], ref["x"], ref["y"], ref["lpx"], ref["lpy"]):
            here = locs[locs.frame == frame]
            assert len(here), (method, frame, x, y)
            ours = here.iloc[int(np.argmin(np.hypot(here.x - x, here.y - y)))]
            assert max(abs(ours.x - x), abs(ours.y - y)) < 0.002, (method, ours, x, y)
            ratios += [ours.uncertainty_x / lpx, ours.uncertainty_y / lpy]
        if method == "gaussmle":
            # Both are the Cramér–Rao bound at the fitted parameters; single rows differ by the fits' photons and
            # sigma (measured 0.97-1.03). Picasso's gausslq reports a different bound than our LSQ one (~0.84).
            assert np.median(ratios) == pytest.approx(1, abs=0.01) and 0.95 < min(ratios) <= max(ratios) < 1.05
