"""The public API over the C++ core: localize a movie, and the filter / detect / cut / fit steps on their own.

This layer knows nothing of file formats or machine learning. A movie is anything with ``shape`` and
``ndim`` that slices by frames (numpy array, memmap, zarr array, :func:`spotfit.io.open_movie`); a
``camera`` attribute of the movie is its default camera. A classifier or a centroid regressor is any object
with the methods below (``spotfit.ml`` provides both):

- classifier: ``size`` (odd patch side, px) and ``predict_proba(patches) -> (n,) P(good)`` for
  ``(n, size, size)`` float32 photons, pixels outside the image filled with the nearest edge pixel;
- estimator (regressor): ``size`` and ``estimate_boxes(boxes) -> DataFrame`` with ``x``, ``y`` (px from the
  middle pixel's centre), ``photons``, ``background``, ``snr``, for boxes with NaN outside the image;
- detector (crowded fields): ``candidates(photons, first_frame) -> (frame, x, y)`` for a (frames, rows, cols)
  float32 chunk in photons above the offset: proposed emitter centres (px, inside the frame; frames counted
  from ``first_frame``, any order), which the core fits jointly
  (every emitter of a frame at once, each held near its proposal by a prior: docs/crowded.md).

Names and paths (``"ridge"``, ``"model.zip"``, ``"movie.tif"``) are resolved by :func:`spotfit.localize`.
"""
from __future__ import annotations

import warnings
from typing import Iterator, Optional, Tuple

import numpy as np
import pandas as pd

from . import _spotcore
from ._shared import threads as _threads
from ._shared import validate
from ._shared.version import VERSION
from ._shared.warnings import BaselineWarning, CameraWarning, NoiseModelWarning
from .camera import Camera, assumed_camera_message, camera_for_movie
from .options import LocalizeOptions
from .registry import BOX_BORDERS, COLUMNS, COLUMNS_3D, ESTIMATORS, FIT_STATUS, MODEL_PARAMETERS


def _columns(model: str = "gauss") -> list:
    """The table's columns: a 3D model adds z and uncertainty_z after y."""
    if "z" not in MODEL_PARAMETERS.get(model, ()):
        return list(COLUMNS)
    return list(COLUMNS[:3]) + list(COLUMNS_3D) + list(COLUMNS[3:])


def _table(records: np.ndarray, model: str = "gauss") -> pd.DataFrame:
    df = pd.DataFrame({name: records[name] for name in records.dtype.names})
    df["status"] = pd.Categorical.from_codes(records["status"].astype(np.int8), categories=FIT_STATUS)
    return df[_columns(model)]


