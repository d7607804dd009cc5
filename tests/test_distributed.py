"""spotfit.distributed: Dask localize on a local 2-process cluster equals the in-memory localize."""
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spotfit
import spotfit.distributed as sd
from spotfit._shared.threads import usable_cores
from spotfit import io

dask = pytest.importorskip("dask", reason="spotfit[dask] not installed")
distributed = pytest.importorskip("distributed", reason="spotfit[dask] not installed")
pytest.importorskip("zarr", reason="spotfit[dask] needs zarr for tifffile's aszarr")
tifffile = pytest.importorskip("tifffile")

CAM = spotfit.Camera(baseline=100, sensitivity=0.5)
# Frames per file: chunk boundaries (CHUNK) fall inside files, so chunks span two files.
SPLIT = (37, 20, 43)
CHUNK = 32


@pytest.fixture(scope="module")
def movie_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("movie")
    movie, truth = spotfit.simulate(frames=sum(SPLIT), shape=(64, 64), density=6, camera=CAM, seed=11)
    paths, start = [], 0
    for i, n in enumerate(SPLIT):
        p = d / f"fov_{i}.tif"
        tifffile.imwrite(p, movie[start:start + n], imagej=True)
        paths.append(str(p))
        start += n
    return movie, paths


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       host="127.0.0.1", dashboard_address=None)
    cl = distributed.Client(cluster)
    yield cl
    cl.close()
    cluster.close()


def _reference(movie, chunk=CHUNK):
    # The in-memory localize processes `chunk_frames` frames per batch, as the Dask tasks do.
    return spotfit.localize(movie, camera=CAM, chunk_frames=chunk)


def test_open_movie_is_lazy_and_exact(movie_files):
    movie, paths = movie_files
    arr = sd.open_movie(paths, chunks=CHUNK)
    assert arr.shape == movie.shape and arr.dtype == movie.dtype
    assert arr.chunks[0] == (32, 32, 32, 4) and arr.chunks[1:] == ((64,), (64,))
    np.testing.assert_array_equal(arr.compute(scheduler="sync"), movie)
    # A chunk that straddles the first and second file.
    np.testing.assert_array_equal(arr[30:45].compute(scheduler="sync"), movie[30:45])
    # tifffile's zarr store (forced, and chosen by "auto" for compressed files) reads the same pixels.
    np.testing.assert_array_equal(sd.open_movie(paths, chunks=CHUNK, reader="zarr")[30:70]
                                  .compute(scheduler="sync"), movie[30:70])
    packed = Path(paths[0]).parent / "packed.tif"
    tifffile.imwrite(packed, movie[:50], compression="zlib")
    np.testing.assert_array_equal(sd.open_movie([paths[1], str(packed)], chunks=CHUNK)
                                  .compute(scheduler="sync"), np.concatenate([movie[37:57], movie[:50]]))
    with pytest.raises(ValueError, match="reader"):
        sd.open_movie(paths, reader="mmap")
    # The graph holds paths, not pixels: it pickles small.
    import pickle
    assert len(pickle.dumps(arr)) < 20_000


