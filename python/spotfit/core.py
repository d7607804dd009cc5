"""Public entry points over the C++ core: localize, and the filter/detect/fit steps on their own."""
from __future__ import annotations

import os
import warnings
from typing import Iterable, Optional, Tuple

import numpy as np
import pandas as pd

from . import _spotcore, _validate
from .camera import Camera

MODELS = {"fixed_sigma": _spotcore.Model.fixed_sigma, "gauss": _spotcore.Model.gauss,
          "elliptical": _spotcore.Model.elliptical}
ESTIMATORS = {"lsq": _spotcore.Estimator.lsq, "mle": _spotcore.Estimator.mle}
THRESHOLD_MODES = {"std": _spotcore.ThresholdMode.std_w1, "absolute": _spotcore.ThresholdMode.absolute}
FIT_STATUS = [s for s, _ in sorted(_spotcore.FitStatus.__members__.items(), key=lambda kv: int(kv[1]))]

COLUMNS = ["frame", "x", "y", "photons", "background", "sigma_x", "sigma_y", "uncertainty_x", "uncertainty_y",
           "uncertainty_photons", "uncertainty_background", "uncertainty_sigma_x", "uncertainty_sigma_y",
           "loglik", "chi2", "iterations", "status", "peak_row", "peak_col"]


