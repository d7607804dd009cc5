"""3D by astigmatism: calibration from bead stacks, the direct z fit against simulated truth and the Cramér–Rao
bound, for several calibrations (issue 18)."""
import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import erf

import spotfit
from spotfit import AstigmaticCalibration
from spotfit.bounds import crlb

# Three calibrations that differ in every coefficient: the symmetric textbook case, and two with unequal
# in-focus widths, depths of focus and third/fourth-order terms (Huang et al. 2008's A, B).
CALIBRATIONS = {
    "symmetric": AstigmaticCalibration((1.3, -300.0, 400.0, 0.0, 0.0), (1.3, 300.0, 400.0, 0.0, 0.0), (-600.0, 600.0)),
    "skewed": AstigmaticCalibration((1.1, -250.0, 350.0, 0.1, 0.05), (1.25, 320.0, 420.0, -0.1, 0.02),
                                    (-600.0, 600.0)),
    "wide": AstigmaticCalibration((1.5, -200.0, 500.0, 0.2, 0.0), (1.4, 220.0, 480.0, -0.15, 0.05),
                                  (-650.0, 650.0)),
}


def boxes_of(cal, n, box, rng, z=(-500.0, 500.0), photons=(1000.0, 6000.0), background=(20.0, 30.0)):
    """n isolated astigmatic spots, one per box, with Poisson noise; truth in box coordinates."""
    c = (box - 1) / 2
    t = pd.DataFrame({"x": c + rng.uniform(-0.5, 0.5, n), "y": c + rng.uniform(-0.5, 0.5, n),
                      "z": rng.uniform(*z, n), "photons": rng.uniform(*photons, n),
                      "background": rng.uniform(*background, n)})
    sx, sy = cal.widths(t["z"].to_numpy())
    edges = np.arange(box + 1) - 0.5

    def axis(centre, s):
        return 0.5 * np.diff(erf((edges - centre[:, None]) / (np.sqrt(2) * s[:, None])), axis=1)
    mu = t["background"].to_numpy()[:, None, None] + t["photons"].to_numpy()[:, None, None] * \
        axis(t["y"].to_numpy(), sy)[:, :, None] * axis(t["x"].to_numpy(), sx)[:, None, :]
    return rng.poisson(mu).astype(np.float32), t


def bounds_at_truth(cal, t, box):
    out = {k: np.empty(len(t)) for k in ("x", "y", "z")}
    for i, r in enumerate(t.itertuples()):
        b = crlb(r.photons, r.background, box=box, model="astigmatic", x=r.x, y=r.y, z=r.z, calibration=cal)
        for k in out:
            out[k][i] = b[k]
    return out


# --- the fit ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CALIBRATIONS))
def test_mle_reaches_the_cramer_rao_bound_without_z_bias(name):
    """Acceptance: MLE z RMSE <= 1.05x the z bound for |z| <= 400 nm, x and y <= 1.05x theirs, and |mean z
    error| < 5 nm in every 100 nm bin of z in +-500 nm. 12,000 fits per calibration: the ratio of an RMSE to
    the bound is then known to ~1 % (1/sqrt(2n) for the 9,600 inside 400 nm), a bin's mean error to ~1-2 nm."""
    cal = CALIBRATIONS[name]
    box = cal.default_box()
    rng = np.random.default_rng(18)
    boxes, t = boxes_of(cal, 12000, box, rng)
    fit = spotfit.fit_spots(boxes, model="astigmatic", calibration=cal)
    ok = (fit["status"] == "converged").to_numpy()
    assert ok.mean() > 0.99, fit["status"].value_counts()
    err = {k: fit[k].to_numpy() - t[k].to_numpy() for k in ("x", "y", "z")}
    b = bounds_at_truth(cal, t, box)
    inner = ok & (np.abs(t["z"].to_numpy()) <= 400)
    for k in ("x", "y", "z"):
        ratio = np.sqrt(np.mean(err[k][inner] ** 2)) / np.sqrt(np.mean(b[k][inner] ** 2))
        assert ratio < 1.05, f"{name}: {k} RMSE / bound = {ratio:.3f}"
    bins = np.floor(t["z"].to_numpy() / 100).astype(int)
    for k in np.unique(bins):
        sel = ok & (bins == k)
        assert abs(err["z"][sel].mean()) < 5.0, f"{name}: z bias {err['z'][sel].mean():.1f} nm in bin {k * 100} nm"
    # The reported uncertainty is the bound at the estimate.
    med = np.median(fit["uncertainty_z"].to_numpy()[inner] / b["z"][inner])
    assert 0.95 < med < 1.05