def wavelet_filter(image) -> Tuple[np.ndarray, np.ndarray]:
    """À trous B-spline wavelet planes of a 2D image (ThunderSTORM's order 3, scale 2).

    Returns ``(W1, W2)`` float32 arrays of the image's shape: ``W1 = I - V1``, ``W2 = V1 - V2``, with
    mirror borders. Detection looks for maxima of ``W2``; its default threshold is ``std(W1)``.
    """
    image = validate.pixel_array(image, "image")
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
              threads: Optional[int] = None, calibration=None) -> pd.DataFrame:
    """Fit a pixel-integrated Gaussian to each box of photons.

    Parameters
    ----------
    boxes : array (n, box, box)
        Photons per pixel (after camera conversion). NaN marks pixels outside the image.
    variance : array (n, box, box), optional
        sCMOS read-noise variance in photons² per pixel (MLE only).
    calibration : AstigmaticCalibration or path, optional
        The widths against z of ``model="astigmatic"`` (adds ``z``, ``uncertainty_z`` in nm).

    Returns
    -------
    DataFrame with one row per box; ``x``, ``y`` are in box coordinates (centre of box pixel
    (0, 0) is (0, 0)).
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    if boxes.ndim != 3 or boxes.shape[1] != boxes.shape[2]:
        raise ValueError(f"boxes must have shape (n, box, box), got {boxes.shape}")
    options = LocalizeOptions(psf_sigma=psf_sigma, box=boxes.shape[1], estimator=estimator, model=model,
                              max_iterations=max_iterations, tolerance=tolerance, threads=threads,
                              calibration=calibration)
    rec = _spotcore.fit_boxes(boxes, variance, options.fit_options())
    return _table(rec, model).drop(columns=["frame", "peak_row", "peak_col"])


def cut_boxes(stack, frames, rows, cols, size: int, *, camera: Optional[Camera] = None, border: str = "nan",
              mask_neighbours: bool = False, threads: Optional[int] = None):
    """Cut ``(n, size, size)`` boxes of photons around pixels of a stack, with the core's one cutter.

    Parameters
    ----------
    stack : array (frames, rows, cols) or (rows, cols)
        Raw camera counts (ADU).
    frames, rows, cols : int arrays (n,)
        Frame index into ``stack`` and the centre pixel of each box.
    size : int
        Odd side of the box, pixels.
    camera : Camera, optional
        ADU -> photons conversion (default ``Camera()``).
    border : {"nan", "edge"}
        Pixels outside the image: NaN (what the fit ignores), or the value of the nearest edge pixel.
    mask_neighbours : bool
        Pixels nearer to another centre of the same frame than to their own are NaN (as detection does
        for the fit).

    Returns
    -------
    boxes : ndarray (n, size, size) float32
    variance : ndarray (n, size, size) float32 or None
        sCMOS read-noise variance in photons² (when the camera has a variance map).
    inside : ndarray (n, size, size) bool
        True for pixels inside the image and not masked.
    """
    camera = _camera(camera)
    stack = validate.pixel_array(stack)
    if stack.ndim == 2:
        stack = stack[None]
    if stack.ndim != 3:
        raise ValueError(f"stack must be a 2D frame or a 3D (frames, rows, cols) array, got shape {stack.shape}")
    camera.check_frame_shape(stack.shape[1:])
    options = _spotcore.BoxOptions()
    size = validate.integer("size", size, 1, 63)
    if size % 2 == 0:
        raise ValueError(f"size must be a positive odd integer, got {size}")
    options.size = size
    options.border = BOX_BORDERS[validate.choice("border", border, BOX_BORDERS)]
    options.mask_neighbours = validate.boolean("mask_neighbours", mask_neighbours)
    index = [np.ascontiguousarray(a, dtype=np.int64).ravel() for a in (frames, rows, cols)]
    if not len(index[0]) == len(index[1]) == len(index[2]):
        raise ValueError("frames, rows and cols must have the same length")
    return _spotcore.cut_boxes(stack, camera, index[0], index[1], index[2], options, _threads.threads(threads))


def _camera(camera) -> Camera:
    camera = Camera() if camera is None else camera
    if not isinstance(camera, Camera):
        raise TypeError(f"camera must be a spotfit.Camera, got {type(camera).__name__}")
    return camera


def _movie_shape(movie) -> Tuple[int, tuple]:
    """(n_frames, (rows, cols)) of an array-like movie; TypeError/ValueError for anything else."""
    if movie is None or isinstance(movie, (dict, set, str, bytes)) or hasattr(movie, "__fspath__"):
        hint = "; open a file with spotfit.io.open_movie(path) or call spotfit.localize(path)" \
            if isinstance(movie, str) or hasattr(movie, "__fspath__") else ""
        raise TypeError(f"movie must be an array (frames, rows, cols), got {type(movie).__name__}{hint}")
    shape = tuple(int(s) for s in movie.shape)
    if len(shape) == 2:
        return 1, shape
    if len(shape) != 3:
        raise ValueError(f"stack must be a 2D frame or a 3D (frames, rows, cols) array, got shape {shape}")
    return shape[0], shape[1:]


def _chunks(movie, n_frames: int, chunk_frames: int) -> Iterator[Tuple[int, np.ndarray]]:
    """(first frame, chunk as a (frames, rows, cols) array the core reads) over an array-like movie."""
    if len(movie.shape) == 2:
        yield 0, validate.pixel_array(movie)[None]
        return
    for first in range(0, n_frames, chunk_frames):
        yield first, validate.pixel_array(movie[first:first + chunk_frames])


def localize(movie, options: Optional[LocalizeOptions] = None, *, camera: Optional[Camera] = None,
             classifier=None, estimator=None, detector=None, progress: bool = False, **keywords) -> pd.DataFrame:
    """Detect and fit every spot of a movie (the layer beneath :func:`spotfit.localize`).

    ``options`` (:class:`LocalizeOptions`) with ``keywords`` applied give the settings. ``estimator`` is a
    fit estimator name (an option) or a centroid regressor object; ``classifier`` a classifier object;
    ``detector`` a crowded-field detector object (see the module docstring). :func:`spotfit.localize` documents the columns.
    """
    regressor = None
    if estimator is not None and not isinstance(estimator, str):
        regressor = estimator
        for attr in ("size", "estimate_boxes"):
            if not hasattr(regressor, attr):
                raise TypeError(f"estimator must be one of {sorted(ESTIMATORS)} or a centroid regressor (an "
                                f"object with size and estimate_boxes()), got {type(estimator).__name__}")
    elif estimator is not None:
        keywords["estimator"] = estimator
    opts = LocalizeOptions.from_keywords(options, **keywords)
    n_frames, frame_shape = _movie_shape(movie)
    if camera is None and getattr(movie, "camera_assumed", False):
        warnings.warn(assumed_camera_message(), CameraWarning, stacklevel=3)
    camera = _camera(camera_for_movie(camera, getattr(movie, "camera", None)))
    if opts.drop_bad and classifier is None:
        raise ValueError("drop_bad=True needs a classifier= (a SpotClassifier or a saved one)")
    if classifier is not None:
        for attr in ("size", "predict_proba"):
            if not hasattr(classifier, attr):
                raise TypeError("classifier must be a spotfit.SpotClassifier (an object with size and "
                                f"predict_proba()) or a path to a saved one, got {type(classifier).__name__}")
        if regressor is not None:
            raise ValueError("a classifier screens fits; it cannot be combined with a centroid regressor")
    if opts.max_emitters > 1 and (classifier is not None or regressor is not None):
        raise ValueError("max_emitters > 1 fits crowded regions jointly; it cannot be combined with a classifier "
                         "or a centroid regressor")
    if detector is not None:
        if not callable(getattr(detector, "candidates", None)):
            raise TypeError("detector must be a spotfit.ml.CrowdedDetector (an object with candidates()) or a "
                            f"path to a saved one, got {type(detector).__name__}")
        if classifier is not None or regressor is not None:
            raise ValueError("a detector proposes emitters for joint fits; it cannot be combined with a classifier "
                             "or a centroid regressor")
    if n_frames == 0 or 0 in frame_shape:
        raise ValueError(f"stack is empty: {n_frames} frames of shape {frame_shape}")
    box = opts.fit_box if regressor is None else int(regressor.size)
    if box > max(frame_shape):
        raise ValueError(f"box {box} is larger than the frame {frame_shape[0]}x{frame_shape[1]}")
    camera.check_frame_shape(frame_shape)

    parts, goods, probs = [], [], []
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=n_frames, unit="frame", desc="localize")
    try:
        for first, chunk in _chunks(movie, n_frames, opts.chunk_frames):
            if first == 0:
                warn_if_below_baseline(chunk[0], camera)
            if regressor is not None:
                parts.append(_regress_chunk(chunk, first, camera, opts, regressor))
            elif classifier is not None:
                rec, good, p_good = _classify_chunk(chunk, first, camera, opts, classifier)
                parts.append(rec)
                goods.append(good)
                probs.append(p_good)
            elif detector is not None:
                parts.append(_detector_chunk(chunk, first, camera, opts, detector))
            elif opts.max_emitters > 1:
                parts.append(_spotcore.localize_multi(chunk, camera, opts.to_core(), opts.multi_options(), first))
            else:
                parts.append(_spotcore.localize(chunk, camera, opts.to_core(), first))
            if bar is not None:
                bar.update(chunk.shape[0])
    finally:
        if bar is not None:
            bar.close()
    metadata = {"version": VERSION, "camera": camera.as_dict(), "movie_shape": (n_frames,) + tuple(frame_shape),
                "pixel_size_nm": camera.pixel_size_nm}
    if regressor is not None:
        locs = _regressor_table(parts)
        parameters = {k: v for k, v in opts.parameters().items()
                      if k in ("psf_sigma", "box", "threshold", "threshold_mode", "min_distance", "border")}
        locs.attrs["spotfit"] = dict(metadata, parameters=dict(
            parameters, estimator=f"regressor:{getattr(regressor, 'kind', type(regressor).__name__)}"))
        return locs
    if opts.max_emitters > 1 or detector is not None:
        locs = _table(np.concatenate([p[0] for p in parts]), "fixed_sigma")
        locs["group"] = np.concatenate([p[1] for p in parts])
        locs["n_in_group"] = np.concatenate([p[2] for p in parts])
    else:
        locs = _table(np.concatenate(parts), opts.model)
    if classifier is not None:
        locs["good"] = np.concatenate(goods)
        locs["p_good"] = np.concatenate(probs)
    locs.attrs["spotfit"] = dict(metadata, parameters=opts.parameters())
    if detector is not None:
        locs.attrs["spotfit"]["detector"] = {"model": repr(detector),
                                             "threshold": getattr(detector, "threshold", None)}
    if classifier is not None:
        locs.attrs["spotfit"]["classifier"] = {"model": getattr(classifier, "model", type(classifier).__name__),
                                               "threshold": opts.classify_threshold}
    if detector is None:   # with a detector chi2 is the whole frame's, not a box's
        warn_if_noise_model_wrong(locs, opts, camera)
    return locs


# The median Pearson chi2 of converged fits over its Poisson value: ~1 (0.97-1.06 measured, MLE and LSQ,
# 2-100 photons/px background); a sensitivity off by 2x gives 2 or 0.5, a baseline 420 ADU too low ~0.2.
NOISE_RATIO_RANGE = (0.67, 1.5)
_NOISE_MIN_FITS = 100     # the median of 100 chi2(45) values is known to ~3 %


def warn_if_noise_model_wrong(locs: pd.DataFrame, opts: LocalizeOptions, camera: Camera) -> None:
    """Warn when the fits' median chi2 says the camera settings misstate the noise (wrong baseline, gain...)."""
    ok = (locs["status"] == "converged").to_numpy() & np.isfinite(locs["chi2"].to_numpy())
    if ok.sum() < _NOISE_MIN_FITS:
        return
    dof = opts.fit_box * opts.fit_box - len(MODEL_PARAMETERS[opts.model])
    excess = 2.0 if camera.em_gain > 1 else 1.0          # EMCCD excess noise factor (as the chi2 rule)
    median = float(np.median(locs["chi2"].to_numpy()[ok])) / excess
    ratio = median / (dof - 2.0 / 3.0)                   # median of chi2(k) ~ k - 2/3
    lo, hi = NOISE_RATIO_RANGE
    if lo <= ratio <= hi:
        return
    if ratio > hi:
        cause = ("the data are noisier than these camera settings make Poisson noise. Likely: sensitivity (e-/ADU) "
                 "too low or an inverted gain map (ADU/e- given for e-/ADU), EM gain not set on an EMCCD, or sCMOS "
                 "read noise not in the model (variance map); or a field so crowded that boxes hold several spots")
    else:
        cause = ("the data are quieter than these camera settings make Poisson noise. Likely: baseline too low (the "
                 "offset is then counted as background photons) or sensitivity (e-/ADU) too high")
    warnings.warn(f"the converged fits' median chi2 is {ratio:.2f} x its Poisson value ({median:.3g} for {dof} "
                  f"degrees of freedom): {cause}; photons and uncertainties are off by as much", NoiseModelWarning,
                  stacklevel=4)   # the user's call of spotfit.localize


