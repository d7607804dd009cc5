"""``spotfit.localize``: the friendly front door over :func:`spotfit.core.localize`.

It turns what a user types into the objects the API takes, each through its owner: a path into a movie
(:func:`spotfit.io.open_movie`), a saved classifier or a regressor name into a model
(:func:`spotfit.ml.resolve_models`), and a Dask array into the lazy Dask pipeline
(:func:`spotfit.distributed.localize`). It sits above every layer, as the command line does.
"""
from __future__ import annotations

import os
from typing import Optional

from . import calibrate3d, core, io
from .astigmatism import AstigmaticCalibration
from .camera import Camera
from .options import LocalizeOptions, fields
from .registry import ESTIMATORS


def _is_paths(stack) -> bool:
    return isinstance(stack, (str, os.PathLike)) or (
        isinstance(stack, (list, tuple)) and bool(stack) and all(isinstance(p, (str, os.PathLike)) for p in stack))


def localize(stack, options: Optional[LocalizeOptions] = None, *, camera: Optional[Camera] = None,
             classifier=None, estimator=None, detector=None, progress: bool = False, **keywords):
    """Detect and fit every spot of a movie.

    Parameters
    ----------
    stack : array (frames, rows, cols) or (rows, cols), movie path(s), Movie, or dask array
        Raw camera counts (ADU) of any integer or float dtype: a numpy array, memmap or zarr array, the
        :class:`spotfit.io.Movie` of :func:`spotfit.io.open_movie`, a path, a list of paths (one series) or a
        glob pattern. Processed ``chunk_frames`` frames at a time, so a file-backed movie never has to fit
        in RAM. A dask array gives the lazy result of :func:`spotfit.distributed.localize`.
    options : LocalizeOptions, optional
        All settings in one object; ``**keywords`` (the same names) override it.
    camera : Camera, optional
        ADU -> photons conversion; default: the movie's own camera (for a file, what its metadata records,
        :func:`spotfit.camera.make_camera`), else ``Camera()`` (baseline 100 ADU, 1 e-/ADU, no gain).
    classifier : SpotClassifier or path, optional
        Adds ``good`` (bool) and ``p_good`` columns from a trained :class:`spotfit.ml.SpotClassifier` applied
        to each spot's image; ``drop_bad=True`` keeps only the good spots, screening each detection before
        the fit so that bad spots are never fitted (same rows as fitting all, then dropping).
    estimator : {"mle", "lsq"}, or a centroid regressor
        Poisson maximum likelihood or least squares; or a :class:`spotfit.ml.CentroidRegressor` (or
        ``"ridge"``/``"tf-linear"``, the packaged models, or a saved ``.npz``) that estimates each spot's
        centre straight from its image instead of fitting (same detection; fit-only columns are NaN,
        ``status`` missing).
    detector : "crowded", a :class:`spotfit.ml.CrowdedDetector` or a saved one (.npz), optional
        For crowded fields (docs/crowded.md): a network proposes the emitters (``"crowded"``: the packaged
        one, ``pip install spotfit[tf]``) instead of wavelet detection; all emitters of a frame are then fitted
        jointly (width psf_sigma, a flat background, each held near its proposal by a prior of 0.2 px), with the
        ``group`` (frame * 2**24) and ``n_in_group`` columns. ``max_emitters`` is not used.
    progress : bool
        Show a progress bar (tqdm).
    **keywords
        Any :class:`spotfit.LocalizeOptions` setting (below).

    Returns
    -------
    pandas.DataFrame (dask.dataframe.DataFrame for a dask array)
        One row per localization: ``frame`` (0-based), ``x`` (column), ``y`` (row) in pixels with the
        centre of pixel (0, 0) at (0, 0); ``photons``, ``background`` (photons/pixel), ``sigma_x``,
        ``sigma_y`` (px); ``uncertainty_*``: Cramér–Rao bounds at the estimate; ``loglik`` (Poisson
        log-likelihood ratio to the saturated model), ``chi2`` (Pearson), ``iterations``, ``status``
        (categorical: converged, max_iterations, singular, out_of_box, not_fitted, unreliable: a sigma at its
        bound or an uncertainty wider than the box, with max_emitters > 1 wider than 0.3 psf_sigma;
        z_out_of_range: a 3D fit at an end of the calibrated range), ``peak_row``, ``peak_col`` (detection
        pixel). ``model="astigmatic"`` (with ``calibration=``, docs/3d.md) adds ``z`` and ``uncertainty_z``
        (nm) after ``y``. ``max_emitters > 1`` (docs/crowded.md: joint Poisson fits of width psf_sigma, model
        and estimator not used) adds ``group`` (frame * 2**24 + region) and ``n_in_group``. ``.attrs["spotfit"]`` records the settings and the camera.
    """
    if type(stack).__module__.startswith("dask."):
        from . import distributed
        if progress:
            raise TypeError("progress is not shown for a dask array: use the Dask dashboard")
        return distributed.localize(stack, options, camera=camera, classifier=classifier, estimator=estimator,
                                    detector=detector, **keywords)
    if _is_paths(stack):
        stack = io.open_movie(stack)
    if classifier is not None or not (estimator is None or isinstance(estimator, str) and estimator in ESTIMATORS):
        from . import ml   # loaded only when a model is asked for (scikit-learn, TensorFlow)
        classifier, estimator = ml.resolve_models(classifier, estimator)
    if detector is not None:
        from . import ml
        detector = ml.as_detector(detector)
    return core.localize(stack, options, camera=camera, classifier=classifier, estimator=estimator,
                         detector=detector, progress=progress, **keywords)