def test_open_movie_glob_and_errors(movie_files, tmp_path):
    movie, paths = movie_files
    arr = sd.open_movie(str(Path(paths[0]).parent / "fov_*.tif"), chunks=50)
    np.testing.assert_array_equal(arr.compute(scheduler="sync"), movie)
    with pytest.raises(ValueError, match="chunks"):
        sd.open_movie(paths, chunks=0)
    with pytest.raises(io.MovieNotFoundError):
        sd.open_movie([paths[0], str(tmp_path / "missing.tif")])
    # A truncated ImageJ stack must be an error naming the file, not a shorter array.
    bad = tmp_path / "cut.tif"
    tifffile.imwrite(bad, movie[:20], imagej=True)
    data = bad.read_bytes()
    bad.write_bytes(data[:len(data) // 2])
    with pytest.raises(io.MovieError, match="cut.tif"):
        sd.open_movie([paths[0], str(bad)])


def test_localize_on_cluster_equals_in_memory(movie_files, client):
    movie, paths = movie_files
    ref = _reference(movie)
    assert ref["frame"].max() >= SPLIT[0] + SPLIT[1]  # spots found in the last file too
    locs = sd.localize(paths, camera=CAM, chunks=CHUNK)
    assert locs.npartitions == 4
    assert list(locs.columns) == list(ref.columns)
    assert (locs.dtypes == ref.dtypes).all()
    with distributed.get_task_stream(client) as ts:
        got = locs.compute()
    keys = [(t["key"] if isinstance(t["key"], str) else t["key"][0], t["worker"]) for t in ts.data]
    workers = {w for k, w in keys if k.startswith("_localize_block")}
    assert len(workers) == 2, f"tasks ran on {workers}, expected both workers"
    pd.testing.assert_frame_equal(got.reset_index(drop=True), ref)  # frame numbers included
    assert got.attrs["spotfit"] == ref.attrs["spotfit"]
    assert list(got["status"].cat.categories) == spotfit.FIT_STATUS


def test_result_does_not_depend_on_chunking(movie_files):
    # Each spot's fit is independent of the other boxes in its batch (cpp/src/fit.cpp), so Dask's
    # chunking (32 frames here) must reproduce the default in-memory run (256-frame batches) bit for bit.
    movie, paths = movie_files
    ref = spotfit.localize(movie, camera=CAM)
    got = sd.localize(paths, camera=CAM, chunks=CHUNK).compute(scheduler="sync")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), ref)


def test_localize_dask_array_numpy_and_rechunk(movie_files):
    movie, _ = movie_files
    da = pytest.importorskip("dask.array")
    ref = _reference(movie, chunk=25)
    # A dask array split along rows too: rechunked to whole frames; local threaded scheduler.
    arr = da.from_array(movie, chunks=(25, 32, 64))
    got = sd.localize(arr, camera=CAM).compute(scheduler="threads")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), ref)
    got = sd.localize(movie, camera=CAM, chunks=25).compute(scheduler="sync")
    pd.testing.assert_frame_equal(got.reset_index(drop=True), ref)


def test_parameters_are_checked_before_compute(movie_files):
    movie, paths = movie_files
    with pytest.raises(ValueError, match="psf_sigma"):
        sd.localize(paths, psf_sigma=-1)
    with pytest.raises(TypeError, match="progress"):
        sd.localize(paths, progress=True)
    with pytest.raises(TypeError, match="unexpected keyword"):
        sd.localize(paths, psf_sigmaa=1.3)
    with pytest.raises(ValueError, match="threads"):
        sd.localize(paths, threads=0)
    with pytest.raises(TypeError, match="dtype"):
        sd.localize(np.zeros((2, 8, 8), dtype=bool))


def test_to_parquet_written_by_workers(movie_files, client, tmp_path):
    movie, paths = movie_files
    ref = _reference(movie)
    out = tmp_path / "locs.parquet"
    sd.to_parquet(sd.localize(paths, camera=CAM, chunks=CHUNK), out)
    parts = sorted(p.name for p in out.glob("*.parquet"))
    assert parts == [f"part.{i}.parquet" for i in range(4)]
    back = sd.read_parquet(out, lazy=False)
    pd.testing.assert_frame_equal(back, ref)
    assert back.attrs["spotfit"] == ref.attrs["spotfit"]
    lazy = sd.read_parquet(out).compute()
    pd.testing.assert_frame_equal(lazy.reset_index(drop=True), ref)
    # One part file is a complete spotfit table on its own (categories and metadata kept).
    first = io.load(out / "part.0.parquet")
    assert list(first["status"].cat.categories) == spotfit.FIT_STATUS
    assert first.attrs["spotfit"]["parameters"] == ref.attrs["spotfit"]["parameters"]
    pd.testing.assert_frame_equal(first, ref[ref.frame < CHUNK].reset_index(drop=True))
    with pytest.raises(ValueError, match="not empty"):
        sd.to_parquet(sd.localize(paths, camera=CAM, chunks=CHUNK), out)


