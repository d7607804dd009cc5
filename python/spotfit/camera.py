"""Camera model: ADU -> photons."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from . import _validate


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
            _validate.positive("pixel_size_nm", self.pixel_size_nm)
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

    def crop(self, rows: slice, cols: slice) -> "Camera":
        """The camera for a sub-region (ROI) of the sensor: per-pixel maps cut to match."""
        if not self.is_scmos:
            return self
        cut = {n: (None if getattr(self, n) is None else getattr(self, n)[rows, cols])
               for n in ("offset_map", "gain_map", "variance_map")}
        return Camera(self.baseline, self.sensitivity, self.em_gain, self.qe, self.pixel_size_nm, **cut)

    def to_photons(self, adu) -> np.ndarray:
        """Convert ADU to photons (float32), the same arithmetic as the C++ core."""
        adu = np.asarray(adu, dtype=np.float32)
        if self.offset_map is not None or self.gain_map is not None:
            off = self.offset_map if self.offset_map is not None else np.float32(self.baseline)
            gain = self.gain_map if self.gain_map is not None else np.float32(1.0 / self.sensitivity)
            return (adu - off) / gain / np.float32(self.qe)
        scale = self.sensitivity / (self.em_gain * self.qe)
        return adu * np.float32(scale) + np.float32(-self.baseline * scale)

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
    if isinstance(px, (int, float)) and not isinstance(px, bool) and px > 0:
        out["pixel_size_nm"] = float(px)
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