def _table(records: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame({name: records[name] for name in records.dtype.names})
    df["status"] = pd.Categorical.from_codes(records["status"].astype(np.int8), categories=FIT_STATUS)
    return df[COLUMNS]


def wavelet_filter(image) -> Tuple[np.ndarray, np.ndarray]:
    """À trous B-spline wavelet planes of a 2D image (ThunderSTORM's order 3, scale 2).

    Returns ``(W1, W2)`` float32 arrays of the image's shape: ``W1 = I - V1``, ``W2 = V1 - V2``, with
    mirror borders. Detection looks for maxima of ``W2``; its default threshold is ``std(W1)``.
    """
    image = _validate.pixel_array(image, "image")
    if image.ndim != 2 or image.size == 0:
        raise ValueError(f"image must be a non-empty 2D array, got shape {image.shape}")
    return _spotcore.wavelet_filter(image.astype(np.float32, copy=False))


def find_peaks(filtered, threshold: float, *, min_distance: float = 0.0, border: int = 0) -> pd.DataFrame:
    """Local maxima (8-neighbourhood) of a filtered 2D image above ``threshold``.

    Returns a DataFrame with ``row``, ``col`` (int32) and ``value``, in raster order.
    """
    filtered = np.asarray(filtered, dtype=np.float32)
    if filtered.ndim != 2 or filtered.size == 0:
        raise ValueError(f"filtered must be a non-empty 2D array, got shape {filtered.shape}")
    pos, val = _spotcore.find_local_maxima(filtered, float(threshold), float(min_distance), int(border))
    return pd.DataFrame({"row": pos[:, 0], "col": pos[:, 1], "value": val})


def fit_spots(boxes, *, psf_sigma: float = 1.3, estimator: str = "mle", model: str = "gauss",
              variance=None, max_iterations: int = 30, tolerance: float = 1e-3,
              threads: Optional[int] = None) -> pd.DataFrame:
    """Fit a pixel-integrated Gaussian to each box of photons.

    Parameters
    ----------
    boxes : array (n, box, box)
        Photons per pixel (after camera conversion). NaN marks pixels outside the image.
    variance : array (n, box, box), optional
        sCMOS read-noise variance in photons² per pixel (MLE only).

    Returns
    -------
    DataFrame with one row per box; ``x``, ``y`` are in box coordinates (centre of box pixel
    (0, 0) is (0, 0)).
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.ndim != 3 or boxes.shape[1] != boxes.shape[2]:
        raise ValueError(f"boxes must have shape (n, box, box), got {boxes.shape}")
    _validate.odd_box(boxes.shape[1])
    rec = _spotcore.fit_boxes(boxes, variance, MODELS[_validate.choice("model", model, MODELS)],
                              ESTIMATORS[_validate.choice("estimator", estimator, ESTIMATORS)],
                              _validate.positive("psf_sigma", psf_sigma), _validate.integer("max_iterations", max_iterations, 1),
                              _validate.positive("tolerance", tolerance), _validate.threads(threads))
    return _table(rec).drop(columns=["frame", "peak_row", "peak_col"])


def camera_from_file(path_or_paths) -> Camera:
    """The camera a movie's metadata records (spotfit simulate, ImageJ, Micro-Manager, Picasso), as the
    command line uses it; :class:`spotfit.io.MovieError` naming the file if those settings are invalid."""
    from . import io
    try:
        return Camera.from_metadata(io.movie_info(path_or_paths).metadata)
    except io.MovieError:
        raise
    except ValueError as exc:
        raise io.MovieError(f"{path_or_paths!r}: the camera settings in its metadata are invalid ({exc}); "
                            "pass camera=") from exc


def _is_path_input(stack) -> bool:
    return isinstance(stack, (str, os.PathLike)) or (
        isinstance(stack, (list, tuple)) and bool(stack) and all(isinstance(p, (str, os.PathLike)) for p in stack))


def _chunks(stack, chunk_frames: int) -> Tuple[Iterable[Tuple[int, np.ndarray]], int, tuple]:
    """(iterator of (first_frame, chunk), n_frames, frame shape) for an array or a movie path."""
    if _is_path_input(stack):
        from . import io
        n, rows, cols = io.movie_info(stack)[:3]
        return io.iter_chunks(stack, chunk_frames=chunk_frames), n, (rows, cols)
    if stack is None or isinstance(stack, (dict, set)):
        raise TypeError(f"stack must be an array or a movie path, got {type(stack).__name__}")
    if not hasattr(stack, "ndim") or not hasattr(stack, "shape"):
        stack = np.asarray(stack)
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3:
        raise ValueError(f"stack must be a 2D frame or a 3D (frames, rows, cols) array, got shape {stack.shape}")
    n = stack.shape[0]
    return ((i, stack[i:i + chunk_frames]) for i in range(0, n, chunk_frames)), n, tuple(stack.shape[1:])


def localize(stack, *, camera: Optional[Camera] = None, psf_sigma: float = 1.3, box: int = 7,
             threshold: float = 1.5, threshold_mode: str = "std", min_distance: float = 0.0, border: int = 0,
             estimator="mle", model: str = "gauss", max_iterations: int = 30, tolerance: float = 1e-3,
             threads: Optional[int] = None, chunk_frames: int = 256, progress: bool = False,
             classifier=None, classify_threshold: float = 0.5, drop_bad: bool = False,
             mask_neighbours: bool = True) -> pd.DataFrame:
    """Detect and fit every spot of a movie.

    Parameters
    ----------
    stack : array (frames, rows, cols) or (rows, cols), path to a movie, or list of paths (one series)
        Raw camera counts (ADU) of any integer or float dtype. Processed ``chunk_frames`` frames at a
        time, so a memory-mapped or file-backed movie never has to fit in RAM.
    camera : Camera, optional
        ADU -> photons conversion; default: for a movie path, the camera its metadata records
        (:meth:`Camera.from_metadata`, as the command line), else ``Camera()`` (baseline 100 ADU,
        1 e-/ADU, no gain).
    psf_sigma : float
        PSF standard deviation in pixels: start value of the fit (and its value for ``model="fixed_sigma"``).
    box : int
        Odd side of the square fit box, pixels. Spots near the border are fitted with a clipped box.
    threshold, threshold_mode : float, {"std", "absolute"}
        Detection threshold on the second wavelet plane W2: ``threshold * std(W1)`` per frame
        (ThunderSTORM's ``std(Wave.F1)``), or an absolute value in photons.
    min_distance : float
        Drop maxima closer than this (px) to a stronger one; <= 1 keeps all 8-neighbourhood maxima.
    border : int
        Ignore peaks closer than this to the image edge.
    estimator : {"mle", "lsq"}, or a centroid regressor
        Poisson maximum likelihood or least squares; or a :class:`spotfit.CentroidRegressor` (or
        ``"ridge"``/``"tf-linear"``, the packaged models) that estimates each spot's centre straight from
        its image instead of fitting (detection unchanged; fit-only columns are NaN, ``status`` missing).
    model : {"gauss", "elliptical", "fixed_sigma"}
        Symmetric sigma, sigma_x and sigma_y, or sigma fixed at ``psf_sigma``.
    mask_neighbours : bool
        Fit each box without the pixels that lie closer to another detected spot than to its own, so
        that close neighbours do not pull the single-emitter fit.
    threads : int, optional
        OpenMP threads (default: all cores, or ``OMP_NUM_THREADS``). Results do not depend on it.
    classifier : SpotClassifier or path, optional
        Adds ``good`` (bool) and ``p_good`` columns from a trained :class:`spotfit.SpotClassifier`
        applied to each spot's image; ``drop_bad=True`` keeps only the good spots, screening each detection
        before the fit so that bad spots are never fitted (same rows as fitting all, then dropping).

    Returns
    -------
    pandas.DataFrame
        One row per localization: ``frame`` (0-based), ``x`` (column), ``y`` (row) in pixels with the
        centre of pixel (0, 0) at (0, 0); ``photons``, ``background`` (photons/pixel), ``sigma_x``,
        ``sigma_y`` (px); ``uncertainty_*``: Cramér–Rao bounds at the estimate; ``loglik`` (Poisson
        log-likelihood ratio to the saturated model), ``chi2`` (Pearson), ``iterations``, ``status``
        (categorical: converged, max_iterations, singular, out_of_box, not_fitted), ``peak_row``,
        ``peak_col`` (detection pixel). ``.attrs["spotfit"]`` records the parameters.
    """
    if camera is None and _is_path_input(stack):
        camera = camera_from_file(stack)
    camera = Camera() if camera is None else camera
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be a spotfit.Camera, got {type(camera).__name__}")
    if isinstance(estimator, str) and estimator not in ESTIMATORS and not estimator.endswith(".npz"):
        from .regress import DEFAULT_MODELS
        if estimator not in DEFAULT_MODELS:
            raise ValueError(f"estimator must be one of {sorted(ESTIMATORS) + sorted(DEFAULT_MODELS)}, a "
                             f"CentroidRegressor or a saved regressor (.npz), got {estimator!r}")
    if not (isinstance(estimator, str) and estimator in ESTIMATORS):
        return _localize_with_regressor(stack, estimator, camera=camera, psf_sigma=psf_sigma, box=box,
                                        threshold=threshold, threshold_mode=threshold_mode,
                                        min_distance=min_distance, border=border, chunk_frames=chunk_frames)
    if drop_bad and classifier is None:
        raise ValueError("drop_bad=True needs a classifier= (a SpotClassifier or a saved one)")
    if classifier is not None:
        from .classify import SpotClassifier
        if isinstance(classifier, (str, os.PathLike)):
            classifier = SpotClassifier.load(classifier)
        elif not isinstance(classifier, SpotClassifier):
            raise TypeError("classifier must be a spotfit.SpotClassifier or a path to a saved one")
    psf_sigma = _validate.positive("psf_sigma", psf_sigma)
    box = _validate.odd_box(box)
    threshold = _validate.positive("threshold", threshold)   # <= 0 would make every pixel a spot
    mode = THRESHOLD_MODES[_validate.choice("threshold_mode", threshold_mode, THRESHOLD_MODES)]
    model_id = MODELS[_validate.choice("model", model, MODELS)]
    est_id = ESTIMATORS[estimator]
    min_distance = _validate.positive("min_distance", min_distance, allow_zero=True)
    border = _validate.integer("border", border, 0)
    max_iterations = _validate.integer("max_iterations", max_iterations, 1)
    tolerance = _validate.positive("tolerance", tolerance)
    nthreads = _validate.threads(threads)
    chunk_frames = _validate.integer("chunk_frames", chunk_frames, 1)

    chunks, n_frames, frame_shape = _chunks(stack, int(chunk_frames))
    if n_frames == 0 or 0 in frame_shape:
        raise ValueError(f"stack is empty: {n_frames} frames of shape {frame_shape}")
    if box > max(frame_shape):
        raise ValueError(f"box {box} is larger than the frame {frame_shape[0]}x{frame_shape[1]}")
    if camera.is_scmos:
        maps = [m for m in (camera.offset_map, camera.gain_map, camera.variance_map) if m is not None]
        if maps[0].shape != frame_shape:
            raise ValueError(f"camera maps have shape {maps[0].shape} but frames are {frame_shape}; "
                             "use Camera.crop() for a sensor ROI")
    use_variance = camera.variance_map if est_id == _spotcore.Estimator.mle else None

    parts, goods, probs = [], [], []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n_frames, unit="frame", desc="localize")
    try:
        for first, chunk in chunks:
            chunk = _validate.pixel_array(chunk)
            if chunk.ndim == 2:
                chunk = chunk[None]
            if first == 0:
                _warn_if_below_baseline(chunk[0], camera)
            cam_args = (chunk, camera.baseline, camera.sensitivity, camera.em_gain, camera.qe, camera.offset_map,
                        camera.gain_map, use_variance, mode, threshold, min_distance, int(border), box)
            if classifier is not None and drop_bad:
                # Screen the detections' images first and fit only the good ones (bad spots are
                # dropped anyway, and they are the slow fits). Same rows as fitting all and dropping.
                rec, good, p_good = _screen_then_fit(classifier, cam_args, camera, classify_threshold, box,
                                                     psf_sigma, model_id, est_id, int(max_iterations), tolerance,
                                                     nthreads, int(first), bool(mask_neighbours))
                parts.append(rec)
                goods.append(good)
                probs.append(p_good)
            else:
                rec = _spotcore.localize(*cam_args, psf_sigma, model_id, est_id, int(max_iterations), tolerance,
                                         nthreads, int(first), bool(mask_neighbours))
                parts.append(rec)
            if classifier is not None and not drop_bad:  # classify per chunk so that a file is read once
                table = _table(rec)
                table["frame"] -= first
                good, p_good = classifier.predict_spots(chunk, table, camera=camera, threshold=classify_threshold)
                goods.append(np.asarray(good, bool))
                probs.append(np.asarray(p_good, np.float32))
            if bar is not None:
                bar.update(chunk.shape[0])
    finally:
        if bar is not None:
            bar.close()
    locs = _table(np.concatenate(parts))
    if classifier is not None:
        locs["good"] = np.concatenate(goods)
        locs["p_good"] = np.concatenate(probs)
        if drop_bad:  # already screened before the fit; kept as a guard
            locs = locs[locs["good"]].reset_index(drop=True)
    locs.attrs["spotfit"] = _metadata(camera, n_frames, frame_shape, {
        "psf_sigma": psf_sigma, "box": box, "threshold": threshold, "threshold_mode": threshold_mode,
        "min_distance": min_distance, "border": int(border), "estimator": estimator, "model": model,
        "max_iterations": int(max_iterations), "tolerance": tolerance, "mask_neighbours": bool(mask_neighbours)})
    if classifier is not None:
        locs.attrs["spotfit"]["classifier"] = {"model": classifier.model, "threshold": classify_threshold}
    return locs


def _warn_if_below_baseline(frame, camera: Camera) -> None:
    """A baseline above most of the data makes every pixel negative photons: nothing fits, silently."""
    offset = float(np.median(camera.offset_map)) if camera.offset_map is not None else camera.baseline
    median = float(np.median(frame))
    if median < offset:
        warnings.warn(f"most pixels are below the camera offset (median {median:g} ADU < {offset:g} ADU): "
                      "photons come out negative and spots will not fit; check Camera(baseline=...)",
                      stacklevel=3)


def _screen_then_fit(classifier, cam_args, camera, classify_threshold, box, psf_sigma, model_id, est_id,
                     max_iterations, tolerance, nthreads, first, mask_neighbours):
    """One chunk: detect (C++), classify each detection's image, fit the good boxes only (C++)."""
    chunk = cam_args[0]
    frame, peak_row, peak_col, boxes, variance = _spotcore.detect_boxes(*cam_args, nthreads, first, mask_neighbours)
    peaks = pd.DataFrame({"frame": frame - first, "peak_row": peak_row, "peak_col": peak_col})
    good, p_good = classifier.predict_spots(chunk, peaks, camera=camera, threshold=classify_threshold)
    keep = np.flatnonzero(good)
    rec = _spotcore.fit_boxes(boxes[keep], None if variance is None else variance[keep], model_id, est_id,
                              psf_sigma, max_iterations, tolerance, nthreads)
    half = box // 2
    rec["frame"], rec["peak_row"], rec["peak_col"] = frame[keep], peak_row[keep], peak_col[keep]
    rec["x"] += (peak_col[keep] - half).astype(np.float32)
    rec["y"] += (peak_row[keep] - half).astype(np.float32)
    return rec, np.ones(len(keep), bool), np.asarray(p_good, np.float32)[keep]


def _metadata(camera: Camera, n_frames: int, frame_shape, parameters: dict) -> dict:
    from . import __version__
    return {"version": __version__, "camera": camera.as_dict(), "movie_shape": (int(n_frames),) + tuple(frame_shape),
            "pixel_size_nm": camera.pixel_size_nm, "parameters": parameters}


def _localize_with_regressor(stack, estimator, *, camera, psf_sigma, box, threshold, threshold_mode, min_distance,
                             border, chunk_frames) -> pd.DataFrame:
    """Detection as in :func:`localize`, centres from a learned regressor instead of the LM fit."""
    from .realtime import Localizer
    from .regress import as_regressor
    if threshold_mode != "std":
        raise ValueError("a centroid regressor detects with threshold_mode='std'")
    regressor = as_regressor(estimator)
    chunks, n_frames, frame_shape = _chunks(stack, int(chunk_frames))
    if n_frames == 0 or 0 in frame_shape:
        raise ValueError(f"stack is empty: {n_frames} frames of shape {frame_shape}")
    finder = Localizer(camera=camera, estimator=regressor, threshold=threshold, min_distance=min_distance,
                       border=border, psf_sigma=psf_sigma, box=box)
    parts = []
    for first, chunk in chunks:
        chunk = _validate.pixel_array(chunk)
        for i, frame in enumerate(chunk if chunk.ndim == 3 else chunk[None]):
            part = finder.process(frame)
            part["frame"] = np.int64(first + i)
            parts.append(part)
    locs = pd.concat(parts, ignore_index=True).reindex(columns=COLUMNS + ["snr"])
    locs["status"] = pd.Categorical([None] * len(locs), categories=FIT_STATUS)
    locs["iterations"] = np.int32(0)                   # no fit ran (exports need an integer here)
    locs = locs.astype({"frame": np.int64, "peak_row": np.int32, "peak_col": np.int32, "iterations": np.int32})
    locs.attrs["spotfit"] = _metadata(camera, n_frames, frame_shape, {
        "psf_sigma": psf_sigma, "box": box, "threshold": threshold, "threshold_mode": threshold_mode,
        "min_distance": min_distance, "border": int(border), "estimator": f"regressor:{regressor.kind}"})
    return locs
