"""Localize movies larger than one machine with Dask (``pip install spotfit[dask]``).

The C++ pipeline runs unchanged inside Dask tasks, one task per chunk of whole frames; every frame is
processed independently, so the result does not depend on the chunking or on the number of workers.

>>> import spotfit.distributed as sd                                    # doctest: +SKIP
>>> from dask.distributed import Client                                 # doctest: +SKIP
>>> client = Client("tcp://scheduler:8786")                             # doctest: +SKIP
>>> movie = sd.open_movie(["fov1.tif", "fov2.tif"], chunks=256)         # doctest: +SKIP
>>> locs = sd.localize(movie, camera=spotfit.Camera(baseline=100))      # doctest: +SKIP
>>> sd.to_parquet(locs, "locs.parquet")                                 # doctest: +SKIP

Threads: ``localize`` runs OpenMP threads inside each task. With ``threads=None`` a task uses
``cores // slots`` threads, where ``cores`` are the CPUs the worker process may use and ``slots`` is the
number of Dask worker threads on that host (summed over the workers of the host, as the scheduler
reports them when :func:`localize` is called), so workers × threads per worker × OpenMP threads never
exceeds the cores. Dask's nanny sets ``OMP_NUM_THREADS=1`` in worker processes, which is why the count
is passed explicitly rather than read from the environment.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from . import core, io
from ._shared.optional import need
from .camera import Camera, camera_for_movie
from ._shared.threads import threads as _valid_threads
from ._shared.threads import usable_cores
from ._shared.warnings import BaselineWarning, CameraWarning, NoiseModelWarning
from .io.tables import parquet_metadata, restore_parquet_metadata
from .options import LocalizeOptions
from .registry import ESTIMATORS

__all__ = ["open_movie", "localize", "to_parquet", "read_parquet", "link", "run", "DEFAULT_CHUNKS"]

DEFAULT_CHUNKS = 256


def _require(module: str):
    return need(module, "spotfit.distributed")


def _frames_chunks(chunks) -> int:
    if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)) or chunks < 1:
        raise ValueError(f"chunks must be a positive number of frames, got {chunks!r}")
    return int(chunks)


def open_movie(path_or_paths, chunks: int = DEFAULT_CHUNKS, *, reader: str = "auto"):
    """Open a movie lazily as a Dask array whose chunks are read by the workers themselves.

    Parameters
    ----------
    path_or_paths : str, os.PathLike, list of them, or glob pattern
        TIFF file(s) (read through tifffile's zarr store, ``aszarr=True``) or Picasso ``.raw`` files.
        A list or pattern is one movie, files concatenated in order (pattern: natural order), as in
        :func:`spotfit.io.read_movie`.
    chunks : int
        Frames per chunk (whole frames: rows and columns are never split). 256 or more keeps the
        scheduling overhead small.

    Returns
    -------
    dask.array.Array
        ``(frames, rows, cols)`` in the files' pixel type. Only file headers are read here (each file
        is checked for truncation, see :func:`spotfit.io.movie_info`); pixels are read at compute time.

    Raises
    ------
    ImportError
        Without dask (``pip install spotfit[dask]``).
    spotfit.io.MovieError
        If a file is missing, truncated, unsupported, or if the files differ in frame shape or type.
    """
    da = _require("dask.array")
    n_chunk = _frames_chunks(chunks)
    movie = path_or_paths if isinstance(path_or_paths, io.Movie) else io.open_movie(path_or_paths, reader=reader)
    if reader == "zarr":
        _require("zarr")
    name = "spotfit-movie-" + _token(movie)
    return da.from_array(movie, chunks=(n_chunk, -1, -1), name=name, lock=False, asarray=True,
                         fancy=False, meta=np.empty((0, 0, 0), movie.dtype))


def _token(movie: "io.Movie") -> str:
    dask_base = _require("dask.base")
    stats = [(p, os.stat(p).st_mtime_ns, os.stat(p).st_size) for p in movie.files]
    return dask_base.tokenize(stats, movie.shape, str(movie.dtype), movie.reader)


# --------------------------------------------------------------------------
# localize
# --------------------------------------------------------------------------

def _threads_plan(threads):
    """What a task needs to choose its OpenMP threads: ("fixed", n) or ("auto", {host: slots}, local)."""
    if threads is not None:
        return ("fixed", _valid_threads(threads))
    slots = {}
    try:
        from distributed import default_client
        client = default_client()
    except (ImportError, ValueError):
        client = None
    if client is not None:
        for w in client.scheduler_info(n_workers=-1)["workers"].values():
            slots[w["host"]] = slots.get(w["host"], 0) + int(w["nthreads"])
        local = 1
    else:
        dask = _require("dask")
        from dask.base import get_scheduler
        from dask.local import get_sync
        cores = usable_cores()
        local = cores if get_scheduler() is get_sync else \
            max(1, cores // int(dask.config.get("num_workers", None) or cores))
    return ("auto", slots, local)


def _task_threads(plan) -> int:
    if plan[0] == "fixed":
        return plan[1]
    _, slots, local = plan
    try:
        from distributed import get_worker
        from distributed.comm import get_address_host
        worker = get_worker()
    except (ImportError, ValueError):
        return local
    n = slots.get(get_address_host(worker.address)) or worker.state.nthreads
    return max(1, usable_cores() // max(1, int(n)))


def _localize_block(block, first, params):
    """Localize one chunk of frames; frame numbers made global by adding the chunk's first frame."""
    options, camera, classifier, regressor, detector, plan, attrs = params
    block = np.asarray(block)
    options = options.replace(threads=_task_threads(plan), chunk_frames=max(1, block.shape[0]))
    with warnings.catch_warnings():   # checked once, on the movie's first frame, by localize()
        warnings.simplefilter("ignore", BaselineWarning)
        warnings.simplefilter("ignore", NoiseModelWarning)   # per task it would repeat; see docs/cluster.md
        locs = core.localize(block, options, camera=camera, classifier=classifier, estimator=regressor,
                             detector=detector)
    if first:
        locs["frame"] += np.asarray(first, dtype=locs["frame"].dtype)
        if "group" in locs:   # frame * 2**24 + region (spotcore::kGroupsPerFrame): global like the frame
            locs["group"] += np.int64(first) << np.int64(24)
    locs.attrs = attrs
    return locs


