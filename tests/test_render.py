"""Tests for spotfit.render."""

import sys

import numpy as np
import pandas as pd
import pytest
import tifffile

from spotfit import render as sr


def locs_at(xs, ys, unc=None, **attrs):
    df = pd.DataFrame({"frame": np.zeros(len(xs), np.int64), "x": np.asarray(xs, float),
                       "y": np.asarray(ys, float), "photons": np.full(len(xs), 1000.0)})
    if unc is not None:
        df["uncertainty_x"] = np.broadcast_to(np.asarray(unc, float), len(xs)).copy()
        df["uncertainty_y"] = df["uncertainty_x"]
    if attrs:
        df.attrs["spotfit"] = attrs
    return df


def random_locs(n=500, rows=20, cols=30, seed=0):
    rng = np.random.default_rng(seed)
    df = locs_at(rng.uniform(0, cols - 1, n), rng.uniform(0, rows - 1, n),
                 rng.uniform(0.02, 0.15, n), movie_shape=(10, rows, cols),
                 pixel_size_nm=100.0)
    df["uncertainty_y"] = rng.uniform(0.02, 0.15, n)
    return df


def test_histogram_counts_every_localization():
    df = random_locs()
    img = sr.render(df, zoom=8)
    assert img.dtype == np.float32 and img.shape == (160, 240)
    assert img.sum() == len(df)
    assert img.max() >= 1 and np.all(img == np.round(img))


@pytest.mark.parametrize("x, y, zoom, expected", [
    (2.0, 3.0, 10, (35, 25)),      # pixel centre (3, 2) -> middle of its 10x10 block
    (2.06, 3.0, 10, (35, 25)),     # rendered pixel 25 spans x in [2.0, 2.1)
    (2.12, 3.0, 10, (35, 26)),
    (1.96, 3.0, 10, (35, 24)),
    (-0.5, -0.5, 10, (0, 0)),      # the image corner
    (0.0, 0.0, 1, (0, 0)),
    (4.49, 2.51, 1, (3, 4)),
    (4.49, 2.51, 4, (12, 19)),
])
def test_histogram_puts_spot_in_right_pixel(x, y, zoom, expected):
    img = sr.render(locs_at([x], [y]), zoom=zoom, shape=(6, 8))
    assert img.shape == (6 * zoom, 8 * zoom)
    assert img.sum() == 1
    assert np.unravel_index(np.argmax(img), img.shape) == expected


def test_histogram_skips_outside_and_nan():
    df = locs_at([1.0, -0.6, 7.6, np.nan, 3.0], [1.0, 1.0, 1.0, 2.0, 5.6])
    img = sr.render(df, zoom=2, shape=(6, 8))
    assert img.sum() == 1 and img[3, 3] == 1


def test_shape_from_attrs_and_from_coordinates():
    df = locs_at([1.0, 2.0], [1.0, 3.0], movie_shape=(5, 12, 16))
    assert sr.render(df, zoom=3).shape == (36, 48)
    df.attrs = {}
    # smallest frame holding pixel (row 3, col 2): 4 rows, 3 cols
    assert sr.render(df, zoom=3).shape == (12, 9)
    assert sr.render(df, zoom=2, shape=(7, 9)).shape == (14, 18)


def test_pixel_size_sets_zoom():
    df = random_locs()
    np.testing.assert_array_equal(sr.render(df, pixel_size=20.0), sr.render(df, zoom=5))
    df.attrs = {}
    with pytest.raises(ValueError, match="pixel_size_nm"):
        sr.render(df, pixel_size=20.0)


def test_gaussian_conserves_mass_and_position():
    df = locs_at([10.0, 20.3], [8.0, 5.55], unc=[0.2, 0.13])
    img = sr.render(df, zoom=10, shape=(16, 30), method="gaussian")
    assert img.dtype == np.float32
    assert img.sum() == pytest.approx(2.0, rel=1e-5)
    # first spot alone: centroid at (x + 0.5) * zoom in pixel-edge units
    one = sr.render(df.iloc[:1], zoom=10, shape=(16, 30), method="gaussian")
    rr, cc = np.indices(one.shape) + 0.5
    cy, cx = (one * rr).sum() / one.sum(), (one * cc).sum() / one.sum()
    assert cx == pytest.approx(105.0, abs=0.02) and cy == pytest.approx(85.0, abs=0.02)
    # its spread is the uncertainty (2 rendered px) plus pixelation 1/12
    var_x = (one * (cc - cx) ** 2).sum() / one.sum()
    assert np.sqrt(var_x) == pytest.approx(np.sqrt(2.0 ** 2 + 1 / 12), rel=0.03)


