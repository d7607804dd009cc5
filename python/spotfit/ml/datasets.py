"""A file format for labelled spot data sets: patches, fit parameters and good/bad labels in one file.

``.npz`` (numpy only, read back without pickle) or HDF5 (``pip install spotfit[io]``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import pandas as pd

from .._shared.optional import need

DATASET_FORMAT = "spotfit-spot-dataset"
DATASET_VERSION = 1


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
        h5py = need("h5py", "an HDF5 data set (or use a .npz file)")
        with h5py.File(path, "w") as h5:
            for key, a in arrays.items():
                if a.dtype.kind == "U":
                    a = np.char.encode(a, "utf-8") if a.ndim else np.bytes_(str(a).encode())
                h5.create_dataset(key, data=a, compression="gzip" if a.ndim and a.size > 64 else None)
    else:
        raise ValueError(f"dataset file must end in .npz, .h5 or .hdf5, got {path.name!r}")
    return path


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
            h5py = need("h5py", "an HDF5 data set (or use a .npz file)")
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