def localize(data, options=None, *, chunks: int = DEFAULT_CHUNKS, threads=None, camera=None, classifier=None,
             estimator=None, detector=None, **localize_kwargs):
    """Localize a movie with Dask: :func:`spotfit.localize` mapped over chunks of whole frames.

    Parameters
    ----------
    data : dask.array.Array, numpy array, path, list of paths, or glob pattern
        ``(frames, rows, cols)`` raw camera counts (ADU). Paths are opened with :func:`open_movie`
        (``chunks`` frames per chunk); an array is rechunked to whole frames if it is split along rows
        or columns, and a numpy array is wrapped with ``chunks`` frames per chunk.
    chunks : int
        Frames per chunk when ``data`` is not already a Dask array.
    threads : int, optional
        OpenMP threads per task. Default: ``cores // (Dask worker threads on the host)`` (see the
        module docstring), so that the cores are not oversubscribed.
    options, camera, classifier, estimator, **localize_kwargs
        As :func:`spotfit.localize` (a :class:`spotfit.LocalizeOptions` and/or its keywords), except
        ``progress`` and ``chunk_frames``.

    Returns
    -------
    dask.dataframe.DataFrame
        One partition per chunk, in frame order, with exactly the columns and dtypes of
        :func:`spotfit.localize` (``status`` categorical with the fixed categories). Each partition
        has its own 0-based index, so ``.compute().reset_index(drop=True)`` equals the in-memory
        ``spotfit.localize`` result (frame numbers are global, 0-based); the computed frame also
        carries the same ``.attrs["spotfit"]``. Nothing is computed here: call ``.compute()``,
        :func:`to_parquet`, or ``dask.dataframe`` methods.

    Raises
    ------
    ImportError
        Without dask (``pip install spotfit[dask]``).
    ValueError, TypeError
        For bad parameters (checked now, on the client, not at compute time).
    """
    da = _require("dask.array")
    dd = _require("dask.dataframe")
    dask = _require("dask")
    for bad in ("progress", "chunk_frames"):
        if bad in localize_kwargs:
            raise TypeError(f"spotfit.distributed.localize does not take {bad!r}: use chunks= for the "
                            "frames per task, and the Dask dashboard or distributed.progress for progress")
    n_chunk = _frames_chunks(chunks)
    if isinstance(data, (str, os.PathLike, list, tuple)):
        data = io.open_movie(data)
    if isinstance(data, io.Movie):
        camera = camera_for_movie(camera, data.camera)   # as spotfit.localize on a path
        data = open_movie(data, chunks=n_chunk)
    elif not isinstance(data, da.Array):
        arr = np.asarray(data)
        data = da.from_array(arr, chunks=(n_chunk,) + arr.shape[1:]) if arr.ndim == 3 else da.from_array(arr)
    if data.ndim == 2:
        data = data[None]
    if data.ndim != 3:
        raise ValueError(f"data must be a (frames, rows, cols) array, got shape {data.shape}")
    if any(np.isnan(s) for s in data.shape):
        raise ValueError(f"data has unknown chunk sizes {data.chunks}; call compute_chunk_sizes() first")
    if len(data.chunks[1]) > 1 or len(data.chunks[2]) > 1:
        data = data.rechunk({1: -1, 2: -1})
    if data.dtype.kind not in "uif":
        raise TypeError(f"data must hold integer or float pixels, got dtype {data.dtype}")
    n_frames, rows, cols = (int(s) for s in data.shape)
    if n_frames == 0 or rows == 0 or cols == 0:
        raise ValueError(f"data is empty: {n_frames} frames of shape {(rows, cols)}")

    # Check every parameter now and get the output schema: one flat frame finds no spots.
    if classifier is not None or not (estimator is None or isinstance(estimator, str) and estimator in ESTIMATORS):
        from . import ml   # names and paths of models are turned into objects by their owner
        classifier, estimator = ml.resolve_models(classifier, estimator)
    if detector is not None:
        from . import ml
        detector = ml.as_detector(detector)
    options = LocalizeOptions.from_keywords(options, **localize_kwargs)
    flat = np.zeros((1, rows, cols), dtype=data.dtype)
    with warnings.catch_warnings():   # the flat frame is below any baseline: not the user's data
        warnings.simplefilter("ignore", CameraWarning)
        meta = core.localize(flat, options.replace(threads=1), camera=camera, classifier=classifier,
                             estimator=estimator, detector=detector).iloc[:0]
    core.warn_if_below_baseline(np.asarray(data[0]), camera if camera is not None else Camera())  # as in memory
    attrs = dict(meta.attrs)
    attrs["spotfit"] = dict(attrs["spotfit"], movie_shape=(n_frames, rows, cols))
    meta.attrs = attrs

    params = dask.delayed((options, camera, classifier, estimator, detector, _threads_plan(threads), attrs), pure=True,
                          traverse=False)
    firsts = np.concatenate([[0], np.cumsum(data.chunks[0])[:-1]]).astype(int)
    blocks = data.to_delayed().ravel()
    task = dask.delayed(_localize_block, pure=True)
    parts = [task(b, int(f), params) for b, f in zip(blocks, firsts)]
    return dd.from_delayed(parts, meta=meta, verify_meta=False)


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------