def test_gaussian_random_mass_and_agreement_with_histogram():
    df = random_locs(n=2000)
    g = sr.render(df, zoom=4, method="gaussian")
    h = sr.render(df, zoom=4)
    assert g.shape == h.shape
    assert g.sum() == pytest.approx(len(df), rel=2e-3)   # a little leaves at borders
    assert g.sum() <= len(df) * (1 + 1e-6)
    # blurred and binned images agree at coarse scale
    def coarse(im):
        return im.reshape(10, 8, 15, 8).sum(axis=(1, 3))
    assert np.corrcoef(coarse(g).ravel(), coarse(h).ravel())[0, 1] > 0.95


def test_gaussian_sigma_floor_and_fixed_sigma():
    df = locs_at([3.0], [3.0], unc=[0.0])
    img = sr.render(df, zoom=10, shape=(6, 6), method="gaussian", min_sigma=1.0)
    assert img.sum() == pytest.approx(1.0, rel=1e-6) and img.max() < 0.2
    df["uncertainty_x"] = np.nan
    assert np.isfinite(sr.render(df, zoom=10, shape=(6, 6), method="gaussian")).all()
    wide = sr.render(locs_at([3.0], [3.0]), zoom=10, shape=(6, 6), method="gaussian",
                     sigma=0.5)
    assert wide.sum() == pytest.approx(1.0, rel=1e-5)
    assert (wide > 1e-4).sum() > 200
    with pytest.raises(ValueError, match="uncertainty"):
        sr.render(locs_at([3.0], [3.0]), method="gaussian")


def test_render_errors():
    with pytest.raises(ValueError, match="method"):
        sr.render(locs_at([1.0], [1.0]), method="splat")
    with pytest.raises(ValueError, match="zoom"):
        sr.render(locs_at([1.0], [1.0]), zoom=0)
    with pytest.raises(ValueError, match="column"):
        sr.render(pd.DataFrame({"x": [1.0]}))
    assert sr.render(locs_at([], [])).shape == (10, 10)


def read_png(path):
    """8-bit RGB(A) values of a PNG (matplotlib's reader)."""
    import matplotlib.image
    return np.round(matplotlib.image.imread(path, format="png") * 255).astype(int)


def test_save_image_png_and_tiff(tmp_path):
    img = np.zeros((7, 9), np.float32)
    img[2, 3], img[4, 5], img[6, 8] = 10.0, 5.0, 20.0
    sr.save_image(img, tmp_path / "a.png", vmax=10.0)
    px = read_png(tmp_path / "a.png")
    assert px.shape[:2] == (7, 9)
    grey = px[..., 0]
    assert (px[..., 1] == grey).all() and (px[..., 2] == grey).all()      # grey scale by default
    assert grey[2, 3] == 255 and abs(grey[4, 5] - 128) <= 1 and grey[6, 8] == 255 and grey[0, 0] == 0
    sr.save_image(img, tmp_path / "a.tif")
    back = tifffile.imread(tmp_path / "a.tif")
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, img)
    with pytest.raises(ValueError, match="suffix"):
        sr.save_image(img, tmp_path / "a.jpg")
    with pytest.raises(ValueError, match="2D"):
        sr.save_image(np.zeros((2, 2, 2)), tmp_path / "b.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "a.tif"]


def test_save_image_colormap(tmp_path):
    img = np.arange(12, dtype=np.float32).reshape(3, 4)
    sr.save_image(img, tmp_path / "c.png", cmap="magma")
    px = read_png(tmp_path / "c.png")
    assert px.shape[:2] == (3, 4)
    assert not (px[..., 0] == px[..., 1]).all()                             # coloured, not grey


def test_save_png_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.image", None)
    with pytest.raises(ImportError, match=r"spotfit\[plot\]"):
        sr.save_image(np.ones((3, 3)), tmp_path / "c.png")
    assert list(tmp_path.iterdir()) == []


def test_save_image_atomic(tmp_path, monkeypatch):
    def broken(path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"II*\0partial")
        raise OSError("disk full")
    monkeypatch.setattr(tifffile, "imwrite", broken)
    with pytest.raises(OSError, match="disk full"):
        sr.save_image(np.ones((3, 3)), tmp_path / "x.tif")
    assert list(tmp_path.iterdir()) == []


def test_absurd_zoom_is_a_clear_error_not_an_allocation_failure():
    with pytest.raises(ValueError, match="lower zoom"):
        sr.render(pd.DataFrame({"x": [1.0], "y": [2.0]}), zoom=100000, shape=(256, 256))
