"""Raw spot images around localizations, and a file format for labelled spot data sets.

:func:`extract_patches` cuts the camera-converted image (photons) around each localization's peak
pixel; :func:`save_dataset` / :func:`load_dataset` keep patches, fit parameters and labels together
in one ``.npz`` (numpy only, no pickle) or HDF5 file (``pip install spotfit[io]``).
"""
from __future__ import annotations

import json
import numbers
import os
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import pandas as pd

from .camera import Camera

DATASET_FORMAT = "spotfit-spot-dataset"
DATASET_VERSION = 1


def _centres(locs: pd.DataFrame, n_frames: int, shape) -> tuple:
    """(frame, row, col) int64 arrays of each localization's peak pixel."""
    if not isinstance(locs, pd.DataFrame):
        raise TypeError(f"locs must be a pandas DataFrame, got {type(locs).__name__}")
    if "peak_row" in locs and "peak_col" in locs and not locs[["peak_row", "peak_col"]].isna().any().any():
        rows, cols = locs["peak_row"].to_numpy(), locs["peak_col"].to_numpy()
    elif "x" in locs and "y" in locs:
        xy = locs[["x", "y"]].to_numpy(dtype=np.float64)
        if not np.isfinite(xy).all():
            raise ValueError("locs has NaN or inf in x/y and no peak_row/peak_col to fall back on")
        rows, cols = np.rint(xy[:, 1]), np.rint(xy[:, 0])
    else:
        raise ValueError("locs needs peak_row/peak_col or x/y columns (pixels)")
    rows, cols = rows.astype(np.int64), cols.astype(np.int64)
    if "frame" in locs:
        frames = locs["frame"].to_numpy()
        if frames.dtype.kind == "f" and not np.all(frames == np.floor(frames)):
            raise ValueError("locs['frame'] must hold whole (0-based) frame numbers")
        frames = frames.astype(np.int64)
    elif n_frames == 1:
        frames = np.zeros(len(locs), np.int64)
    else:
        raise ValueError(f"locs has no 'frame' column but the movie has {n_frames} frames")
    if len(locs):
        if frames.min() < 0 or frames.max() >= n_frames:
            raise ValueError(f"locs frames span {frames.min()}..{frames.max()} but the movie has {n_frames} "
                             "frames (0-based)")
        if rows.min() < 0 or cols.min() < 0 or rows.max() >= shape[0] or cols.max() >= shape[1]:
            raise ValueError(f"a localization's centre pixel lies outside the {shape[0]}x{shape[1]} frame")
    return frames, rows, cols


_KERNEL_DTYPES = {np.dtype(t) for t in (np.uint8, np.uint16, np.int16, np.uint32, np.int32, np.float32, np.float64)}


def _cut(frames_arr, first, f, r, c, size, camera):
    """Patches of `frames_arr` (chunk starting at frame `first`) with edge-replicated borders."""
    if isinstance(frames_arr, np.ndarray) and frames_arr.dtype in _KERNEL_DTYPES:
        from . import _kernels  # Cython: same arithmetic; numpy version below for other arrays
        idx = [np.ascontiguousarray(a, np.int64) for a in (f - first, r, c)]
        if camera.is_scmos:
            shape = frames_arr.shape[1:]
            off = camera.offset_map if camera.offset_map is not None else np.full(shape, camera.baseline, np.float32)
            gain = (camera.gain_map if camera.gain_map is not None
                    else np.full(shape, 1.0 / camera.sensitivity, np.float32))
            return _kernels.cut_patches(frames_arr, *idx, size, 0.0, 0.0, off, gain, np.float32(camera.qe))
        scale = camera.sensitivity / (camera.em_gain * camera.qe)
        return _kernels.cut_patches(frames_arr, *idx, size, np.float32(scale), np.float32(-camera.baseline * scale))
    return _cut_numpy(frames_arr, first, f, r, c, size, camera)


def _cut_numpy(frames_arr, first, f, r, c, size, camera):
    half = size // 2
    off = np.arange(-half, half + 1)
    rr, cc = r[:, None] + off, c[:, None] + off
    nr, nc = frames_arr.shape[1:]
    inside = ((rr >= 0) & (rr < nr))[:, :, None] & ((cc >= 0) & (cc < nc))[:, None, :]
    rr, cc = np.clip(rr, 0, nr - 1)[:, :, None], np.clip(cc, 0, nc - 1)[:, None, :]
    adu = np.asarray(frames_arr[(f - first)[:, None, None], rr, cc], dtype=np.float32)
    if camera.is_scmos:
        offset = camera.offset_map[rr, cc] if camera.offset_map is not None else np.float32(camera.baseline)
        gain = camera.gain_map[rr, cc] if camera.gain_map is not None else np.float32(1.0 / camera.sensitivity)
        ph = (adu - offset) / gain / np.float32(camera.qe)
    else:
        ph = camera.to_photons(adu)
    return ph.astype(np.float32, copy=False), inside