def _schema_metadata(meta: pd.DataFrame) -> dict:
    return {k.decode(): v.decode() for k, v in parquet_metadata(meta).items()}


def to_parquet(locs, path, *, overwrite: bool = False, compute: bool = True, **kwargs):
    """Write a Dask localization table as a Parquet dataset, one file per partition.

    Each worker writes its own partitions, so results larger than memory never pass through the
    client. Every file carries spotfit's metadata (parameters, camera, fixed ``status`` categories), so
    a single part file also loads with :func:`spotfit.io.load`, and the directory with
    :func:`read_parquet` or ``pandas.read_parquet``.

    Parameters
    ----------
    locs : dask.dataframe.DataFrame
        From :func:`localize`.
    path : str or os.PathLike
        Dataset directory (created; files ``part.0.parquet``, ``part.1.parquet``, ... in frame order).
    overwrite : bool
        Replace an existing dataset directory (otherwise an existing non-empty directory is an error).
    compute : bool
        Write now (default) or return a delayed write.
    **kwargs
        Passed to ``dask.dataframe.DataFrame.to_parquet`` (e.g. ``compression``).
    """
    dd = _require("dask.dataframe")
    _require("pyarrow")
    if not isinstance(locs, dd.DataFrame):
        raise TypeError(f"locs must be a dask.dataframe.DataFrame from spotfit.distributed.localize, "
                        f"got {type(locs).__name__}")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{str(path)!r} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ValueError(f"{str(path)!r} is not empty; pass overwrite=True to replace it")
    meta = locs._meta
    return locs.to_parquet(str(path), write_index=False, overwrite=overwrite, compute=compute,
                           custom_metadata=_schema_metadata(meta), engine="pyarrow", **kwargs)


