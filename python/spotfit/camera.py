"""Camera model: ADU -> photons."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np

from . import _spotcore
from . import camera_estimate as _estimate
from ._shared import validate as _validate


@dataclass(frozen=True)
class Camera:
    """How the camera turns photons into ADU (counts).

    ``photons = (ADU - baseline) * sensitivity / (em_gain * qe)`` — the convention of ThunderSTORM
    ("photoelectrons per A/D count", "EM gain", "base level") and Picasso ("Sensitivity", "Gain",
    "Baseline", "Qe").

    Parameters
    ----------
    baseline : float
        Camera offset in ADU added to every pixel.
    sensitivity : float
        Photoelectrons per ADU.
    em_gain : float
        EMCCD multiplication gain (1 for sCMOS/CCD).
    qe : float
        Quantum efficiency in (0, 1]; 1 reports photoelectrons.
    pixel_size_nm : float, optional
        Back-projected pixel size, used by file formats that store nm.
    offset_map, gain_map, variance_map : ndarray, optional
        sCMOS per-pixel calibration (Huang et al. 2013, Nat. Methods 10:653), each (rows, cols):
        offset in ADU, gain in ADU per photoelectron, read-noise variance in ADU². When given they
        replace ``baseline``/``sensitivity``; the MLE fit adds variance/gain² to data and model.
    """

    baseline: float = 100.0
    sensitivity: float = 1.0
    em_gain: float = 1.0
    qe: float = 1.0
    pixel_size_nm: Optional[float] = None
    offset_map: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    gain_map: Optional[np.ndarray] = field(default=None, repr=False, compare=False)
    variance_map: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        if not np.isfinite(float(self.baseline)):
            raise ValueError(f"baseline must be finite, got {self.baseline}")
        _validate.positive("sensitivity", self.sensitivity)
        _validate.positive("em_gain", self.em_gain)
        qe = _validate.positive("qe", self.qe)
        if qe > 1:
            raise ValueError(f"qe must be in (0, 1], got {qe}")
        # Real cameras span ~1e-4..1e3 photons per count; far outside, float32 pixels over/underflow.
        scale = float(self.sensitivity) / (float(self.em_gain) * qe)
        if not 1e-6 <= scale <= 1e6:
            raise ValueError(f"sensitivity / (em_gain * qe) = {scale:.3g} photons per count is outside "
                             "[1e-6, 1e6]: check the camera calibration")
        if self.pixel_size_nm is not None:
            _validate.pixel_size_nm(self.pixel_size_nm)
        shape = None
        for name in ("offset_map", "gain_map", "variance_map"):
            m = getattr(self, name)
            if m is None:
                continue
            m = np.ascontiguousarray(m, dtype=np.float32)
            if m.ndim != 2:
                raise ValueError(f"{name} must be 2D (rows, cols), got shape {m.shape}")
            if not np.isfinite(m).all():
                raise ValueError(f"{name} contains NaN or inf")
            if shape is not None and m.shape != shape:
                raise ValueError(f"{name} has shape {m.shape}, other maps have {shape}")
            shape = m.shape
            if name == "gain_map" and (m <= 0).any():
                raise ValueError("gain_map must be > 0 everywhere")
            if name == "variance_map" and (m < 0).any():
                raise ValueError("variance_map must be >= 0 everywhere")
            object.__setattr__(self, name, m)

    def __repr__(self) -> str:
        maps = [n for n in ("offset_map", "gain_map", "variance_map") if getattr(self, n) is not None]
        shape = f" {getattr(self, maps[0]).shape[0]}x{getattr(self, maps[0]).shape[1]}" if maps else ""
        extra = f", sCMOS maps{shape}: {'/'.join(m[:-4] for m in maps)}" if maps else ""
        return (f"Camera(baseline={self.baseline!r}, sensitivity={self.sensitivity!r}, em_gain={self.em_gain!r}, "
                f"qe={self.qe!r}, pixel_size_nm={self.pixel_size_nm!r}{extra})")

    @property
    def is_scmos(self) -> bool:
        return self.offset_map is not None or self.gain_map is not None or self.variance_map is not None

    @property
    def map_shape(self) -> Optional[tuple]:
        """(rows, cols) of the sCMOS maps, or None for a camera without maps."""
        for m in (self.offset_map, self.gain_map, self.variance_map):
            if m is not None:
                return m.shape
        return None

    def check_frame_shape(self, shape) -> None:
        """ValueError unless the sCMOS maps (if any) match frames of ``shape`` (rows, cols)."""
        maps = self.map_shape
        if maps is not None and maps != tuple(shape):
            raise ValueError(f"camera maps have shape {maps} but frames are {tuple(shape)}; use Camera.crop() "
                             "(or --roi-origin) for a sensor ROI")

    @classmethod
    def from_calibration(cls, path, **kwargs) -> "Camera":
        """sCMOS camera from a storm-analysis style ``calib.npy``: (offset, variance, gain) maps."""
        path = Path(path)
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            # numpy calls any non-.npy bytes "pickled data"; do not suggest unsafe loading
            raise ValueError(f"cannot read camera calibration {path}: not a NumPy .npy/.npz file with a "
                             "(3, rows, cols) [offset, variance, gain] array") from exc
        if isinstance(data, np.lib.npyio.NpzFile):
            data = [data[k] for k in ("offset", "variance", "gain")]
        data = np.asarray(data)
        if data.ndim != 3 or data.shape[0] != 3:
            raise ValueError(f"{path}: expected a (3, rows, cols) array [offset, variance, gain], got {data.shape}")
        return cls(offset_map=data[0], variance_map=data[1], gain_map=data[2], **kwargs)

    @classmethod
    def from_metadata(cls, metadata, **overrides) -> "Camera":
        """Camera from a movie's metadata (``spotfit.io.movie_info(path).metadata``), then overrides.

        Parameters
        ----------
        metadata : dict or None
            Movie metadata as returned by :func:`spotfit.io.movie_info`. Recognised: ``pixel_size_nm``,
            and numeric camera entries in its ``camera``, ``picasso`` and ``imagej`` dictionaries (see
            :func:`camera_settings_from_metadata`).
        **overrides
            Any :class:`Camera` argument (``baseline``, ``sensitivity``, ``em_gain``, ``qe``,
            ``pixel_size_nm``, ``offset_map``...). ``None`` values are ignored, so command-line options
            that were not given leave the metadata's value in place.

        Returns
        -------
        Camera
            Unspecified settings keep the :class:`Camera` defaults.
        """
        settings = camera_settings_from_metadata(metadata)
        settings.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**settings)

    @staticmethod
    def estimate(movie, *, em_gain: float = 1.0, frames: Optional[int] = None,
                 progress: bool = False) -> "_estimate.CameraEstimate":
        """Estimate the offset and gain from the movie itself, with their uncertainties.

        Uses the photon-transfer relation of each pixel's counts over short blocks of frames: variance,
        and third and fourth cumulants, against the mean, over pixels of different brightness (the
        illumination profile). On a flat background the higher cumulants alone give the gain, less
        precisely (the reported error says how well). Samples near spots are left out. See
        :mod:`spotfit.camera_estimate` for the method and docs/camera.md for what it achieves.

        Parameters
        ----------
        movie : array (frames, rows, cols) or spotfit.io.Movie
            Raw counts (ADU), at least 10 frames of 8x8 pixels; a few hundred frames of 64x64 or more
            for a useful precision (2,000 frames give 0.1-2 % on the gain).
        em_gain : float
            EMCCD multiplication gain as set on the camera (> 1 selects the EMCCD noise model, whose
            excess noise doubles the variance); the estimate's sensitivity is ``em_gain / gain``.
        frames : int, optional
            Use only the first ``frames`` frames.
        progress : bool
            Show a progress bar (tqdm).

        Returns
        -------
        CameraEstimate
            ``baseline``, ``sensitivity``, ``gain`` (ADU/e-), ``read_noise`` with ``*_error`` (jackknife
            standard errors), a model check (``fit_chi2``) and ``camera``, the result as a Camera (with
            the movie's pixel size, if it records one).
        """
        found = _estimate.estimate(movie, em_gain=em_gain, frames=frames, progress=progress)
        try:
            recorded = getattr(movie, "camera", None)
        except (ValueError, TypeError):   # invalid camera metadata: the estimate replaces it anyway
            recorded = None
        pixel_size = recorded.pixel_size_nm if isinstance(recorded, Camera) else None
        return replace(found, camera=Camera(baseline=found.baseline, sensitivity=found.sensitivity,
                                            em_gain=found.em_gain, pixel_size_nm=pixel_size))

    def crop(self, rows: slice, cols: slice) -> "Camera":
        """The camera for a sub-region (ROI) of the sensor: per-pixel maps cut to match."""
        if not self.is_scmos:
            return self
        cut = {n: (None if getattr(self, n) is None else getattr(self, n)[rows, cols])
               for n in ("offset_map", "gain_map", "variance_map")}
        return Camera(self.baseline, self.sensitivity, self.em_gain, self.qe, self.pixel_size_nm, **cut)

    def to_photons(self, adu, *, threads: Optional[int] = None) -> np.ndarray:
        """Convert ADU to photons (float32) with the C++ core's conversion, the one detection uses.

        ``adu`` is a frame (rows, cols), a stack (frames, rows, cols), or any array of pixels for a camera
        without sCMOS maps.
        """
        from ._shared.threads import threads as _threads
        a = _validate.pixel_array(adu, "adu")
        shape = a.shape
        if self.is_scmos:
            if a.ndim not in (2, 3):
                raise ValueError(f"an sCMOS camera converts frames (rows, cols) or stacks, got shape {shape}")
            self.check_frame_shape(shape[-2:])
            stack = a if a.ndim == 3 else a[None]
        else:
            stack = a.reshape(1, 1, -1) if a.size else np.zeros((0, 1, 1), a.dtype)
        if stack.shape[0] == 0:
            return np.zeros(shape, np.float32)
        return _spotcore.to_photons(stack, self, _threads(threads)).reshape(shape)

    def to_adu(self, photons) -> np.ndarray:
        """Expected ADU for a photon count (inverse of :meth:`to_photons`, float64)."""
        photons = np.asarray(photons, dtype=np.float64)
        if self.offset_map is not None or self.gain_map is not None:
            off = self.offset_map if self.offset_map is not None else self.baseline
            gain = self.gain_map if self.gain_map is not None else 1.0 / self.sensitivity
            return photons * self.qe * gain + off
        return photons * self.em_gain * self.qe / self.sensitivity + self.baseline

    def as_dict(self) -> dict:
        return {"baseline": float(self.baseline), "sensitivity": float(self.sensitivity),
                "em_gain": float(self.em_gain), "qe": float(self.qe), "pixel_size_nm": self.pixel_size_nm,
                "scmos": self.is_scmos}


# Metadata entry names (lower case, after dropping a "camera." / "spotfit." prefix and turning "_" into " ")
# that give each Camera setting. ThunderSTORM: "base level", "photoelectrons per A/D count", "EM gain";
# Picasso: "Camera.Baseline", "Camera.Sensitivity", "Camera.Gain", "Camera.Qe"; spotfit's own TIFFs
# (``spotfit simulate``) write "spotfit.baseline" etc. into the ImageJ description.
_METADATA_NAMES = {
    "baseline": ("baseline", "base level", "offset", "camera offset"),
    "sensitivity": ("sensitivity", "photoelectrons per a/d count", "electrons per adu", "conversion factor"),
    "em_gain": ("em gain", "emgain", "gain", "em gain multiplier", "electron multiplying gain"),
    "qe": ("qe", "quantum efficiency"),
}


def _normalise_key(key) -> str:
    k = str(key).strip().lower()
    for prefix in ("spotfit.", "camera.", "camera-", "camera "):
        if k.startswith(prefix):
            k = k[len(prefix):]
    return k.replace("_", " ").strip()


def camera_settings_from_metadata(metadata) -> dict:
    """Camera settings found in a movie's metadata, as :class:`Camera` keyword arguments.

    Parameters
    ----------
    metadata : dict or None
        ``spotfit.io.movie_info(path).metadata``.

    Returns
    -------
    dict
        A subset of ``baseline``, ``sensitivity``, ``em_gain``, ``qe``, ``pixel_size_nm`` (floats). Only
        numeric entries count; values are not validated here (:class:`Camera` does that).
    """
    out: dict = {}
    if not isinstance(metadata, dict):
        return out
    px = metadata.get("pixel_size_nm")
    lo, hi = _validate.PIXEL_SIZE_NM_RANGE
    if isinstance(px, (int, float)) and not isinstance(px, bool) and lo <= px <= hi:
        out["pixel_size_nm"] = float(px)   # a file's implausible size (uncalibrated: 1 unit) is not used
    lookup = {name: field for field, names in _METADATA_NAMES.items() for name in names}
    # Later sources win: a file's own camera block over generic ImageJ entries.
    for source in ("imagej", "picasso", "camera"):
        entries = metadata.get(source)
        if not isinstance(entries, dict):
            continue
        for key, value in entries.items():
            field_name = lookup.get(_normalise_key(key))
            if field_name is None or isinstance(value, bool):
                continue
            try:
                number = float(value)
            except (TypeError, ValueError):
                continue
            if np.isfinite(number):
                out[field_name] = number
    return out


def make_camera(metadata=None, *, calibration=None, roi_origin=None, frame_shape=None, **overrides) -> Camera:
    """The one way a camera is put together from a movie's metadata and the user's settings.

    Used by the API (``spotfit.io.open_movie(path).camera``), the command line and Dask.

    Parameters
    ----------
    metadata : dict, optional
        A movie's metadata (``spotfit.io.open_movie(path).metadata``); its camera entries are the defaults.
    calibration : path or Camera, optional
        sCMOS maps: a storm-analysis ``calib.npy`` (:meth:`Camera.from_calibration`) or a Camera with maps.
        They replace baseline and sensitivity, which may then not be given.
    roi_origin : (row, col), optional
        Sensor pixel of the movie's corner: the maps are cut to ``frame_shape`` there.
    frame_shape : (rows, cols), optional
        Frame shape the maps must match (checked when given).
    **overrides
        :class:`Camera` settings (``baseline``, ``sensitivity``, ``em_gain``, ``qe``, ``pixel_size_nm``);
        None means "not given" (the metadata's value, else the default, stays).
    """
    given = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(given) - {"baseline", "sensitivity", "em_gain", "qe", "pixel_size_nm"})
    if unknown:
        raise TypeError(f"unknown camera setting(s) {unknown}")
    if roi_origin is not None and calibration is None:
        raise ValueError("roi_origin places the movie on the calibration maps; give a calibration too")
    cam = Camera.from_metadata(metadata, **given)
    if calibration is None:
        if frame_shape is not None:
            cam.check_frame_shape(frame_shape)
        return cam
    if "baseline" in given or "sensitivity" in given:
        raise ValueError("a calibration gives per-pixel offset and gain maps; do not also give baseline or "
                         "sensitivity")
    if isinstance(calibration, Camera):
        if not calibration.is_scmos:
            raise ValueError("calibration must be a Camera with sCMOS maps or a calib.npy file")
        maps = {n: getattr(calibration, n) for n in ("offset_map", "gain_map", "variance_map")}
        cam = Camera(qe=cam.qe, em_gain=cam.em_gain, pixel_size_nm=cam.pixel_size_nm, **maps)
    else:
        cam = Camera.from_calibration(calibration, qe=cam.qe, em_gain=cam.em_gain, pixel_size_nm=cam.pixel_size_nm)
    if roi_origin is not None:
        if frame_shape is None:
            raise ValueError("roi_origin needs the frame shape to cut the maps")
        (r0, c0), (rows, cols), maps = roi_origin, frame_shape, cam.map_shape
        if r0 < 0 or c0 < 0 or r0 + rows > maps[0] or c0 + cols > maps[1]:
            raise ValueError(f"ROI origin {r0},{c0}: a {rows}x{cols} movie does not fit in the "
                             f"{maps[0]}x{maps[1]} calibration maps there")
        cam = cam.crop(slice(r0, r0 + rows), slice(c0, c0 + cols))
    elif frame_shape is not None and cam.map_shape != tuple(frame_shape):
        raise ValueError(f"calibration maps are {cam.map_shape[0]}x{cam.map_shape[1]} but the movie's frames are "
                         f"{frame_shape[0]}x{frame_shape[1]}; give the ROI origin (ROW,COL of the movie's corner "
                         "on the sensor)")
    return cam


def camera_for_movie(given: Optional[Camera], recorded: Optional[Camera]) -> Optional[Camera]:
    """The camera to localize a movie with: ``given``, else the movie's ``recorded`` one.

    A given camera without a pixel size keeps the pixel size the movie records: the user set the
    conversion, not the optics.
    """
    if given is None:
        return recorded
    if isinstance(given, Camera) and given.pixel_size_nm is None and isinstance(recorded, Camera) \
            and recorded.pixel_size_nm is not None:
        return replace(given, pixel_size_nm=recorded.pixel_size_nm)
    return given


def assumed_camera_message(metadata=None, **given) -> Optional[str]:
    """The warning to give when neither ``metadata`` nor ``given`` settings say what the camera is, else None.

    Then :class:`Camera`'s defaults are assumed (baseline 100 ADU, 1 e-/ADU, no EM gain): photons, the
    uncertainties and the chi2 rule all scale with them (issue 16: a baseline of ~520 ADU taken for 100 gave a
    precision 2.5x off).
    """
    known = dict(camera_settings_from_metadata(metadata), **{k: v for k, v in given.items() if v is not None})
    if "baseline" in known or "sensitivity" in known:
        return None
    cam = Camera()
    return (f"no camera settings in the file or given: assuming baseline {cam.baseline:g} ADU, sensitivity "
            f"{cam.sensitivity:g} e-/ADU, no EM gain; photons and precisions scale with them, so give the "
            "camera's (Camera(baseline=..., sensitivity=...), or --camera-baseline/--sensitivity)")