def warn_if_below_baseline(frame, camera: Camera) -> None:
    """A baseline above most of the data makes every pixel negative photons: nothing fits, silently.

    Checked on the movie's first frame only, so any chunking (or Dask task split) gives the same warning.
    A dark background sits at the offset with half its pixels below it, so only an offset above the
    median by more than three robust standard deviations (1.4826 MAD, at least 1 ADU) is taken for a
    wrong setting.
    """
    above = np.asarray(frame, dtype=np.float64) - (camera.offset_map if camera.offset_map is not None
                                                    else camera.baseline)
    median = float(np.median(above))
    margin = 3.0 * max(1.4826 * float(np.median(np.abs(above - median))), 1.0)
    if median < -margin:
        offset = float(np.median(camera.offset_map)) if camera.offset_map is not None else camera.baseline
        warnings.warn(f"most pixels are below the camera offset (median {median + offset:g} ADU < {offset:g} ADU, "
                      f"by more than the noise, {margin:.3g} ADU): photons come out negative and spots will not "
                      "fit; check Camera(baseline=...)", BaselineWarning, stacklevel=4)


def _detector_chunk(chunk, first, camera, opts, detector):
    """One chunk: the detector's proposals from the photon frames, then each frame's joint fit in C++."""
    photons = _spotcore.to_photons(chunk, camera, _threads.count(opts.threads))
    frame, x, y = detector.candidates(photons, first)
    frame = np.ascontiguousarray(frame, dtype=np.int64)
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.float32)
    if not len(frame) == len(x) == len(y):
        raise ValueError(f"the detector returned {len(frame)} frames, {len(x)} x and {len(y)} y")
    order = np.argsort(frame, kind="stable")   # the core takes the proposals frame by frame
    frame, x, y = frame[order], x[order], y[order]
    starts = _spotcore.StartsOptions()
    starts.window = max(starts.window, int(np.ceil(3.0 * opts.psf_sigma)))   # a spot's light within 3 sigma
    return _spotcore.fit_starts(chunk, camera, opts.to_core(), frame, x, y, starts, first)