def read_parquet(path, *, lazy: bool = True):
    """Read a dataset written by :func:`to_parquet`.

    Returns a ``dask.dataframe.DataFrame`` (``lazy=True``) or a pandas DataFrame in frame order with
    the fixed ``status`` categories and ``.attrs["spotfit"]`` restored.
    """
    pq = _require("pyarrow.parquet")
    files = sorted(Path(path).glob("*.parquet"), key=io.movies.natural_key)
    if not files:
        raise FileNotFoundError(f"no Parquet files in {str(path)!r}")
    smeta = pq.read_schema(files[0]).metadata or {}

    def fix(df):
        return restore_parquet_metadata(df, smeta)

    if not lazy:
        return fix(pd.concat([pd.read_parquet(f) for f in files], ignore_index=True))
    dd = _require("dask.dataframe")
    ddf = dd.read_parquet([str(f) for f in files], engine="pyarrow")
    meta = fix(ddf._meta.copy())
    return ddf.map_partitions(fix, meta=meta)


def _link_step(state, part, options, meta):
    """One partition of :func:`link`: link it after the rows of the events still open before it; return the
    events that can no longer grow and the new state (the rows of the events still open, the last frame)."""
    from .postprocess.link import event_table, link as link_table
    carry, previous_last = state
    final = part is None
    table = carry if final else (pd.concat([carry, part], ignore_index=True) if len(carry) else
                                 part.reset_index(drop=True))
    if not final and len(part):
        first = int(part["frame"].min())
        if previous_last is not None and first <= previous_last:
            raise ValueError(f"partitions must be whole frames in increasing order: a partition starts at frame "
                             f"{first}, at or before the previous one's last frame {previous_last} (repartition by "
                             "frame, as spotfit.distributed.localize writes them)")
    if not len(table):
        return meta, (table, previous_last)
    group = link_table(table, groups=True, **options)["group"].to_numpy()
    frame = table["frame"].to_numpy(np.int64)
    last = int(frame.max()) if previous_last is None else max(int(frame.max()), previous_last)
    n = int(group.max()) + 1
    group_last = np.full(n, np.iinfo(np.int64).min, np.int64)
    np.maximum.at(group_last, group, frame)
    # An event whose last frame is before last - max_dark_frames cannot take a row of a later frame.
    still_open = np.zeros(n, bool) if final else group_last >= last - options["max_dark_frames"]
    keep = still_open[group]
    done_groups = np.flatnonzero(~still_open)
    relabel = np.full(n, -1, np.int64)
    relabel[done_groups] = np.arange(len(done_groups))
    events = event_table(table[~keep], relabel[group[~keep]], len(done_groups))
    return events, (table[keep].reset_index(drop=True), last)