def extract_patches(stack, locs: pd.DataFrame, size: int = 9, *, camera: Optional[Camera] = None,
                    border: str = "pad", return_mask: bool = False, chunk_frames: int = 256):
    """Cut the image (in photons) around each localization's peak pixel.

    Parameters
    ----------
    stack : array (frames, rows, cols) or (rows, cols), or path to a movie
        Raw camera counts (ADU), as given to :func:`spotfit.localize`. A path (or list/glob, see
        :func:`spotfit.io.read_movie`) is read ``chunk_frames`` frames at a time.
    locs : DataFrame
        One row per spot: ``frame`` (0-based; optional for a single frame) and the centre pixel,
        ``peak_row``/``peak_col`` (the detection pixel, written by ``localize``) or, if absent,
        ``y``/``x`` rounded to the nearest pixel.
    size : int
        Odd side of the square patch, pixels (default 9).
    camera : Camera, optional
        ADU -> photons conversion, the same as ``localize``'s (default ``Camera()``: baseline
        100 ADU, 1 e-/ADU); sCMOS per-pixel maps are applied pixel by pixel.
    border : {"pad", "exclude"}
        Spots whose patch reaches past the image edge. ``"pad"`` (default) keeps every spot and
        fills the outside pixels with the nearest edge pixel's value (finite numbers a classifier
        can read); ``"exclude"`` drops those spots.
    return_mask : bool
        With ``border="pad"``, also return a boolean mask (n, size, size), True for pixels inside
        the image.

    Returns
    -------
    patches : ndarray (n, size, size) float32
        Photons per pixel; row ``i`` belongs to ``locs.iloc[i]`` (``"pad"``).
    mask : ndarray (n, size, size) bool
        Only with ``border="pad", return_mask=True``.
    index : ndarray (m,) int64
        Only with ``border="exclude"``: positions (``iloc``) of the kept rows of ``locs``;
        ``patches`` then has m rows.
    """
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd integer, got {size!r}")
    size = int(size)
    if border not in ("pad", "exclude"):
        raise ValueError(f"border must be 'pad' or 'exclude', got {border!r}")
    camera = Camera() if camera is None else camera
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be a spotfit.Camera, got {type(camera).__name__}")

    if isinstance(stack, (str, os.PathLike, list)):
        from . import io
        n_frames, n_rows, n_cols = io.movie_info(stack)[:3]
        chunks = io.iter_chunks(stack, chunk_frames=int(chunk_frames))
    else:
        arr = stack if hasattr(stack, "ndim") else np.asarray(stack)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise ValueError(f"stack must be a 2D frame or a 3D (frames, rows, cols) array, got shape {arr.shape}")
        if np.dtype(arr.dtype).kind not in "uif":
            raise TypeError(f"stack must hold integer or float pixels, got dtype {arr.dtype}")
        n_frames, n_rows, n_cols = arr.shape
        chunks = [(0, arr)]
    if camera.is_scmos:
        shp = next(m.shape for m in (camera.offset_map, camera.gain_map, camera.variance_map) if m is not None)
        if shp != (n_rows, n_cols):
            raise ValueError(f"camera maps have shape {shp} but frames are {(n_rows, n_cols)}; use Camera.crop()")
    f, r, c = _centres(locs, n_frames, (n_rows, n_cols))
    n = len(f)
    patches = np.empty((n, size, size), np.float32)
    mask = np.empty((n, size, size), bool)
    if n:
        order = np.argsort(f, kind="stable")
        fs = f[order]
        for first, chunk in chunks:
            lo, hi = np.searchsorted(fs, [first, first + chunk.shape[0]])
            if hi > lo:
                sel = order[lo:hi]
                patches[sel], mask[sel] = _cut(chunk, first, f[sel], r[sel], c[sel], size, camera)
            if hi == n:
                break
    if border == "exclude":
        index = np.flatnonzero(mask.all(axis=(1, 2)))
        return patches[index], index
    return (patches, mask) if return_mask else patches


# --------------------------------------------------------------------------
# data sets: patches + fit parameters + labels in one file
# --------------------------------------------------------------------------

class SpotDataset(NamedTuple):
    """A labelled spot data set, as read by :func:`load_dataset`."""

    patches: np.ndarray          #: (n, size, size) float32 photons
    params: pd.DataFrame         #: fit parameters (one row per patch); may have no columns
    labels: Optional[np.ndarray]  #: (n,) bool, True = good; None when the file has none
    meta: dict                   #: free-form metadata (JSON)


def _columns(params: pd.DataFrame) -> dict:
    out = {}
    for name in params.columns:
        col = params[name]
        key = str(name)
        if "/" in key:
            raise ValueError(f"column name {key!r} may not contain '/'")
        if isinstance(col.dtype, pd.CategoricalDtype):
            out[f"cat/{key}/codes"] = col.cat.codes.to_numpy(np.int16)
            out[f"cat/{key}/categories"] = np.asarray([str(v) for v in col.cat.categories], dtype=str)
        elif col.dtype.kind in "biuf":
            out[f"col/{key}"] = col.to_numpy()
        else:
            out[f"str/{key}"] = col.astype(str).to_numpy(dtype=str)
    return out