def test_lsq_fits_z_too():
    cal = CALIBRATIONS["skewed"]
    box = cal.default_box()
    boxes, t = boxes_of(cal, 3000, box, np.random.default_rng(2))
    fit = spotfit.fit_spots(boxes, model="astigmatic", calibration=cal, estimator="lsq")
    ok = (fit["status"] == "converged").to_numpy() & (np.abs(t["z"].to_numpy()) <= 400)
    b = bounds_at_truth(cal, t[ok], box)
    ratio = np.sqrt(np.mean((fit["z"].to_numpy()[ok] - t["z"].to_numpy()[ok]) ** 2)) / np.sqrt(np.mean(b["z"] ** 2))
    assert 1.0 < ratio < 1.6     # unweighted least squares is not efficient: above the bound, not far


def test_noise_free_recovery_and_out_of_range():
    cal = CALIBRATIONS["wide"]
    box = cal.default_box()
    rng = np.random.default_rng(4)
    _, t = boxes_of(cal, 200, box, rng)
    c = (box - 1) / 2
    sx, sy = cal.widths(t["z"].to_numpy())
    edges = np.arange(box + 1) - 0.5
    ax = lambda m, s: 0.5 * np.diff(erf((edges - m[:, None]) / (np.sqrt(2) * s[:, None])), axis=1)  # noqa: E731
    mu = (20 + 3000 * ax(t["y"].to_numpy(), sy)[:, :, None] * ax(t["x"].to_numpy(), sx)[:, None, :])
    fit = spotfit.fit_spots(mu.astype(np.float32), model="astigmatic", calibration=cal, tolerance=1e-5)
    assert (fit["status"] == "converged").all()
    assert np.abs(fit["z"] - t["z"]).max() < 0.5
    assert np.abs(fit["x"] - t["x"]).max() < 2e-3
    narrow = cal.replace(z_range=(-200.0, 200.0))
    fit = spotfit.fit_spots(mu.astype(np.float32), model="astigmatic", calibration=narrow)
    far = np.abs(t["z"].to_numpy()) > 300
    assert (fit["status"][far] == "z_out_of_range").all()
    assert c > 0


def test_bound_matches_the_fitters_fisher_information():
    cal = CALIBRATIONS["skewed"]
    boxes, t = boxes_of(cal, 50, 15, np.random.default_rng(5))
    fit = spotfit.fit_spots(boxes, model="astigmatic", calibration=cal)
    for i in range(0, 50, 7):
        b = crlb(fit["photons"][i], fit["background"][i], box=15, model="astigmatic", x=fit["x"][i],
                 y=fit["y"][i], z=fit["z"][i], calibration=cal)
        assert b["z"] == pytest.approx(fit["uncertainty_z"][i], rel=2e-3)
        assert b["x"] == pytest.approx(fit["uncertainty_x"][i], rel=2e-3)


