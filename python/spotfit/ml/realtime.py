"""Real-time localization: one frame at a time, from a camera callback or any iterator of frames.

Detection is the same as :func:`spotfit.localize` (à trous wavelet W2 maxima above
``threshold * std(W1)``, ThunderSTORM's default); the sub-pixel centre comes from a learned
:class:`~spotfit.regress.CentroidRegressor` (microseconds per spot) or, with ``estimator="mle"``/
``"lsq"``, from the usual fit.
"""
from __future__ import annotations

import time
from typing import Iterable, Iterator, Optional

import numpy as np
import pandas as pd

from .._shared import validate as _validate
from ..camera import Camera
from ..core import localize
from ..options import LocalizeOptions
from ..registry import ESTIMATORS
from .regress import as_regressor

COLUMNS = ["frame", "x", "y", "photons", "background", "snr", "peak_row", "peak_col"]


class Localizer:
    """Localize spots frame by frame, keeping no state but a frame counter and timing figures.

    Parameters
    ----------
    camera : Camera, optional
        ADU -> photons conversion (default ``Camera()``). sCMOS maps must match the frame shape.
    estimator : CentroidRegressor, "ridge", "tf-linear", path to a saved ``.npz``, "mle" or "lsq"
        A learned estimator (``"ridge"``/``"tf-linear"`` load the packaged default weights), or the
        LM fit of :func:`spotfit.localize` for ``"mle"``/``"lsq"``.
    threshold : float
        Detection threshold on W2 in units of ``std(W1)`` of the frame (as ``localize``).
    min_distance, border : float, int
        As in :func:`spotfit.localize`.
    psf_sigma, box : float, int
        Used by the fit path only (``estimator="mle"``/``"lsq"``).
    first_frame : int
        Frame number given to the first processed frame.

    Attributes
    ----------
    frames_processed : int
    last_latency : float
        Seconds spent in the last :meth:`process` call.
    """

    def __init__(self, camera: Optional[Camera] = None, estimator="ridge", *, threshold: float = 1.5,
                 min_distance: float = 0.0, border: int = 0, psf_sigma: float = 1.3, box: int = 7,
                 first_frame: int = 0):
        self.camera = Camera() if camera is None else camera
        if not isinstance(self.camera, Camera):
            raise TypeError(f"camera must be a spotfit.Camera, got {type(self.camera).__name__}")
        if isinstance(estimator, str) and estimator in ESTIMATORS:
            self.regressor = None
        else:
            self.regressor = as_regressor(estimator)
        self.estimator = estimator
        self.options = LocalizeOptions(threshold=threshold, min_distance=min_distance, border=border,
                                       psf_sigma=psf_sigma, box=box, threads=1,
                                       **({"estimator": estimator} if self.regressor is None else {}))
        self.threshold, self.min_distance, self.border = self.options.threshold, self.options.min_distance, \
            self.options.border
        self.psf_sigma, self.box = self.options.psf_sigma, self.options.fit_box
        self.frames_processed = 0
        self.first_frame = int(first_frame)
        self.last_latency = float("nan")

    def __repr__(self):
        return (f"Localizer(estimator={self.estimator!r}, threshold={self.threshold}, "
                f"frames_processed={self.frames_processed})")

    def _frame(self, frame) -> np.ndarray:
        a = _validate.pixel_array(frame, "frame")
        if a.ndim != 2 or a.size == 0:
            raise ValueError(f"frame must be a non-empty 2D array, got shape {a.shape}")
        self.camera.check_frame_shape(a.shape)
        return a

    def process(self, frame) -> pd.DataFrame:
        """Localize the spots of one frame (raw ADU, 2D).

        Returns
        -------
        DataFrame with ``frame``, ``x`` (column), ``y`` (row) in px (centre of pixel (0, 0) at
        (0, 0)), ``photons``, ``background`` (photons/pixel), ``snr``, ``peak_row``, ``peak_col``.
        With the fit path the columns are those of :func:`spotfit.localize`.
        """
        t0 = time.perf_counter()
        a = self._frame(frame)
        index = self.first_frame + self.frames_processed
        # The same detection as spotfit.localize (the core's); the centres from the fit or the regressor.
        out = localize(a[None], self.options, camera=self.camera, estimator=self.regressor)
        out["frame"] = np.int64(index)
        if self.regressor is not None:
            out = out[COLUMNS].reset_index(drop=True)
        self.frames_processed += 1
        self.last_latency = time.perf_counter() - t0
        return out

    __call__ = process


def localize_stream(frames: Iterable, *, camera: Optional[Camera] = None, estimator="ridge",
                    **kwargs) -> Iterator[pd.DataFrame]:
    """Yield one DataFrame of localizations per frame of ``frames`` (any iterable of 2D arrays).

    Frames are pulled one at a time, so a generator reading a camera or a growing file is processed
    as it arrives. Keyword arguments go to :class:`Localizer`.
    """
    loc = Localizer(camera=camera, estimator=estimator, **kwargs)
    for frame in frames:
        yield loc.process(frame)
