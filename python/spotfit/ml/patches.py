"""Raw spot images around localizations: :func:`extract_patches` cuts the camera-converted image (photons)
around each localization's peak pixel, with the core's one box cutter (:func:`spotfit.core.cut_boxes`).
"""
from __future__ import annotations

import numbers
import os
from typing import Optional

import numpy as np
import pandas as pd

from ..camera import Camera
from ..core import cut_boxes
from ..io import open_movie


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
        stack = open_movie(stack)
    arr = stack if hasattr(stack, "ndim") else np.asarray(stack)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"stack must be a 2D frame or a 3D (frames, rows, cols) array, got shape {arr.shape}")
    if np.dtype(arr.dtype).kind not in "uif":
        raise TypeError(f"stack must hold integer or float pixels, got dtype {arr.dtype}")
    n_frames, n_rows, n_cols = arr.shape
    camera.check_frame_shape((n_rows, n_cols))
    f, r, c = _centres(locs, n_frames, (n_rows, n_cols))
    n = len(f)
    patches = np.empty((n, size, size), np.float32)
    mask = np.empty((n, size, size), bool)
    if n:
        order = np.argsort(f, kind="stable")
        fs = f[order]
        step = int(chunk_frames)
        for first in range(0, n_frames, step):
            lo, hi = np.searchsorted(fs, [first, first + step])
            if hi > lo:
                sel = order[lo:hi]
                patches[sel], _, mask[sel] = cut_boxes(arr[first:first + step], f[sel] - first, r[sel], c[sel], size,
                                                       camera=camera, border="edge")
            if hi == n:
                break
    if border == "exclude":
        index = np.flatnonzero(mask.all(axis=(1, 2)))
        return patches[index], index
    return (patches, mask) if return_mask else patches