def calibrate_astigmatism(beads, *, z_step_nm: float, camera: Optional[Camera] = None, box: int = 15,
                          link_radius: float = 2.0, min_planes: Optional[int] = None, z_range=None,
                          magnification_factor: float = 1.0, threads: Optional[int] = None) -> AstigmaticCalibration:
    """Astigmatic calibration (widths against z) from a z-stack of beads, one frame per stage step.

    Every bead is fitted in every plane with the elliptical model (``box`` px), followed through the planes
    (fits within ``link_radius`` px are one bead), and Huang et al.'s (2008) defocus model
    s(z) = s0 sqrt(1 + u² + A u³ + B u⁴), u = (z − c)/d is fitted to each axis robustly (soft-L1 loss; beads
    and planes far off the curve are rejected and the fit repeated). z = 0 is where the two widths are equal;
    plane k is at z = −k·``z_step_nm`` before that shift (the first plane has the most positive z, as in Picasso),
    times ``magnification_factor`` (sample z per stage z; 1 for an index-matched sample).

    Parameters
    ----------
    beads : path or array (planes, rows, cols)
        The bead stack (TIFF or any movie :func:`spotfit.io.open_movie` reads), raw camera counts.
    z_step_nm : float
        Stage step between planes, nm.
    camera : Camera, optional
        ADU -> photons (default: the file's camera, else ``Camera()``).
    min_planes : int, optional
        Planes a bead must be seen in to count (default: a third of the planes, at least 9).
    z_range : (z_min, z_max), optional
        Narrow the calibrated range (nm, inside the measured one).

    Returns
    -------
    AstigmaticCalibration
        With provenance (source, date, beads used and rejected, residuals, the bead points for ``.plot()``).

    Raises
    ------
    ValueError
        A stack with too few planes, no beads, or no bead seen through enough planes.
    """
    source = "array"
    if _is_paths(beads):
        source = str(beads)
        beads = io.open_movie(beads)
    if camera is None:
        camera = getattr(beads, "camera", None)
    stack = beads[:] if hasattr(beads, "camera") else beads
    return calibrate3d.calibrate(stack, z_step_nm=z_step_nm, camera=camera, box=box, link_radius=link_radius,
                                 min_planes=min_planes, z_range=z_range, magnification_factor=magnification_factor,
                                 threads=threads, source=source)


localize.__doc__ += "\n    Settings (``LocalizeOptions``)\n    ------------------------------\n" + "".join(
    f"    {name} : default {default!r}{f' ({unit})' if unit else ''}\n        {help}.\n"
    for name, default, help, unit in fields())