def test_localize_a_movie_end_to_end(tmp_path):
    cal = CALIBRATIONS["symmetric"]
    camera = spotfit.Camera(baseline=100, sensitivity=0.5)
    movie, truth = spotfit.simulate_astigmatic(cal, frames=40, shape=(96, 96), density=6, min_distance=20,
                                               camera=camera, seed=3)
    locs = spotfit.localize(movie, camera=camera, model="astigmatic", calibration=cal)
    assert list(locs.columns[:5]) == ["frame", "x", "y", "z", "uncertainty_z"]
    assert locs.attrs["spotfit"]["parameters"]["box"] == cal.default_box()
    assert "z_out_of_range" in locs["status"].cat.categories
    # Match to the truth (nearest within 1 px in the same frame).
    errs = []
    for f, g in locs[locs["status"] == "converged"].groupby("frame"):
        tt = truth[truth["frame"] == f]
        d = np.hypot(g["x"].to_numpy()[:, None] - tt["x"].to_numpy(), g["y"].to_numpy()[:, None] - tt["y"].to_numpy())
        j = d.argmin(axis=1)
        m = d[np.arange(len(g)), j] < 1
        errs.append(pd.DataFrame({"dz": g["z"].to_numpy()[m] - tt["z"].to_numpy()[j[m]],
                                  "bound": g["uncertainty_z"].to_numpy()[m]}))
    e = pd.concat(errs)
    assert len(e) > 0.9 * len(truth)
    assert np.sqrt(np.mean(e["dz"] ** 2)) < 1.3 * np.sqrt(np.mean(e["bound"] ** 2))
    # The same rows from a saved calibration, and for any thread count.
    path = cal.save(tmp_path / "cal.json")
    again = spotfit.localize(movie, camera=camera, model="astigmatic", calibration=str(path), threads=1)
    pd.testing.assert_frame_equal(locs.reset_index(drop=True), again.reset_index(drop=True))


def test_astigmatic_needs_a_calibration():
    with pytest.raises(ValueError, match="calibration"):
        spotfit.LocalizeOptions(model="astigmatic")
    with pytest.raises(TypeError, match="calibration"):
        spotfit.LocalizeOptions(model="astigmatic", calibration=3)
    with pytest.raises(ValueError, match="positive"):
        AstigmaticCalibration((1.3, 0.0, 400.0, 0.0, -1.0), (1.3, 0.0, 400.0, 0.0, 0.0), (-900.0, 900.0))


def test_2d_tables_have_no_z():
    movie, _ = spotfit.simulate(frames=2, shape=(64, 64), seed=1)
    assert "z" not in spotfit.localize(movie).columns


# --- the calibration ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(CALIBRATIONS))
def test_calibration_recovers_the_widths_within_one_percent(name, tmp_path):
    """Acceptance: the recovered widths match the simulated s(z) within 1 % over the calibrated range. The
    recovered z = 0 is the crossing of the widths; the truth's z is that plus the truth's crossing."""
    true = CALIBRATIONS[name]
    stack, truth = spotfit.simulate_beads(true, z_step_nm=20, beads=16, seed=7, shape=(128, 128))
    cal = spotfit.calibrate_astigmatism(stack, z_step_nm=20)
    z = np.linspace(*cal.z_range, 200)
    zc = true.crossing()
    for rec, tru in zip(cal.widths(z), true.widths(z + zc)):
        assert np.abs(rec / tru - 1).max() < 0.01
    assert abs(cal.crossing()) < 1.0
    assert cal.z_range[1] - cal.z_range[0] > 0.8 * (true.z_range[1] - true.z_range[0])
    assert cal.provenance["beads_used"] >= 14
    # Picasso's sign: the first plane has the most positive z, so x (in focus below the crossing here) is
    # widest at the first plane when c_x < c_y.
    again = AstigmaticCalibration.load(cal.save(tmp_path / "cal.json"))
    assert again == cal and again.provenance["beads_used"] == cal.provenance["beads_used"]
    json.loads((tmp_path / "cal.json").read_text())["z_sign"]


