"""Tests for spotfit.io: movie reading and localization file formats."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

import spotfit

from spotfit import io as sio

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
PICASSO = SHARED / "picasso-dnapaint"
STATUS = ["converged", "max_iterations", "singular", "out_of_box", "not_fitted"]


# ---------------------------------------------------------------- fixtures

def make_locs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    f32 = np.float32
    df = pd.DataFrame({
        "frame": np.sort(rng.integers(0, 50, n)).astype(np.int64),
        "x": rng.uniform(0, 31, n),
        "y": rng.uniform(0, 23, n),
        "photons": rng.uniform(100, 5000, n).astype(f32),
        "background": rng.uniform(1, 20, n),
        "sigma_x": rng.uniform(0.9, 1.4, n),
        "sigma_y": rng.uniform(0.9, 1.4, n),
        "uncertainty_x": rng.uniform(0.01, 0.1, n),
        "uncertainty_y": rng.uniform(0.01, 0.1, n),
        "uncertainty_photons": rng.uniform(5, 50, n).astype(f32),
        "uncertainty_background": rng.uniform(0.1, 1, n),
        "uncertainty_sigma_x": rng.uniform(0.01, 0.05, n),
        "uncertainty_sigma_y": rng.uniform(0.01, 0.05, n),
        "loglik": rng.normal(-30, 5, n),
        "iterations": rng.integers(1, 20, n).astype(np.int32),
        "status": pd.Categorical(rng.choice(STATUS, n), categories=STATUS),
        "peak_row": rng.integers(0, 24, n).astype(np.int32),
        "peak_col": rng.integers(0, 32, n).astype(np.int32),
    })
    df.loc[2, "x"] = np.nan          # a failed fit
    df.loc[3, "photons"] = np.inf
    df.loc[4, "status"] = np.nan
    df.loc[5, "y"] = 0.1             # not exactly representable
    df.attrs["spotfit"] = {
        "version": "0.1.0",
        "camera": {"baseline": 100.0, "sensitivity": 0.46, "em_gain": 1.0,
                   "offset_map": np.arange(4, dtype=np.float32).reshape(2, 2)},
        "parameters": {"box_size": 7, "method": "mle"},
        "movie_shape": (50, 24, 32),
        "pixel_size_nm": 130.0,
    }
    return df


def assert_attrs_equal(a, b):
    ma, mb = a.attrs["spotfit"], b.attrs["spotfit"]
    assert set(ma) == set(mb)
    assert ma["movie_shape"] == mb["movie_shape"] and isinstance(mb["movie_shape"], tuple)
    oa, ob = ma["camera"]["offset_map"], mb["camera"]["offset_map"]
    assert ob.dtype == oa.dtype and np.array_equal(oa, ob)
    assert {k: v for k, v in ma["camera"].items() if k != "offset_map"} == \
        {k: v for k, v in mb["camera"].items() if k != "offset_map"}
    assert ma["parameters"] == mb["parameters"] and ma["pixel_size_nm"] == mb["pixel_size_nm"]


def leftovers(folder):
    return [p.name for p in Path(folder).iterdir() if p.name.endswith(".tmp")]


# ------------------------------------------------------- native formats

@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_native_round_trip_is_exact(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    locs = make_locs()
    path = sio.save(locs, tmp_path / f"locs{suffix}")
    back = sio.load(path)
    pd.testing.assert_frame_equal(back, locs, check_exact=True)
    assert back["status"].cat.categories.tolist() == STATUS
    assert back["y"].dtype == np.float64 and back["photons"].dtype == np.float32
    assert_attrs_equal(locs, back)
    assert leftovers(tmp_path) == []


def test_minimal_table_round_trips(tmp_path):
    locs = pd.DataFrame({"frame": np.array([0, 1], np.int64), "x": [1.5, 2.5],
                         "y": np.array([3.25, 4.0], np.float32), "photons": [10.0, 20.0]})
    for name in ("m.csv", "m.parquet"):
        if name.endswith("parquet"):
            pytest.importorskip("pyarrow")
        back = sio.load(sio.save(locs, tmp_path / name))
        pd.testing.assert_frame_equal(back, locs, check_exact=True)
        assert back.attrs == {}


@pytest.mark.parametrize("name", ["e.csv", "e.parquet"])
def test_empty_table_round_trips(tmp_path, name):
    if name.endswith("parquet"):
        pytest.importorskip("pyarrow")
    empty = make_locs().iloc[:0].copy()
    empty.attrs = make_locs().attrs
    back = sio.load(sio.save(empty, tmp_path / name))
    pd.testing.assert_frame_equal(back, empty, check_exact=True)
    assert back["status"].cat.categories.tolist() == STATUS   # unused ones kept
    assert_attrs_equal(empty, back)


def test_csv_layout_is_documented_header(tmp_path):
    path = sio.save(make_locs(), tmp_path / "l.csv")
    lines = path.read_text().splitlines()
    assert lines[0] == "# spotfit localizations csv v1"
    meta = json.loads(lines[1][2:])
    assert meta["dtypes"]["frame"] == "int64" and meta["dtypes"]["photons"] == "float32"
    assert meta["categories"]["status"] == STATUS
    assert lines[2].split(",")[:3] == ["frame", "x", "y"]


def test_plain_csv_without_header_loads(tmp_path):
    p = tmp_path / "plain.csv"
    p.write_text("frame,x,y,photons\n0,1.5,2.5,100\n3,4.0,5.0,200\n")
    df = sio.load(p)
    assert df["frame"].tolist() == [0, 3] and df["x"].tolist() == [1.5, 4.0]


def test_parquet_schema_metadata_holds_attrs(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    path = sio.save(make_locs(), tmp_path / "l.parquet")
    meta = pq.read_schema(path).metadata
    assert json.loads(meta[b"spotfit"])["spotfit"]["pixel_size_nm"] == 130.0


# ------------------------------------------------------------ ThunderSTORM

# ThunderSTORM 1.3's layout (issue 16.1: Picasso's import_ts refused the <= 1.2 "uncertainty [nm]"); an
# elliptical fit adds ThunderSTORM's sigma1/sigma2 beside the mean sigma Picasso's 2D import needs.
TS_HEADER = ('"id","frame","x [nm]","y [nm]","sigma [nm]","sigma1 [nm]","sigma2 [nm]","intensity [photon]",'
             '"offset [photon]","bkgstd [photon]","uncertainty_xy [nm]"')
# The columns Picasso's io.import_ts requires (2D; 3D adds z, sigma1, sigma2), from its source (picasso/io.py).
PICASSO_TS_COLUMNS = ["frame", "x [nm]", "y [nm]", "intensity [photon]", "offset [photon]", "uncertainty_xy [nm]",
                      "sigma [nm]"]


def test_thunderstorm_units_and_one_based_frames(tmp_path):
    locs = make_locs()
    path = sio.save(locs, tmp_path / "ts.csv", format="thunderstorm")
    text = path.read_text().splitlines()
    assert text[0] == TS_HEADER
    raw = pd.read_csv(path)
    assert raw["id"].tolist() == list(range(1, len(locs) + 1))
    np.testing.assert_array_equal(raw["frame"], locs["frame"] + 1)
    ok = locs["x"].notna()
    # ThunderSTORM measures from the image corner: x_nm = (x + 0.5) * px
    np.testing.assert_allclose(raw["x [nm]"][ok], (locs["x"][ok] + 0.5) * 130.0, rtol=1e-12)
    np.testing.assert_allclose(raw["y [nm]"], (locs["y"] + 0.5) * 130.0, rtol=1e-12)
    np.testing.assert_allclose(raw["sigma [nm]"], (locs.sigma_x + locs.sigma_y) / 2 * 130.0)
    np.testing.assert_allclose(raw["offset [photon]"], locs["background"])
    u = np.sqrt((locs.uncertainty_x ** 2 + locs.uncertainty_y ** 2) / 2) * 130.0
    np.testing.assert_allclose(raw["uncertainty_xy [nm]"], u)
    np.testing.assert_allclose(raw["sigma1 [nm]"], locs.sigma_x * 130.0)
    np.testing.assert_allclose(raw["sigma2 [nm]"], locs.sigma_y * 130.0)
    assert set(PICASSO_TS_COLUMNS) <= set(raw.columns)


def test_thunderstorm_writes_chi2_and_no_axes_for_a_round_model(tmp_path):
    locs = make_locs()
    locs["sigma_y"] = locs["sigma_x"]
    locs["chi2"] = np.linspace(30, 60, len(locs))
    raw = pd.read_csv(sio.save(locs, tmp_path / "ts.csv", format="thunderstorm"))
    assert list(raw.columns) == ["id", "frame", "x [nm]", "y [nm]", "sigma [nm]", "intensity [photon]",
                                 "offset [photon]", "bkgstd [photon]", "chi2", "uncertainty_xy [nm]"]
    back = sio.load(tmp_path / "ts.csv", pixel_size_nm=130.0)
    np.testing.assert_allclose(back["chi2"], locs["chi2"])


def test_old_thunderstorm_layout_still_reads(tmp_path):
    (tmp_path / "old.csv").write_text('"id","frame","x [nm]","y [nm]","uncertainty [nm]"\n1,1,150.0,250.0,13.0\n')
    df = sio.load(tmp_path / "old.csv", pixel_size_nm=100.0)
    np.testing.assert_allclose(df[["x", "y", "uncertainty_x", "uncertainty_y"]].to_numpy()[0], [1.0, 2.0, 0.13, 0.13])
    assert df["frame"].tolist() == [0]


def test_picasso_thunderstorm_export_is_read_in_its_convention(tmp_path):
    # Picasso's export_thunderstorm (picasso/io.py): unquoted header, ids and frames from 0, x [nm] = x * pixel
    # size with Picasso's (= spotfit's) pixel centres at integers, bkgstd 0, sigma [nm] in 2D.
    (tmp_path / "picasso.csv").write_text(
        "id,frame,x [nm],y [nm],sigma [nm],intensity [photon],offset [photon],bkgstd [photon],uncertainty_xy [nm]\n"
        "0,0,130.0,260.0,169.0,1200,15,0,6.5\n"
        "1,4,1300.0,0.0,156.0,900,14,0,7.8\n")
    df = sio.load(tmp_path / "picasso.csv", pixel_size_nm=130.0)
    assert df["frame"].tolist() == [0, 4]
    np.testing.assert_allclose(df["x"], [1.0, 10.0])
    np.testing.assert_allclose(df["y"], [2.0, 0.0])
    assert "picasso" in df.attrs["spotfit"]["source"]["convention"]
    ours = sio.load(sio.save(make_locs(), tmp_path / "ours.csv", format="thunderstorm"), pixel_size_nm=130.0)
    assert "1-based" in ours.attrs["spotfit"]["source"]["convention"]


def test_thunderstorm_round_trip_of_carried_fields(tmp_path):
    locs = make_locs()
    locs["sigma_y"] = locs["sigma_x"]
    locs["uncertainty_y"] = locs["uncertainty_x"]
    path = sio.save(locs, tmp_path / "ts.csv", format="thunderstorm")
    back = sio.load(path, pixel_size_nm=130.0)     # format sniffed from header
    assert back["frame"].dtype == np.int64
    np.testing.assert_array_equal(back["frame"], locs["frame"])
    for col in ("x", "y", "sigma_x", "sigma_y", "uncertainty_x", "uncertainty_y",
                "background"):
        np.testing.assert_allclose(back[col], locs[col], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(back["photons"], locs["photons"].astype(np.float64))
    assert back.attrs["spotfit"]["pixel_size_nm"] == 130.0


def test_thunderstorm_needs_pixel_size(tmp_path):
    locs = make_locs()
    locs.attrs = {}
    with pytest.raises(ValueError, match="pixel_size_nm"):
        sio.save(locs, tmp_path / "ts.csv", format="thunderstorm")
    assert not (tmp_path / "ts.csv").exists()
    sio.save(locs, tmp_path / "ts.csv", format="thunderstorm", pixel_size_nm=100.0)
    with pytest.raises(ValueError, match="ts.csv"):
        sio.load(tmp_path / "ts.csv")


def test_thunderstorm_file_from_thunderstorm(tmp_path):
    # As ThunderSTORM 1.3 writes it (uncertainty_xy, float frame), with the
    # pixel size found in its protocol file.
    (tmp_path / "run.csv").write_text(
        '"id","frame","x [nm]","y [nm]","sigma [nm]","intensity [photon]",'
        '"offset [photon]","bkgstd [photon]","chi2","uncertainty_xy [nm]"\n'
        "1.0,1.0,150.0,250.0,160.0,1000.0,10.0,3.0,1.2,20.0\n"
        "2.0,7.0,1050.0,50.0,120.0,500.0,9.0,3.0,1.1,10.0\n")
    (tmp_path / "run-protocol.txt").write_text(
        '{"version": "ThunderSTORM 1.3", "cameraSettings": {"pixelSize": 100.0}}')
    df = sio.load(tmp_path / "run.csv")
    assert df["frame"].tolist() == [0, 6]
    np.testing.assert_allclose(df["x"], [1.0, 10.0])
    np.testing.assert_allclose(df["y"], [2.0, 0.0])
    np.testing.assert_allclose(df["sigma_x"], [1.6, 1.2])
    np.testing.assert_allclose(df["uncertainty_y"], [0.2, 0.1])
    assert df["chi2"].tolist() == [1.2, 1.1] and "id" not in df


# ----------------------------------------------------------------- Picasso

def test_picasso_layout(tmp_path):
    h5py = pytest.importorskip("h5py")
    yaml = pytest.importorskip("yaml")
    locs = make_locs()
    path = sio.save(locs, tmp_path / "run_locs.hdf5")
    with h5py.File(path, "r") as f:
        arr = f["locs"][...]
    # Issue 16.2: no fake net_gradient of 0; the fit's status as an extra column (codes in the yaml).
    assert arr.dtype.names == ("frame", "x", "y", "photons", "sx", "sy", "bg", "lpx", "lpy",
                               "ellipticity", "likelihood", "iterations", "status")
    assert arr.dtype["frame"] == np.dtype("<u4") and arr.dtype["iterations"] == np.dtype("<i4")
    assert all(arr.dtype[n] == np.dtype("<f4") for n in arr.dtype.names[1:-2])
    np.testing.assert_array_equal(arr["lpx"], locs["uncertainty_x"].astype(np.float32))
    with open(tmp_path / "run_locs.yaml") as f:
        docs = list(yaml.safe_load_all(f))
    assert len(docs) == 2
    assert (docs[0]["Frames"], docs[0]["Height"], docs[0]["Width"]) == (50, 24, 32)
    assert docs[0]["Byte Order"] == "<" and docs[1]["Pixelsize"] == 130.0
    assert docs[1]["Box Size"] == 7


def test_picasso_matches_real_example(tmp_path):
    h5py = pytest.importorskip("h5py")
    yaml = pytest.importorskip("yaml")
    real = PICASSO / "testdata_locs.hdf5"
    if not real.exists():
        pytest.skip("shared Picasso example not available")
    with h5py.File(real, "r") as f:
        real_dtype = f["locs"].dtype
    with open(PICASSO / "testdata_locs.yaml") as f:
        real_docs = list(yaml.safe_load_all(f))
    df = sio.load(real)
    assert len(df) == 564 and df["frame"].dtype == np.int64
    assert df.attrs["spotfit"]["movie_shape"] == (1000, 32, 32)
    assert df.attrs["spotfit"]["pixel_size_nm"] == 130.0
    assert {"x", "y", "photons", "sigma_x", "background", "uncertainty_x",
            "loglik", "net_gradient"} <= set(df.columns)
    # Our file carries every field of Picasso's, with the same types, and
    # the yaml has every key Picasso render reads from the first document.
    path = sio.save(df, tmp_path / "again_locs.hdf5")
    with h5py.File(path, "r") as f:
        ours = f["locs"].dtype
        again = f["locs"][...]
    for name in real_dtype.names:
        assert name in ours.names and ours[name] == real_dtype[name], name
    with h5py.File(real, "r") as f:
        orig = f["locs"][...]
    for name in real_dtype.names:
        np.testing.assert_array_equal(again[name], orig[name])
    with open(tmp_path / "again_locs.yaml") as f:
        docs = list(yaml.safe_load_all(f))
    for key in ("Byte Order", "Data Type", "Frames", "Height", "Width"):
        assert key in docs[0] and type(docs[0][key]) is type(real_docs[0][key]), key
    assert docs[-1]["Pixelsize"] == 130.0


def test_picasso_round_trip_of_carried_fields(tmp_path):
    pytest.importorskip("h5py")
    pytest.importorskip("yaml")
    locs = make_locs()
    for c in ("x", "y", "background", "sigma_x", "sigma_y", "uncertainty_x",
              "uncertainty_y", "loglik"):
        locs[c] = locs[c].astype(np.float32)
    back = sio.load(sio.save(locs, tmp_path / "l.hdf5"))
    for c in ("frame", "x", "y", "photons", "background", "sigma_x", "sigma_y",
              "uncertainty_x", "uncertainty_y", "loglik", "iterations"):
        pd.testing.assert_series_equal(back[c], locs[c], check_exact=True)
    assert_attrs_equal(locs, back)


def test_picasso_rejects_negative_frames(tmp_path):
    pytest.importorskip("h5py")
    locs = make_locs()
    locs.loc[0, "frame"] = -1
    with pytest.raises(ValueError, match="uint32"):
        sio.save(locs, tmp_path / "l.hdf5")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- general

def test_format_inference_and_errors(tmp_path):
    locs = make_locs()
    with pytest.raises(ValueError, match="suffix"):
        sio.save(locs, tmp_path / "l.xyz")
    with pytest.raises(ValueError, match="unknown format"):
        sio.save(locs, tmp_path / "l.csv", format="excel")
    with pytest.raises(ValueError, match="column"):
        sio.save(locs.drop(columns="y"), tmp_path / "l.csv")
    with pytest.raises(FileNotFoundError, match="nothere.csv"):
        sio.load(tmp_path / "nothere.csv")
    with pytest.raises(FileNotFoundError):
        sio.save(locs, tmp_path / "no_such_dir" / "l.csv")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    pytest.importorskip("pyarrow")
    with pytest.raises(ValueError, match="bad.parquet"):
        sio.load(bad)


def _failing(real):
    def writer(*args, **kwargs):
        real(*args, **kwargs)           # the file is written completely...
        raise RuntimeError("disk full")  # ...and then something fails
    return writer


@pytest.mark.parametrize("fmt", ["csv", "parquet", "thunderstorm", "picasso"])
def test_atomic_write_leaves_no_file(tmp_path, monkeypatch, fmt):
    locs = make_locs()
    target = tmp_path / ("l.hdf5" if fmt == "picasso" else "l.parquet"
                         if fmt == "parquet" else "l.csv")
    if fmt == "parquet":
        pq = pytest.importorskip("pyarrow.parquet")
        monkeypatch.setattr(pq, "write_table", _failing(pq.write_table))
    elif fmt == "picasso":
        yaml = pytest.importorskip("yaml")
        pytest.importorskip("h5py")
        monkeypatch.setattr(yaml, "safe_dump_all", _failing(yaml.safe_dump_all))
    else:
        monkeypatch.setattr(pd.DataFrame, "to_csv", _failing(pd.DataFrame.to_csv))
    with pytest.raises(RuntimeError, match="disk full"):
        sio.save(locs, target, format=fmt)
    assert list(tmp_path.iterdir()) == []


def test_atomic_overwrite_keeps_old_file_on_failure(tmp_path, monkeypatch):
    target = tmp_path / "l.csv"
    target.write_text("old contents")
    monkeypatch.setattr(pd.DataFrame, "to_csv", _failing(pd.DataFrame.to_csv))
    with pytest.raises(RuntimeError):
        sio.save(make_locs(), target)
    assert target.read_text() == "old contents"
    assert leftovers(tmp_path) == []


# ------------------------------------------------------------------ movies

def movie(n=12, rows=10, cols=14, dtype=np.uint16, seed=1):
    rng = np.random.default_rng(seed)
    if np.dtype(dtype).kind == "f":
        return rng.normal(100, 10, (n, rows, cols)).astype(dtype)
    return rng.integers(0, min(np.iinfo(dtype).max, 4000), (n, rows, cols)).astype(dtype)


@pytest.mark.parametrize("kind", ["plain", "imagej", "ome", "bigtiff", "zlib", "bigendian"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_read_movie_variants(tmp_path, kind, dtype):
    data = movie(dtype=dtype)
    path = tmp_path / "m.tif"
    kw = {"plain": {}, "imagej": {"imagej": True, "metadata": {"axes": "TYX"}},
          "ome": {"ome": True, "metadata": {"axes": "TYX"}}, "bigtiff": {"bigtiff": True},
          "zlib": {"compression": "zlib"}, "bigendian": {"byteorder": ">"}}[kind]
    tifffile.imwrite(path, data, **kw)
    out = sio.read_movie(path)
    assert out.shape == data.shape and out.dtype == np.dtype(dtype)
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, data)
    info = sio.movie_info(path)
    assert (info.n_frames, info.rows, info.cols, info.dtype) == (12, 10, 14, np.dtype(dtype))


@pytest.mark.parametrize("kind", ["plain", "zlib"])
def test_chunked_reading_equals_full_read(tmp_path, kind):
    data = movie(n=23)
    path = tmp_path / "m.tif"
    tifffile.imwrite(path, data, compression="zlib" if kind == "zlib" else None)
    for chunk in (1, 5, 23, 256):
        parts = list(sio.iter_chunks(path, chunk_frames=chunk))
        assert [p[0] for p in parts] == list(range(0, 23, chunk))
        assert all(len(c) <= chunk for _, c in parts)
        np.testing.assert_array_equal(np.concatenate([c for _, c in parts]), data)
    parts = list(sio.iter_chunks(path, 4, frames=slice(5, 15)))
    assert [p[0] for p in parts] == [5, 9, 13]
    np.testing.assert_array_equal(np.concatenate([c for _, c in parts]), data[5:15])
    np.testing.assert_array_equal(sio.read_movie(path, frames=slice(3, 8)), data[3:8])


def test_iter_chunks_of_array_copies():
    data = movie(n=7)
    parts = list(sio.iter_chunks(data, 3))
    np.testing.assert_array_equal(np.concatenate([c for _, c in parts]), data)
    parts[0][1][:] = 0
    assert data[0].any()
    assert [c.shape for _, c in sio.iter_chunks(data[0], 3)] == [(1, 10, 14)]


def test_2d_image_is_one_frame(tmp_path):
    img = movie(n=1)[0]
    tifffile.imwrite(tmp_path / "one.tif", img)
    out = sio.read_movie(tmp_path / "one.tif")
    assert out.shape == (1, 10, 14)
    np.testing.assert_array_equal(out[0], img)
    assert sio.movie_info(tmp_path / "one.tif").n_frames == 1


def test_multi_file_list_and_glob(tmp_path):
    a, b, c = movie(n=3, seed=1), movie(n=4, seed=2), movie(n=2, seed=3)
    for name, d in (("run_2.tif", a), ("run_10.tif", b), ("run_1.tif", c)):
        tifffile.imwrite(tmp_path / name, d, imagej=True, metadata={"axes": "TYX"})
    out = sio.read_movie([tmp_path / "run_2.tif", tmp_path / "run_10.tif"])
    np.testing.assert_array_equal(out, np.concatenate([a, b]))
    out = sio.read_movie(str(tmp_path / "run_*.tif"))   # natural order: 1, 2, 10
    np.testing.assert_array_equal(out, np.concatenate([c, a, b]))
    chunks = list(sio.iter_chunks(str(tmp_path / "run_*.tif"), chunk_frames=4))
    assert [s for s, _ in chunks] == [0, 4, 8]
    np.testing.assert_array_equal(np.concatenate([x for _, x in chunks]), out)
    info = sio.movie_info(str(tmp_path / "run_*.tif"))
    assert info.n_frames == 9 and info.metadata["frames_per_file"] == [2, 3, 4]
    with pytest.raises(sio.MovieNotFoundError, match="nomatch"):
        sio.read_movie(str(tmp_path / "nomatch_*.tif"))


def test_multi_file_shape_mismatch(tmp_path):
    tifffile.imwrite(tmp_path / "a.tif", movie(n=2))
    tifffile.imwrite(tmp_path / "b.tif", movie(n=2, cols=9))
    with pytest.raises(sio.MovieError, match="b.tif"):
        sio.read_movie([tmp_path / "a.tif", tmp_path / "b.tif"])


def cut(path, keep_fraction):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep_fraction)])


@pytest.mark.parametrize("keep", [0.2, 0.4, 0.6])
def test_truncated_imagej_stack_raises(tmp_path, keep):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, movie(n=30), imagej=True, metadata={"axes": "TYX"})
    with tifffile.TiffFile(path) as t:
        data_end = t.series[0].dataoffset + t.series[0].nbytes
    assert int(path.stat().st_size * keep) < data_end     # the cut removes pixels
    cut(path, keep)
    with pytest.raises(sio.MovieError, match="stack.tif") as err:
        sio.read_movie(path)
    assert "truncated" in str(err.value)
    with pytest.raises(sio.MovieError, match="stack.tif"):
        list(sio.iter_chunks(path))
    with pytest.raises(sio.MovieError):
        sio.movie_info(path)


@pytest.mark.parametrize("keep", [0.05, 0.3, 0.5, 0.7, 0.8, 0.9, 0.99])
@pytest.mark.parametrize("kind", ["imagej", "plain", "ome", "zlib"])
def test_cut_movie_is_never_read_short(tmp_path, keep, kind):
    # Wherever a file is cut, reading either fails naming the file or gives
    # back every frame intact (when only trailing metadata was lost).
    data = movie(n=30)
    path = tmp_path / "cut.tif"
    kw = {"imagej": {"imagej": True, "metadata": {"axes": "TYX"}}, "plain": {},
          "ome": {"ome": True, "metadata": {"axes": "TYX"}},
          "zlib": {"compression": "zlib"}}[kind]
    tifffile.imwrite(path, data, **kw)
    cut(path, keep)
    try:
        out = sio.read_movie(path)
    except sio.MovieError as exc:
        assert "cut.tif" in str(exc)
    else:
        np.testing.assert_array_equal(out, data)


def test_truncated_imagej_contiguous_data_raises(tmp_path):
    # ImageJ's own layout: metadata and first IFD up front, frames contiguous
    # after it; tifffile then trusts images= and only logs when data are
    # missing.  The error must say how many frames were promised.
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, movie(n=30), imagej=True, metadata={"axes": "TYX"})
    with tifffile.TiffFile(path) as t:
        start = t.series[0].dataoffset
    data = path.read_bytes()
    path.write_bytes(data[:start + 10 * 10 * 14 * 2 + 7])   # 10 frames and a bit
    with pytest.raises(sio.MovieError, match=r"ij\.tif.*promises 30|ij\.tif.*truncated"):
        sio.read_movie(path)


@pytest.mark.parametrize("kind", ["plain", "ome", "zlib"])
def test_truncated_other_tiffs_raise(tmp_path, kind):
    path = tmp_path / "t.tif"
    kw = {"plain": {}, "ome": {"ome": True}, "zlib": {"compression": "zlib"}}[kind]
    tifffile.imwrite(path, movie(n=30), **kw)
    cut(path, 0.6)
    with pytest.raises(sio.MovieError, match="t.tif"):
        sio.read_movie(path)


def test_corrupt_and_wrong_files(tmp_path):
    garbage = tmp_path / "garbage.tif"
    garbage.write_bytes(b"II*\x00" + bytes(range(256)) * 4)
    with pytest.raises(sio.MovieError, match="garbage.tif"):
        sio.read_movie(garbage)
    text = tmp_path / "notes.tif"
    text.write_text("hello, not an image")
    with pytest.raises(sio.MovieError, match="notes.tif"):
        sio.read_movie(text)
    with pytest.raises(sio.MovieError, match="is a directory"):
        sio.read_movie(tmp_path)


def test_missing_file_names_path(tmp_path):
    missing = tmp_path / "missing_movie.tif"
    with pytest.raises(FileNotFoundError, match="missing_movie.tif"):
        sio.read_movie(missing)
    with pytest.raises(sio.MovieError, match="missing_movie.tif"):
        sio.movie_info(missing)
    with pytest.raises(sio.MovieNotFoundError):
        sio.read_movie([tmp_path / "x.tif", missing])


def test_unsupported_dtype(tmp_path):
    path = tmp_path / "odd.tif"
    tifffile.imwrite(path, np.ones((2, 4, 5), np.complex64))
    with pytest.raises(sio.MovieError, match=r"odd\.tif.*unsupported"):
        sio.read_movie(path)


def test_float16_movie_reads_and_localizes_like_float32(tmp_path):
    # as spotfit.localize on a float16 array (the API converts; the file path must agree)
    movie, _ = __import__("spotfit").simulate(frames=3, shape=(32, 32), seed=2)
    half = movie.astype(np.float16)
    tifffile.imwrite(tmp_path / "h.tif", half, photometric="minisblack")
    np.testing.assert_array_equal(sio.read_movie(tmp_path / "h.tif"), half)
    import spotfit
    a = spotfit.localize(tmp_path / "h.tif", camera=spotfit.Camera())
    b = spotfit.localize(half.astype(np.float32), camera=spotfit.Camera())
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_rgb_rejected(tmp_path):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.zeros((4, 5, 3), np.uint8), photometric="rgb")
    with pytest.raises(sio.MovieError, match="rgb.tif"):
        sio.read_movie(path)


def test_pixel_size_metadata(tmp_path):
    tifffile.imwrite(tmp_path / "ij.tif", movie(n=2), imagej=True,
                     resolution=(1 / 0.16, 1 / 0.16), metadata={"axes": "TYX", "unit": "um"})
    assert sio.movie_info(tmp_path / "ij.tif").metadata["pixel_size_nm"] == pytest.approx(160)
    tifffile.imwrite(tmp_path / "ome.tif", movie(n=2), ome=True,
                     metadata={"axes": "TYX", "PhysicalSizeX": 0.107})
    md = sio.movie_info(tmp_path / "ome.tif").metadata
    assert md["pixel_size_nm"] == pytest.approx(107) and md["promised_frames"] == 2
    tifffile.imwrite(tmp_path / "plain.tif", movie(n=2))
    assert sio.movie_info(tmp_path / "plain.tif").metadata["pixel_size_nm"] is None


def test_shared_tiffs_open():
    found = sorted(SHARED.glob("*/*.tif"))
    if not found:
        pytest.skip("shared data not available")
    for path in found:
        info = sio.movie_info(path)
        assert info.n_frames >= 1 and info.rows >= 32 and info.dtype == np.uint16
        first = next(sio.iter_chunks(path, 2))[1]
        np.testing.assert_array_equal(first, tifffile.imread(path)[:2])


def test_picasso_raw_movie(tmp_path):
    pytest.importorskip("yaml")
    raw = PICASSO / "testdata.raw"
    if not raw.exists():
        pytest.skip("shared Picasso movie not available")
    expected = np.fromfile(raw, dtype="<u2").reshape(100, 32, 32)
    out = sio.read_movie(raw)
    np.testing.assert_array_equal(out, expected)
    info = sio.movie_info(raw)
    assert (info.n_frames, info.rows, info.cols) == (100, 32, 32)
    assert info.metadata["pixel_size_nm"] == 160
    # a copy that ends early
    short = tmp_path / "short.raw"
    short.write_bytes(raw.read_bytes()[:-100])
    (tmp_path / "short.yaml").write_text((PICASSO / "testdata.yaml").read_text())
    with pytest.raises(sio.MovieError, match=r"short\.raw.*ends early"):
        sio.read_movie(short)
    (tmp_path / "alone.raw").write_bytes(b"\0" * 64)
    with pytest.raises(sio.MovieError, match="alone.yaml"):
        sio.read_movie(tmp_path / "alone.raw")


def test_reading_does_not_keep_files_open(tmp_path):
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        pytest.skip("needs /proc to count open files")
    for kw in ({}, {"compression": "zlib"}):
        path = tmp_path / "m.tif"
        tifffile.imwrite(path, movie(n=5), **kw)
        before = len(list(fd_dir.iterdir()))
        gen = sio.iter_chunks(path, 2)
        next(gen)
        assert len(list(fd_dir.iterdir())) > before      # open while iterating
        gen.close()
        del gen
        assert len(list(fd_dir.iterdir())) == before
        sio.read_movie(path)
        sio.movie_info(path)
        assert len(list(fd_dir.iterdir())) == before


def test_multichannel_imagej_movie_is_refused_not_interleaved(tmp_path):
    a = np.random.default_rng(0).integers(0, 500, (5, 2, 32, 32)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "tc.tif", a, imagej=True, metadata={"axes": "TCYX"})
    with pytest.raises(sio.MovieError, match="2 channels"):
        sio.movie_info(tmp_path / "tc.tif")
    tifffile.imwrite(tmp_path / "one.tif", a[:, :1], imagej=True, metadata={"axes": "TCYX"})
    np.testing.assert_array_equal(sio.read_movie(tmp_path / "one.tif"), a[:, 0])


# ---------------------------------------------------------------- issue 16: pixel sizes

def test_pixel_size_outside_1nm_10um_is_refused(tmp_path):
    # 0.133 is a pixel size in µm typed where nm are meant: it used to pass.
    for bad in (0.133, 0.5, 2e4):
        with pytest.raises(ValueError, match="plausible"):
            spotfit.Camera(pixel_size_nm=bad)
        with pytest.raises(ValueError, match="plausible"):
            sio.save(make_locs(), tmp_path / "ts.csv", format="thunderstorm", pixel_size_nm=bad)
    assert not (tmp_path / "ts.csv").exists()
    with pytest.raises(ValueError, match="µm"):
        spotfit.Camera(pixel_size_nm=0.133)
    for good in (1.0, 65.0, 160.0, 10_000.0):
        assert spotfit.Camera(pixel_size_nm=good).pixel_size_nm == good
    # A file's implausible pixel size (e.g. an uncalibrated 1 unit read as 1 nm, or 0.1) is not taken up.
    from spotfit.camera import camera_settings_from_metadata as camera_from_metadata
    assert "pixel_size_nm" not in camera_from_metadata({"pixel_size_nm": 0.1})
    assert camera_from_metadata({"pixel_size_nm": 107.0})["pixel_size_nm"] == 107.0


def test_cli_refuses_a_pixel_size_in_um(tmp_path, capsys):
    import tifffile
    from spotfit.cli import main
    movie, _ = spotfit.simulate(frames=3, shape=(32, 32), seed=0)
    tifffile.imwrite(tmp_path / "m.tif", movie, imagej=True)
    assert main(["localize", str(tmp_path / "m.tif"), "-o", str(tmp_path / "l.csv"), "--pixel-size", "0.133"]) == 2
    assert "plausible" in capsys.readouterr().err and not (tmp_path / "l.csv").exists()


def test_given_camera_keeps_the_files_pixel_size(tmp_path):
    # Issue 16.5: localize(path, camera=Camera(...)) dropped the pixel size the file records.
    import tifffile
    movie, _ = spotfit.simulate(frames=4, shape=(48, 48), seed=1)
    tifffile.imwrite(tmp_path / "m.tif", movie, imagej=True, resolution=(1 / 0.107, 1 / 0.107),
                     metadata={"unit": "um"})
    assert spotfit.io.open_movie(tmp_path / "m.tif").camera.pixel_size_nm == pytest.approx(107.0)
    locs = spotfit.localize(tmp_path / "m.tif", camera=spotfit.Camera(baseline=100))
    assert locs.attrs["spotfit"]["pixel_size_nm"] == pytest.approx(107.0)
    assert locs.attrs["spotfit"]["camera"]["baseline"] == 100
    sio.save(locs, tmp_path / "ts.csv", format="thunderstorm")      # failed before: no pixel size
    mine = spotfit.localize(tmp_path / "m.tif", camera=spotfit.Camera(baseline=100, pixel_size_nm=65.0))
    assert mine.attrs["spotfit"]["pixel_size_nm"] == 65.0            # the user's wins



def test_picasso_file_marks_status_and_warns_of_rows_picasso_drops(tmp_path):
    pytest.importorskip("h5py")
    pytest.importorskip("yaml")
    locs = make_locs().dropna().reset_index(drop=True)
    locs = locs[np.isfinite(locs["photons"])].reset_index(drop=True)     # make_locs has an inf
    locs["chi2"] = np.linspace(30.0, 90.0, len(locs))
    locs.loc[:2, "x"] = [-0.3, -0.49, -0.01]          # inside pixel 0, but Picasso drops x < 0
    with pytest.warns(spotfit.SpotfitWarning, match=r"drop 3 of \d+ rows \(3 x or y < 0\)"):
        path = sio.save(locs, tmp_path / "l.hdf5")
    back = sio.load(path)
    assert len(back) == len(locs)                       # spotfit itself keeps every row
    assert back["status"].astype(str).tolist() == locs["status"].astype(str).tolist()
    np.testing.assert_allclose(back["chi2"], locs["chi2"], rtol=1e-6)
    import yaml
    docs = list(yaml.safe_load_all(path.with_suffix(".yaml").read_text()))
    assert docs[1]["spotfit status codes"][1] == "max_iterations"
    import warnings
    ok = locs[locs["x"] >= 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", spotfit.SpotfitWarning)
        sio.save(ok, tmp_path / "ok.hdf5")                # nothing to drop: no warning


def test_peers_read_our_files(tmp_path, peers_python):
    # Picasso's import_ts / load_locs and Locan's ThunderSTORM reader, in the peers' venv
    # (bash bench/peers/install_peers.sh). Checked 2026-12-03 with picassosr 0.11.3 and locan 0.22.0.
    import subprocess
    cam = spotfit.Camera(baseline=100, sensitivity=0.5, pixel_size_nm=130.0)
    movie, _ = spotfit.simulate(frames=30, camera=cam, seed=1)
    n = {}
    for model in ("gauss", "elliptical"):
        locs = spotfit.localize(movie, camera=cam, model=model)
        sio.save(locs, tmp_path / f"{model}.csv", format="thunderstorm")
        sio.save(locs, tmp_path / f"{model}_locs.hdf5")
        n[model] = len(locs)
    script = """