def save_dataset(path, patches, params: Optional[pd.DataFrame] = None, labels=None, *,
                 meta: Optional[dict] = None) -> Path:
    """Write patches, their fit parameters and good/bad labels to one file.

    Parameters
    ----------
    path : str or Path
        ``.npz`` (numpy, read back without pickle) or ``.h5``/``.hdf5`` (needs h5py, ``spotfit[io]``).
    patches : array (n, size, size)
        Spot images in photons (:func:`extract_patches`).
    params : DataFrame, optional
        n rows of fit parameters (e.g. the localizations); numeric, categorical and text columns.
    labels : array-like (n,) of bool, optional
        True for good spots.
    meta : dict, optional
        JSON-serializable metadata (camera, rules, ...).
    """
    path = Path(path)
    patches = np.asarray(patches, dtype=np.float32)
    if patches.ndim != 3 or patches.shape[1] != patches.shape[2]:
        raise ValueError(f"patches must have shape (n, size, size), got {patches.shape}")
    n = len(patches)
    params = pd.DataFrame(index=range(n)) if params is None else params
    if len(params) != n:
        raise ValueError(f"params has {len(params)} rows but there are {n} patches")
    arrays = {"patches": patches}
    if labels is not None:
        labels = np.asarray(labels)
        if labels.shape != (n,) or labels.dtype.kind not in "bui":
            raise ValueError(f"labels must be n={n} booleans, got shape {labels.shape} dtype {labels.dtype}")
        arrays["labels"] = labels.astype(bool)
    arrays.update(_columns(params.reset_index(drop=True)))
    header = {"format": DATASET_FORMAT, "format_version": DATASET_VERSION, "columns": [str(c) for c in params.columns],
              "meta": meta or {}}
    arrays["header"] = np.asarray(json.dumps(header, default=str))
    suffix = path.suffix.lower()
    if suffix == ".npz":
        np.savez_compressed(path, **arrays)
    elif suffix in (".h5", ".hdf5"):
        h5py = _h5py()
        with h5py.File(path, "w") as h5:
            for key, a in arrays.items():
                if a.dtype.kind == "U":
                    a = np.char.encode(a, "utf-8") if a.ndim else np.bytes_(str(a).encode())
                h5.create_dataset(key, data=a, compression="gzip" if a.ndim and a.size > 64 else None)
    else:
        raise ValueError(f"dataset file must end in .npz, .h5 or .hdf5, got {path.name!r}")
    return path


def _h5py():
    try:
        import h5py
    except ImportError as exc:
        raise ImportError("HDF5 data sets need h5py: `pip install spotfit[io]` (or use a .npz file)") from exc
    return h5py


def load_dataset(path) -> SpotDataset:
    """Read a file written by :func:`save_dataset`; a foreign or damaged file raises ValueError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such data set: {str(path)!r}")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
        elif suffix in (".h5", ".hdf5"):
            h5py = _h5py()
            arrays = {}
            with h5py.File(path, "r") as h5:
                h5.visititems(lambda k, d: arrays.__setitem__(k, d[()]) if isinstance(d, h5py.Dataset) else None)
            arrays = {k: (np.char.decode(v, "utf-8") if isinstance(v, np.ndarray) and v.dtype.kind == "S"
                          else v.decode() if isinstance(v, bytes) else v) for k, v in arrays.items()}
        else:
            raise ValueError(f"dataset file must end in .npz, .h5 or .hdf5, got {path.name!r}")
        header = json.loads(str(arrays.pop("header")))
    except (OSError, KeyError, ValueError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable spotfit spot data set: {exc}") from exc
    if header.get("format") != DATASET_FORMAT:
        raise ValueError(f"{path} is not a spotfit spot data set (format {header.get('format')!r})")
    if header.get("format_version") != DATASET_VERSION:
        raise ValueError(f"{path}: data set format version {header.get('format_version')} is not supported "
                         f"(this spotfit reads version {DATASET_VERSION})")
    patches = np.asarray(arrays["patches"], dtype=np.float32)
    cols = {}
    for name in header["columns"]:
        if f"col/{name}" in arrays:
            cols[name] = arrays[f"col/{name}"]
        elif f"str/{name}" in arrays:
            cols[name] = arrays[f"str/{name}"].astype(object)
        else:
            cats = list(arrays[f"cat/{name}/categories"])
            cols[name] = pd.Categorical.from_codes(arrays[f"cat/{name}/codes"].astype(np.int64), categories=cats)
    params = pd.DataFrame(cols, index=range(len(patches)))
    labels = arrays.get("labels")
    return SpotDataset(patches, params, None if labels is None else labels.astype(bool), header.get("meta", {}))