def test_calibration_rejects_an_outlier_bead():
    true = CALIBRATIONS["symmetric"]
    stack, truth = spotfit.simulate_beads(true, z_step_nm=25, beads=12, seed=8, shape=(128, 128))
    # One bead 300 nm higher than the others: its curve is shifted and must be rejected.
    odd, _ = spotfit.simulate_beads(true.replace(x=(1.3, 0.0, 400.0, 0.0, 0.0), y=(1.3, 600.0, 400.0, 0.0, 0.0)),
                                    z_step_nm=25, beads=1, seed=9, shape=(128, 128), background=0.0)
    stack = (stack.astype(np.int64) + odd.astype(np.int64) - 100).clip(0, 65535).astype(np.uint16)
    cal = spotfit.calibrate_astigmatism(stack, z_step_nm=25)
    z = np.linspace(*cal.z_range, 100)
    for rec, tru in zip(cal.widths(z), true.widths(z + true.crossing())):
        assert np.abs(rec / tru - 1).max() < 0.015


def test_bad_stacks_get_clear_errors():
    true = CALIBRATIONS["symmetric"]
    camera = spotfit.Camera()
    rng = np.random.default_rng(1)
    empty = camera.to_adu(rng.poisson(20.0, (40, 64, 64))).astype(np.uint16)
    with pytest.raises(ValueError, match="bead"):
        spotfit.calibrate_astigmatism(empty, z_step_nm=20)
    stack, _ = spotfit.simulate_beads(true, z_step_nm=20, beads=5, seed=2, shape=(96, 96))
    with pytest.raises(ValueError, match="planes"):
        spotfit.calibrate_astigmatism(stack[:5], z_step_nm=20)
    one = empty.copy()
    one[20] = stack[30, :64, :64]        # a bead at one plane only
    with pytest.raises(ValueError, match="one plane only|no bead"):
        spotfit.calibrate_astigmatism(one, z_step_nm=20)
    with pytest.raises(ValueError, match="z_step_nm"):
        spotfit.calibrate_astigmatism(stack, z_step_nm=0)


def test_from_picasso(tmp_path):
    yaml = pytest.importorskip("yaml")
    true = CALIBRATIONS["skewed"]
    z = np.linspace(-600, 600, 61)
    # Picasso's widths are those of a Gaussian sampled at pixel centres: sqrt(s^2 + 1/12) of the integrated one.
    sx, sy = (np.sqrt(w ** 2 + 1 / 12) for w in true.widths(z))
    (tmp_path / "p.yaml").write_text(yaml.safe_dump({
        "X Coefficients": [float(v) for v in np.polyfit(z, sx, 6)],
        "Y Coefficients": [float(v) for v in np.polyfit(z, sy, 6)],
        "Number of frames": 61, "Step size in nm": 20.0, "Magnification factor": 1.0}))
    cal = AstigmaticCalibration.from_picasso(tmp_path / "p.yaml")
    zz = np.linspace(*cal.z_range, 100)
    for rec, tru in zip(cal.widths(zz), true.widths(zz)):
        assert np.abs(rec / tru - 1).max() < 0.01
    assert cal.provenance["source"] == "picasso"
    with pytest.raises(ValueError, match="Picasso"):
        (tmp_path / "bad.yaml").write_text("a: 1\n")
        AstigmaticCalibration.from_picasso(tmp_path / "bad.yaml")


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    stack, _ = spotfit.simulate_beads(CALIBRATIONS["symmetric"], z_step_nm=40, beads=6, seed=3, shape=(96, 96))
    cal = spotfit.calibrate_astigmatism(stack, z_step_nm=40)
    cal.plot(tmp_path / "cal.png")
    assert (tmp_path / "cal.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- 3D through the package ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def locs3d():
    cal = CALIBRATIONS["skewed"]
    camera = spotfit.Camera(baseline=100, sensitivity=0.5)
    movie, _ = spotfit.simulate_astigmatic(cal, frames=10, shape=(64, 64), density=4, min_distance=20,
                                           camera=camera, seed=5)
    return spotfit.localize(movie, camera=camera, model="astigmatic", calibration=cal)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "thunderstorm", "picasso"])