import json, sys
from picasso import io
out = {}
for model in ("gauss", "elliptical"):
    out[model + " import_ts"] = len(io.import_ts(f"{model}.csv", 130.0)[0])
    out[model + " load_locs"] = len(io.load_locs(f"{model}_locs.hdf5")[0])
    import locan
    out[model + " locan"] = len(locan.load_thunderstorm_file(f"{model}.csv").data)
print(json.dumps(out))
"""
    res = subprocess.run([peers_python, "-c", script], cwd=tmp_path, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    counts = json.loads(res.stdout.strip().splitlines()[-1])
    for key, value in counts.items():
        assert value == n[key.split()[0]], (key, value, n)



RAPID_HEADER = ('# <localizations insequence="true" repetitions="variable">'
                '<field identifier="Position-0-0" semantic="position in sample space in X" unit="nanometer" />'
                '<field identifier="Position-1-0" semantic="position in sample space in Y" unit="nanometer" />'
                '<field identifier="ImageNumber-0-0" semantic="frame number" unit="frame" />'
                '<field identifier="Amplitude-0-0" semantic="emission strength" unit="A/D count" />'
                '<field identifier="PSFWidth-0-0" semantic="PSF FWHM in X" unit="nanometer" />'
                '<field identifier="PSFWidth-1-0" semantic="PSF FWHM in Y" unit="nanometer" />'
                '<field identifier="FitResidues-0-0" semantic="fit residue chi square value" unit="dimensionless" />'
                '<field identifier="LocalBackground-0-0" semantic="local background" unit="A/D count" />'
                '</localizations>')


def test_rapidstorm_file_is_read(tmp_path):
    # Issue 16.8: positions in nm with pixel i's centre at i x pixel size (as spotfit's), 0-based frames, PSF FWHM.
    path = tmp_path / "rs.txt"
    path.write_text(RAPID_HEADER + "\n199.5 66.5 0 5000 313.2 345.0 12.5 530\n1330 0 7 3000 300 300 10 525\n")
    df = sio.load(path, pixel_size_nm=133.0)
    assert df.attrs["spotfit"]["source"]["format"] == "rapidstorm"
    np.testing.assert_allclose(df["x"], [1.5, 10.0])
    np.testing.assert_allclose(df["y"], [0.5, 0.0])
    assert df["frame"].tolist() == [0, 7]
    np.testing.assert_allclose(df["sigma_x"], np.array([313.2, 300]) / 133 / (2 * np.sqrt(2 * np.log(2))))
    assert df["amplitude_adu"].tolist() == [5000, 3000] and df["background_adu"].tolist() == [530, 525]
    with pytest.raises(ValueError, match="pixel_size_nm"):
        sio.load(path)
    with pytest.raises(ValueError, match="read, not written"):
        sio.save(df, tmp_path / "out.txt", format="rapidstorm")
    (tmp_path / "bad.txt").write_text(RAPID_HEADER + "\n1 2 3\n")
    with pytest.raises(ValueError, match="8 fields but rows have 3"):
        sio.load(tmp_path / "bad.txt", pixel_size_nm=133.0)
