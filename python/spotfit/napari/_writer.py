"""Writers of the npe2 manifest: a Points layer back to a localization file (:func:`spotfit.io.save`,
atomic). Coordinates are the points' own (moved points saved where they are), the other columns the
layer's features, the metadata what the reader or the localize widget recorded (camera, pixel size)."""
from __future__ import annotations

from pathlib import Path

from .. import io
from . import _layers


def _write(path, data, attributes, format=None) -> list:
    locs = _layers.table(data, attributes.get("features"), attributes.get("metadata"))
    return [str(io.save(locs, Path(path), format=format))]


def write_points(path: str, data, attributes: dict) -> list:
    """spotfit table by suffix: ``.parquet``, ``.csv`` (spotfit's csv) or ``.hdf5`` (Picasso, + ``.yaml``)."""
    return _write(path, data, attributes)


def write_thunderstorm(path: str, data, attributes: dict) -> list:
    """ThunderSTORM CSV (nm: needs the pixel size the layer's metadata records)."""
    return _write(path, data, attributes, format="thunderstorm")