def test_exports_carry_z(locs3d, fmt, tmp_path):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    if fmt == "picasso":
        pytest.importorskip("h5py")
    suffix = {"csv": ".csv", "parquet": ".parquet", "thunderstorm": ".csv", "picasso": ".hdf5"}[fmt]
    path = tmp_path / f"locs{suffix}"
    spotfit.io.save(locs3d, path, format=fmt, pixel_size_nm=130)
    back = spotfit.io.load(path, format=fmt, pixel_size_nm=130)
    np.testing.assert_allclose(back["z"], locs3d["z"], rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(back["uncertainty_z"], locs3d["uncertainty_z"], rtol=1e-6, atol=1e-3)
    if fmt == "thunderstorm":
        header = path.read_text().splitlines()[0]
        assert '"z [nm]"' in header and '"uncertainty_z [nm]"' in header
    if fmt == "picasso":
        import h5py
        with h5py.File(path) as f:
            assert {"z", "lpz"} <= set(f["locs"].dtype.names)


def test_render_by_z_and_side_view(locs3d):
    pytest.importorskip("matplotlib")
    from spotfit.render import render_side, render_z
    rgb = render_z(locs3d, zoom=4)
    assert rgb.shape == (256, 256, 3) and rgb.max() <= 1 and rgb.max() > 0
    side = render_side(locs3d, zoom=4, nm_per_pixel=20, z_range=(-600, 600))
    assert side.shape == (60, 256)
    inside = (locs3d["z"].abs() < 600).sum()
    assert side.sum() == pytest.approx(inside, abs=1)
    with pytest.raises(ValueError, match="no z"):
        render_z(locs3d.drop(columns="z"))


def test_cli_calibrate_and_localize(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    from spotfit.cli import main
    cal = CALIBRATIONS["symmetric"]
    cam = spotfit.Camera(baseline=100, sensitivity=0.5)
    beads, _ = spotfit.simulate_beads(cal, z_step_nm=25, beads=8, camera=cam, seed=1, shape=(96, 96))
    movie, _ = spotfit.simulate_astigmatic(cal, frames=5, shape=(64, 64), camera=cam, seed=2, min_distance=20)
    tifffile.imwrite(tmp_path / "beads.tif", beads, imagej=True, metadata={"axes": "TYX"})
    tifffile.imwrite(tmp_path / "movie.tif", movie, imagej=True, metadata={"axes": "TYX"})
    cam_args = ["--camera-baseline", "100", "--sensitivity", "0.5"]
    assert main(["calibrate-3d", str(tmp_path / "beads.tif"), "--z-step", "25", "-o", str(tmp_path / "cal.json")]
                + cam_args) == 0
    assert main(["localize", str(tmp_path / "movie.tif"), "--model", "astigmatic", "--z-calibration",
                 str(tmp_path / "cal.json"), "-o", str(tmp_path / "locs.csv")] + cam_args) == 0
    locs = spotfit.io.load(tmp_path / "locs.csv")
    assert "z" in locs and locs["z"].notna().all()
    # Too few planes: a usage error (exit 2), not a traceback.
    tifffile.imwrite(tmp_path / "few.tif", beads[:4], imagej=True, metadata={"axes": "TYX"})
    assert main(["calibrate-3d", str(tmp_path / "few.tif"), "--z-step", "25", "-o", str(tmp_path / "c.json")]) == 2


def test_dask_gives_the_same_rows():
    da = pytest.importorskip("dask.array")
    cal = CALIBRATIONS["wide"]
    cam = spotfit.Camera(baseline=100, sensitivity=0.5)
    movie, _ = spotfit.simulate_astigmatic(cal, frames=12, shape=(64, 64), camera=cam, seed=2, min_distance=20)
    eager = spotfit.localize(movie, camera=cam, model="astigmatic", calibration=cal)
    lazy = spotfit.localize(da.from_array(movie, chunks=(5, 64, 64)), camera=cam, model="astigmatic",
                            calibration=cal).compute()
    pd.testing.assert_frame_equal(eager.reset_index(drop=True), lazy.reset_index(drop=True), check_categorical=False)