def link(locs, *, radius=None, max_dark_frames: int = 1, gate=None):
    """:func:`spotfit.link` of a lazy (Dask) table, partition by partition, in bounded memory.

    Partitions must be whole frames in increasing frame order (as :func:`localize` and :func:`read_parquet`
    give them). Each partition is linked after the rows of the events still open at the end of the previous
    one, so an event that crosses a partition boundary is one event, with all its rows. The greedy matching
    of a frame depends only on the events open then, so the events are those of ``spotfit.link`` on the whole
    table; only their order differs (by partition in which they end, then by first frame). Memory: one
    partition, the open events' rows, and, with the default radius, the largest uncertainty of each row
    (8 bytes a row) for the radius quantile.

    The default radius needs ``uncertainty_x``/``uncertainty_y`` columns (give ``radius=`` otherwise).
    Returns a Dask DataFrame of events (the columns of :func:`spotfit.link`), computed partition after
    partition.
    """
    _require("dask")
    import dask
    dd = _require("dask.dataframe")
    from .postprocess.link import GATE, default_radius, link as link_table
    from ._shared import validate
    if isinstance(locs, pd.DataFrame) or not hasattr(locs, "to_delayed"):
        raise TypeError("spotfit.distributed.link takes a Dask DataFrame; use spotfit.link for a pandas table")
    missing = [c for c in ("frame", "x", "y") if c not in locs.columns]
    if missing:
        raise ValueError(f"link: the table lacks column(s) {missing}")
    max_dark_frames = validate.integer("max_dark_frames", max_dark_frames, 0)
    if gate is None:
        gate = GATE if radius is None else 0.0
    if radius is None:
        if not {"uncertainty_x", "uncertainty_y"} <= set(locs.columns):
            raise ValueError("the default radius needs uncertainty_x/y columns: give radius= in pixels")
        u = locs[["uncertainty_x", "uncertainty_y"]].astype(np.float64).max(axis=1).compute().to_numpy()
        if not len(u):
            raise ValueError("link: the table is empty")
        radius = default_radius(u, u, gate if gate > 0 else GATE)
        del u
    options = {"radius": radius, "gate": gate, "max_dark_frames": max_dark_frames}
    meta = link_table(locs._meta_nonempty.assign(frame=np.arange(len(locs._meta_nonempty))), **options).iloc[:0]
    state = dask.delayed((locs._meta.iloc[:0], None))
    events = []
    for part in locs.to_delayed():
        step = dask.delayed(_link_step, nout=2)(state, part, options, meta)
        events.append(step[0])
        state = step[1]
    events.append(dask.delayed(_link_step, nout=2)(state, None, options, meta)[0])
    return dd.from_delayed(events, meta=meta, verify_meta=False)


def run(inputs, output=None, *, scheduler=None, workers=None, chunks: int = DEFAULT_CHUNKS,
        threads=None, overwrite: bool = False, **localize_kwargs):
    """Localize movie file(s) on a Dask cluster and write or return the result.

    Parameters
    ----------
    inputs : path, list of paths, or glob pattern
        One movie (files concatenated in order).
    output : path, optional
        A directory or a name ending in ``.parquet`` without a file there: a Parquet dataset written
        by the workers (:func:`to_parquet`). Any other name: gathered on the client and written with
        :func:`spotfit.io.save` (format from the extension). None: return the pandas DataFrame.
    scheduler : str, optional
        Address of a running scheduler (``tcp://HOST:PORT``).
    workers : int, optional
        Start a ``LocalCluster`` with this many worker processes (one thread each); ignored with
        ``scheduler``. Neither: a local cluster with one worker per core.
    chunks, threads, **localize_kwargs
        As :func:`localize`.

    Returns
    -------
    pandas.DataFrame or None
        The localizations when ``output`` is None.
    """
    distributed = _require("distributed")
    if scheduler is not None and workers is not None:
        raise ValueError("give either scheduler (an existing cluster) or workers (a local one), not both")
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise ValueError(f"workers must be >= 1, got {workers!r}")
    cluster = None
    if scheduler is None:
        cluster = distributed.LocalCluster(n_workers=int(workers or usable_cores()), threads_per_worker=1,
                                           processes=True, dashboard_address=":0")
    client = distributed.Client(scheduler if scheduler is not None else cluster)
    try:
        locs = localize(inputs, chunks=chunks, threads=threads, **localize_kwargs)
        if output is None:
            return locs.compute().reset_index(drop=True)
        out = Path(output)
        if out.suffix.lower() in ("", ".parquet") and not out.is_file():
            to_parquet(locs, out, overwrite=overwrite)
            return None
        io.save(locs.compute().reset_index(drop=True), out)
        return None
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