def _classify_chunk(chunk, first, camera, opts, classifier):
    """One chunk: detect and cut fit and screening boxes in one C++ pass, classify each detection's image,
    fit all boxes (or, with drop_bad, only the good ones: bad spots are the slow fits)."""
    frame, peak_row, peak_col, boxes, variance, screen = _spotcore.detect_boxes(
        chunk, camera, opts.to_core(screen_size=int(classifier.size)), first)
    p = np.asarray(classifier.predict_proba(screen))
    good = p >= opts.classify_threshold
    p_good = p.astype(np.float32)
    if opts.drop_bad:
        keep = np.flatnonzero(good)
        frame, peak_row, peak_col, boxes = frame[keep], peak_row[keep], peak_col[keep], boxes[keep]
        good, p_good = good[keep], p_good[keep]
        variance = None if variance is None else variance[keep]
    rec = _spotcore.fit_boxes(boxes, variance, opts.fit_options())
    half = opts.fit_box // 2
    rec["frame"], rec["peak_row"], rec["peak_col"] = frame, peak_row, peak_col
    rec["x"] += (peak_col - half).astype(np.float32)
    rec["y"] += (peak_row - half).astype(np.float32)
    return rec, good, p_good


def _regress_chunk(chunk, first, camera, opts, regressor) -> pd.DataFrame:
    """One chunk: the same detection as the fit, boxes of the regressor's size, centres from the regressor."""
    size = int(regressor.size)
    frame, peak_row, peak_col, boxes, _, _ = _spotcore.detect_boxes(
        chunk, camera, opts.to_core(box=size, mask_neighbours=False), first)
    est = regressor.estimate_boxes(boxes) if len(boxes) else None
    empty = np.empty(0)
    return pd.DataFrame({
        "frame": frame, "x": peak_col + (est["x"].to_numpy() if est is not None else empty),
        "y": peak_row + (est["y"].to_numpy() if est is not None else empty),
        "photons": est["photons"].to_numpy() if est is not None else empty,
        "background": est["background"].to_numpy() if est is not None else empty,
        "snr": est["snr"].to_numpy() if est is not None else empty,
        "peak_row": peak_row, "peak_col": peak_col})


def _regressor_table(parts) -> pd.DataFrame:
    locs = pd.concat(parts, ignore_index=True).reindex(columns=list(COLUMNS) + ["snr"])
    locs["status"] = pd.Categorical([None] * len(locs), categories=FIT_STATUS)
    locs["iterations"] = np.int32(0)                   # no fit ran (exports need an integer here)
    return locs.astype({"frame": np.int64, "peak_row": np.int32, "peak_col": np.int32, "iterations": np.int32})