def test_threads_per_task_do_not_oversubscribe(client):
    plan = sd._threads_plan(None)
    assert plan[0] == "auto" and plan[1] == {"127.0.0.1": 2}
    got = client.submit(sd._task_threads, plan, pure=False).result()
    assert got == max(1, usable_cores() // 2)
    assert client.submit(sd._task_threads, sd._threads_plan(3), pure=False).result() == 3


def test_run_helper_local_cluster(movie_files, tmp_path):
    movie, paths = movie_files
    ref = _reference(movie)
    got = sd.run(paths, workers=1, chunks=CHUNK, camera=CAM)
    pd.testing.assert_frame_equal(got, ref)
    with pytest.raises(ValueError, match="either"):
        sd.run(paths, scheduler="tcp://127.0.0.1:1", workers=2)


def test_missing_dask_names_the_extra(monkeypatch, movie_files):
    _, paths = movie_files
    for mod in ("dask", "dask.array", "dask.dataframe"):
        monkeypatch.setitem(sys.modules, mod, None)
    with pytest.raises(ImportError, match=r"pip install spotfit\[dask\]"):
        sd.open_movie(paths)
    with pytest.raises(ImportError, match=r"pip install spotfit\[dask\]"):
        sd.localize(paths)


# --------------------------------------------------------------------------
# linking a lazy table partition by partition (issue 17)
# --------------------------------------------------------------------------

def _by_frames(locs, edges):
    import dask.dataframe as dd
    parts = [locs[(locs.frame >= a) & (locs.frame < b)] for a, b in zip(edges[:-1], edges[1:])]
    return dd.concat([dd.from_pandas(p, npartitions=1) for p in parts])


@pytest.mark.parametrize("seed,edges,kwargs", [
    (5, [0, 900, 1700, 1701, 3000, 3000, 4500, 6000], {}),           # a one-frame and an empty partition
    (6, [0, 1234, 2500, 6000], {"max_dark_frames": 2}),
    (7, [0, 400, 800, 1200, 1600, 6000], {"radius": 0.3, "max_dark_frames": 0}),
])
def test_link_partition_by_partition_equals_link_in_memory(seed, edges, kwargs):
    sim = spotfit.simulate_smlm("grid", frames=6000, shape=(128, 128), count=40, mean_on=4.0, mean_off=300.0,
                                seed=seed)
    locs = sim.locs
    lazy = sd.link(_by_frames(locs, edges), **kwargs)
    events = lazy.compute()
    whole = spotfit.link(locs, **kwargs)
    inner = np.array(edges[1:-1])
    crossing = ((whole.frame.to_numpy()[:, None] < inner) & (whole.last_frame.to_numpy()[:, None] >= inner)).sum()
    assert crossing >= 3                          # the boundaries cut blinks, which must stay whole
    key = ["frame", "x", "y"]
    pd.testing.assert_frame_equal(events.sort_values(key).reset_index(drop=True),
                                  whole.sort_values(key).reset_index(drop=True), check_names=False)


def test_link_partitions_must_be_whole_frames_in_order():
    sim = spotfit.simulate_smlm("grid", frames=500, count=6, seed=2)
    import dask.dataframe as dd
    locs = sim.locs
    cut = len(locs) // 2
    while locs.frame.iloc[cut] != locs.frame.iloc[cut - 1]:
        cut += 1
    split = dd.concat([dd.from_pandas(locs.iloc[:cut], npartitions=1), dd.from_pandas(locs.iloc[cut:], npartitions=1)])
    with pytest.raises(ValueError, match="whole frames in increasing order"):
        sd.link(split).compute()
    with pytest.raises(TypeError, match="spotfit.link"):
        sd.link(locs)
    with pytest.raises(ValueError, match="radius"):
        sd.link(_by_frames(locs.drop(columns=["uncertainty_x", "uncertainty_y"]), [0, 250, 500]))
