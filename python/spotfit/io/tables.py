"""Localization tables: reading and writing (public as :func:`spotfit.io.save` / :func:`spotfit.io.load`).

:func:`save` and :func:`load` handle four formats:

``parquet``
    Native.  Columns and dtypes as they are (``status`` as a dictionary
    column); ``DataFrame.attrs`` as JSON under the schema metadata key
    ``b"spotfit"``.  Needs :mod:`pyarrow` (extra ``spotfit[io]``).
``csv``
    Native.  Line 1 is ``# spotfit localizations csv v1``; line 2 is ``# ``
    followed by one line of JSON ``{"dtypes": ..., "categories": ...,
    "attrs": ...}``; then a normal CSV table.  Floats are written with full
    precision, so the round trip is exact.
``thunderstorm``
    ThunderSTORM's CSV (``"id","frame","x [nm]",...``): frames are 1-based,
    lengths in nm and x/y are measured from the image corner (ThunderSTORM
    adds half a pixel to the fitted pixel-centre coordinate), so
    ``x_nm = (x + 0.5) * pixel_size_nm``.  Needs the camera pixel size.
``picasso``
    Picasso's HDF5 (dataset ``locs``, a structured array) plus a ``.yaml``
    sidecar with two YAML documents: the movie (``Frames``, ``Height``,
    ``Width``...) and the localization step (``Pixelsize``...).  Picasso's
    x/y use the same pixel-centre convention as spotfit.  Needs :mod:`h5py`
    and :mod:`yaml` (extra ``spotfit[io]``).

All writes are atomic: data go to a temporary file in the destination folder
which is renamed over the target with :func:`os.replace` only after it has
been written completely; on any error the temporary file is removed.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .._shared import validate
from .._shared.atomic import atomic_path
from .._shared.optional import need
from .._shared.warnings import FileFormatWarning
from ..registry import FIT_STATUS

#: Table formats, and the file suffix each is written with by default (the one list of formats).
FORMAT_SUFFIXES = {"parquet": ".parquet", "csv": ".csv", "thunderstorm": ".csv", "picasso": ".hdf5"}
FORMATS = tuple(FORMAT_SUFFIXES)
READ_ONLY_FORMATS = ("rapidstorm",)   # read by load(), not written


def _encode(obj):
    """Make attrs JSON-safe while keeping tuples and arrays recoverable."""
    if isinstance(obj, dict):
        return {str(k): _encode(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": obj.dtype.str}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _decode_hook(d):
    if "__tuple__" in d and len(d) == 1:
        return tuple(d["__tuple__"])
    if "__ndarray__" in d and set(d) == {"__ndarray__", "dtype"}:
        return np.array(d["__ndarray__"], dtype=np.dtype(d["dtype"]))
    return d


def _dumps(attrs) -> str:
    return json.dumps(_encode(dict(attrs)), separators=(",", ":"))


def _loads(text: str) -> dict:
    return json.loads(text, object_hook=_decode_hook)


def _meta(locs) -> dict:
    md = locs.attrs.get("spotfit") if isinstance(locs.attrs, dict) else None
    return md if isinstance(md, dict) else {}


def infer_format(path, format=None, *, reading: bool) -> str:
    """The table format of ``path``: ``format`` if given (checked), else from the suffix (and, when reading,
    the first line of a CSV)."""
    path = Path(path)
    if format is not None:
        known = FORMATS + READ_ONLY_FORMATS if reading else FORMATS
        if format not in known:
            extra = " (rapidSTORM files are read, not written)" if format in READ_ONLY_FORMATS else ""
            raise ValueError(f"unknown format {format!r}{extra}; choose from {known}")
        return format
    suf = path.suffix.lower()
    if suf in (".parquet", ".pq"):
        return "parquet"
    if suf in (".hdf5", ".h5"):
        return "picasso"
    if suf in (".csv", ".txt"):
        if reading and path.is_file():
            with open(path, encoding="utf-8", errors="replace") as f:
                head = f.readline()
            if head.startswith("# <localizations"):
                return "rapidstorm"
            if head.startswith("#"):
                return "csv"
            if "[nm]" in head or "[px]" in head or "[um]" in head:
                return "thunderstorm"
        return "csv"
    raise ValueError(f"cannot infer the format of {str(path)!r} from its suffix; "
                     f"pass format= one of {FORMATS}")


def save(locs: pd.DataFrame, path, format: str | None = None, *,
         pixel_size_nm: float | None = None, movie_shape=None) -> Path:
    """Save a localization table, atomically.

    Parameters
    ----------
    locs : pandas.DataFrame
        Localization table (at least ``frame``, ``x``, ``y``); its
        ``attrs["spotfit"]`` metadata is stored where the format allows.
    path : str or os.PathLike
        Destination.  For ``picasso`` a ``.yaml`` sidecar with the same stem
        is written as well.
    format : {"parquet", "csv", "thunderstorm", "picasso"}, optional
        Inferred from the suffix when None: ``.parquet``/``.pq`` → parquet,
        ``.csv`` → csv, ``.hdf5``/``.h5`` → picasso.
    pixel_size_nm : float, optional
        Camera pixel size; overrides ``attrs["spotfit"]["pixel_size_nm"]``.
        Required for ``thunderstorm``.
    movie_shape : tuple of int, optional
        ``(frames, rows, cols)`` of the source movie for Picasso's yaml;
        defaults to ``attrs["spotfit"]["movie_shape"]`` or is estimated from
        the localizations.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    fmt = infer_format(path, format, reading=False)
    locs = validate.localization_table(locs, f"save to {str(path)!r}", allow_empty=True)
    md = _meta(locs)
    px = pixel_size_nm if pixel_size_nm is not None else md.get("pixel_size_nm")
    if px is not None:
        px = validate.pixel_size_nm(px)
    if fmt == "parquet":
        _save_parquet(locs, path)
    elif fmt == "csv":
        _save_csv(locs, path)
    elif fmt == "thunderstorm":
        _save_thunderstorm(locs, path, px)
    else:
        _save_picasso(locs, path, px, movie_shape or md.get("movie_shape"))
    return path


def load(path, format: str | None = None, *, pixel_size_nm: float | None = None
         ) -> pd.DataFrame:
    """Load a localization table written by :func:`save` or a peer program.

    Parameters
    ----------
    path : str or os.PathLike
        File to read.
    format : {"parquet", "csv", "thunderstorm", "picasso", "rapidstorm"}, optional
        Inferred when None from the suffix and, for ``.csv``/``.txt``, from the
        header line (``# spotfit`` → csv, ``"x [nm]"`` → thunderstorm,
        ``# <localizations`` → rapidstorm, read only).
    pixel_size_nm : float, optional
        Camera pixel size, needed to convert ThunderSTORM's nm to pixels
        (else read from a ThunderSTORM ``<stem>-protocol.txt`` beside it).

    Returns
    -------
    pandas.DataFrame
        Table in spotfit's columns and conventions (0-based frames, pixel
        coordinates with pixel centres at integers) with ``attrs["spotfit"]``.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"localization file not found: {str(path)!r}")
    if path.is_dir():
        raise IsADirectoryError(f"{str(path)!r} is a directory, not a localization file")
    fmt = infer_format(path, format, reading=True)
    if pixel_size_nm is not None:
        pixel_size_nm = validate.pixel_size_nm(pixel_size_nm)
    try:
        if fmt == "parquet":
            return _load_parquet(path)
        if fmt == "csv":
            return _load_csv(path)
        if fmt == "thunderstorm":
            return _load_thunderstorm(path, pixel_size_nm)
        if fmt == "rapidstorm":
            return _load_rapidstorm(path, pixel_size_nm)
        return _load_picasso(path)
    except (ImportError, FileNotFoundError):
        raise
    except ValueError as exc:
        if str(path) in str(exc):
            raise
        raise ValueError(f"{str(path)!r}: cannot read as {fmt} ({exc})") from exc
    except Exception as exc:
        raise ValueError(f"{str(path)!r}: cannot read as {fmt} "
                         f"({type(exc).__name__}: {exc})") from exc


def _categories(locs) -> dict:
    return {str(c): [_encode(v) for v in locs[c].cat.categories] for c in locs.columns
            if isinstance(locs[c].dtype, pd.CategoricalDtype)}


# parquet: schema metadata b"spotfit" = JSON of DataFrame.attrs
def parquet_metadata(locs) -> dict:
    """Parquet schema metadata (bytes keys and values) that carries a table's attrs and categories."""
    # Arrow drops unused categories of an empty column: they are kept here too.
    return {b"spotfit": _dumps(locs.attrs).encode(), b"spotfit.categories": json.dumps(_categories(locs)).encode()}


def restore_parquet_metadata(df: pd.DataFrame, metadata) -> pd.DataFrame:
    """Put the categories and attrs of :func:`parquet_metadata` back on a table read from Parquet (in place)."""
    metadata = metadata or {}
    for c, cats in json.loads(metadata.get(b"spotfit.categories", b"{}"), object_hook=_decode_hook).items():
        col = df[c]
        df[c] = pd.Categorical(col.astype(object) if isinstance(col.dtype, pd.CategoricalDtype) else col,
                               categories=cats)
    df.attrs = _loads(metadata[b"spotfit"].decode()) if b"spotfit" in metadata else {}
    return df


def _save_parquet(locs, path):
    pa = need("pyarrow", "this file format")
    pq = need("pyarrow.parquet", "this file format")
    bare = locs.copy(deep=False)
    bare.attrs = {}  # attrs go in our own key below, as exact JSON
    table = pa.Table.from_pandas(bare, preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **parquet_metadata(locs)})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def _load_parquet(path):
    pq = need("pyarrow.parquet", "this file format")
    table = pq.read_table(path)
    return restore_parquet_metadata(table.to_pandas(), table.schema.metadata)


# native csv: two comment lines (magic, JSON of dtypes/categories/attrs)
_CSV_MAGIC = "# spotfit localizations csv v1"


def _save_csv(locs, path):
    header = {"dtypes": {c: str(t) for c, t in locs.dtypes.items()},
              "categories": _categories(locs),
              "attrs": json.loads(_dumps(locs.attrs))}
    with atomic_path(path) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            f.write(_CSV_MAGIC + "\n# " + json.dumps(header, separators=(",", ":")) + "\n")
            locs.to_csv(f, index=False, lineterminator="\n")


def _load_csv(path):
    with open(path, encoding="utf-8") as f:
        first = f.readline()
        header = {}
        skip = 0
        if first.startswith(_CSV_MAGIC):
            second = f.readline()
            if not second.startswith("# "):
                raise ValueError("second line should be '# {json}' metadata")
            header = _loads(second[2:])
            skip = 2
    dtypes = header.get("dtypes", {})
    cats = header.get("categories", {})
    # Read floats as float64 (their text is exact) and cast back below; only
    # empty fields are missing values, so a category named "NA" survives.
    read_types = {c: ("object" if c in cats else "float64" if "float" in t else t)
                  for c, t in dtypes.items()}
    df = pd.read_csv(path, skiprows=skip, dtype=read_types or None, keep_default_na=False,
                     na_values=[""])
    for c, t in dtypes.items():
        if c in cats:
            df[c] = pd.Categorical(df[c], categories=cats[c])
        elif c in df.columns and str(df[c].dtype) != t:
            df[c] = df[c].astype(t)
    df.attrs = header.get("attrs", {})
    return df


# ThunderSTORM CSV: 1-based frames, nm, origin at the image corner. The columns of ThunderSTORM 1.3, which
# Picasso's io.import_ts requires (frame, x/y [nm], intensity, offset, uncertainty_xy, sigma; sigma1/sigma2
# for 3D) and Locan reads; ThunderSTORM <= 1.2 wrote "uncertainty [nm]", still read.
_TS_UNITS = {"nm": 1.0, "um": 1e3, "µm": 1e3}


def _save_thunderstorm(locs, path, px):
    if not px:
        raise ValueError(f"cannot write ThunderSTORM file {str(path)!r}: it stores nm, so "
                         "pixel_size_nm is needed (argument or attrs['spotfit'])")
    px = float(px)
    out = {"id": np.arange(1, len(locs) + 1, dtype=np.int64),
           "frame": locs["frame"].to_numpy(np.int64) + 1,
           "x [nm]": (locs["x"].to_numpy(np.float64) + 0.5) * px,
           "y [nm]": (locs["y"].to_numpy(np.float64) + 0.5) * px}
    if "z" in locs:   # astigmatic 3D: z in nm already (ThunderSTORM's "z [nm]", "uncertainty_z [nm]")
        out["z [nm]"] = locs["z"].to_numpy(np.float64)
    if {"sigma_x", "sigma_y"} <= set(locs.columns):
        sx, sy = locs["sigma_x"].to_numpy(np.float64), locs["sigma_y"].to_numpy(np.float64)
        out["sigma [nm]"] = 0.5 * (sx + sy) * px      # Picasso's 2D import needs it even for elliptical fits
        if not np.array_equal(sx, sy, equal_nan=True):  # elliptical model: ThunderSTORM's two axes too
            out["sigma1 [nm]"] = sx * px
            out["sigma2 [nm]"] = sy * px
    if "photons" in locs:
        out["intensity [photon]"] = locs["photons"].to_numpy(np.float64)
    if "background" in locs:
        bg = locs["background"].to_numpy(np.float64)
        out["offset [photon]"] = bg
        # ThunderSTORM's bkgstd: std of the background; Poisson → sqrt(bg).
        out["bkgstd [photon]"] = np.sqrt(np.clip(bg, 0, None))
    if "chi2" in locs:
        out["chi2"] = locs["chi2"].to_numpy(np.float64)
    if {"uncertainty_x", "uncertainty_y"} <= set(locs.columns):
        ux = locs["uncertainty_x"].to_numpy(np.float64)
        uy = locs["uncertainty_y"].to_numpy(np.float64)
        out["uncertainty_xy [nm]"] = np.sqrt(0.5 * (ux * ux + uy * uy)) * px
    if "uncertainty_z" in locs:
        out["uncertainty_z [nm]"] = locs["uncertainty_z"].to_numpy(np.float64)
    df = pd.DataFrame(out)
    import csv
    with atomic_path(path) as tmp:
        # ThunderSTORM quotes the header names and leaves numbers bare.
        df.to_csv(tmp, index=False, quoting=csv.QUOTE_NONNUMERIC, lineterminator="\n")


def _load_thunderstorm(path, px):
    df = pd.read_csv(path)
    if px is None:
        proto = path.with_name(path.stem + "-protocol.txt")
        if proto.exists():
            with contextlib.suppress(Exception):
                text = proto.read_text(errors="replace")
                px = float(json.loads(text[text.index("{"):])["cameraSettings"]["pixelSize"])
    # Picasso's export_thunderstorm writes 0-based frames and ids and x [nm] = x * pixel size with pixel
    # centres at integers (no half-pixel shift). ThunderSTORM's own frames and ids start at 1, so a 0 in
    # either marks such a file: read it in Picasso's convention, not one frame and half a pixel off.
    zero_based = any(c in df and len(df) and float(df[c].min()) == 0 for c in ("frame", "id"))
    shift = 0.0 if zero_based else 0.5
    out = {}
    for label in df.columns:
        m = re.fullmatch(r"\s*(.*?)\s*(?:\[(.*)\])?\s*", str(label))
        name, unit = m.group(1), (m.group(2) or "").strip()
        values = df[label].to_numpy(np.float64)
        if name in ("z", "uncertainty_z") and unit in _TS_UNITS:   # spotfit keeps z in nm
            out[name] = values * _TS_UNITS[unit]
            continue
        if unit in _TS_UNITS or unit == "px":
            if unit != "px":
                if not px:
                    raise ValueError(f"{str(path)!r} stores {label!r} in {unit}; pass "
                                     "pixel_size_nm to convert it to pixels")
                values = values * (_TS_UNITS[unit] / float(px))
            if name in ("x", "y"):
                values = values - shift
        key = {"x": ["x"], "y": ["y"], "sigma": ["sigma_x", "sigma_y"],
               "sigma1": ["sigma_x"], "sigma2": ["sigma_y"], "intensity": ["photons"],
               "offset": ["background"], "bkgstd": ["background_std"],
               "uncertainty": ["uncertainty_x", "uncertainty_y"],
               "uncertainty_xy": ["uncertainty_x", "uncertainty_y"],
               "frame": ["frame"], "id": []}.get(name, [name])
        for k in key:
            out[k] = values
    if not {"frame", "x", "y"} <= set(out):
        raise ValueError(f"{str(path)!r}: ThunderSTORM file needs frame, x and y columns")
    out["frame"] = np.asarray(np.rint(out["frame"]), dtype=np.int64) - (0 if zero_based else 1)
    res = pd.DataFrame(out)
    convention = "picasso export (0-based frames, pixel centres at integers)" if zero_based else \
        "thunderstorm (1-based frames, origin at the image corner)"
    res.attrs = {"spotfit": {"pixel_size_nm": float(px) if px else None,
                             "source": {"format": "thunderstorm", "file": str(path), "convention": convention}}}
    return res


# rapidSTORM: a "# <localizations>" XML comment line names each column (identifier, semantic, unit), then
# whitespace-separated numbers. Pixel i's centre is at i x pixel size (its fit model is sampled at pixel indices,
# rapidSTORM 3.3 source: traits/Projection.h, fit_window/FitWindowCutter.cpp), the convention spotfit uses, so no
# half-pixel shift; a Position field's header "max" is (pixels - 1) x pixel size. Frames (ImageNumber) start at
# 0; PSFWidth is a FWHM; Amplitude and LocalBackground are in A/D counts.
_RAPIDSTORM_FIELDS = {"Position-0-0": "x", "Position-1-0": "y", "Position-2-0": "z", "ImageNumber-0-0": "frame",
                      "Amplitude-0-0": "amplitude_adu", "PSFWidth-0-0": "sigma_x", "PSFWidth-1-0": "sigma_y",
                      "FitResidues-0-0": "fit_residues", "LocalBackground-0-0": "background_adu"}
_FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))
_RAPIDSTORM_LENGTH = {"nanometer": 1.0, "micrometer": 1e3, "pixel": None}


def _load_rapidstorm(path, px):
    import xml.etree.ElementTree as ET
    with open(path, encoding="utf-8", errors="replace") as f:
        head = f.readline().lstrip("#").strip()
    try:
        fields = ET.fromstring(head).findall("field")
    except ET.ParseError as exc:
        raise ValueError(f"{str(path)!r}: the rapidSTORM header is not valid XML ({exc})") from None
    if not fields:
        raise ValueError(f"{str(path)!r}: the rapidSTORM header names no fields")
    data = np.loadtxt(path, comments="#", ndmin=2)
    if data.shape[1] != len(fields):
        raise ValueError(f"{str(path)!r}: the header names {len(fields)} fields but rows have {data.shape[1]} values")
    out = {}
    for k, field in enumerate(fields):
        ident, unit = field.get("identifier", f"column{k}"), field.get("unit", "")
        name = _RAPIDSTORM_FIELDS.get(ident, ident)
        values = data[:, k]
        if name in ("x", "y", "sigma_x", "sigma_y") and unit != "pixel":
            if unit not in _RAPIDSTORM_LENGTH:
                raise ValueError(f"{str(path)!r}: field {ident} has unit {unit!r}, not a length spotfit knows")
            if not px:
                raise ValueError(f"{str(path)!r} stores {ident} in {unit}; pass pixel_size_nm to convert it to pixels")
            values = values * (_RAPIDSTORM_LENGTH[unit] / float(px))
        if name in ("sigma_x", "sigma_y"):
            values = values / _FWHM_PER_SIGMA
        elif name == "z" and unit in _RAPIDSTORM_LENGTH and _RAPIDSTORM_LENGTH[unit]:
            values = values * _RAPIDSTORM_LENGTH[unit]  # nm
        out[name] = values
    if not {"frame", "x", "y"} <= set(out):
        raise ValueError(f"{str(path)!r}: rapidSTORM file needs ImageNumber and Position-0/1 fields")
    out["frame"] = np.asarray(np.rint(out["frame"]), dtype=np.int64)
    res = pd.DataFrame(out)
    res.attrs = {"spotfit": {"pixel_size_nm": float(px) if px else None,
                             "source": {"format": "rapidstorm", "file": str(path),
                                        "convention": "rapidstorm (0-based frames, pixel centres at integer multiples of the pixel size)"}}}
    return res


# Picasso: HDF5 dataset "locs" + two-document yaml sidecar.
_PICASSO_FLOATS = [("x", "x"), ("y", "y"), ("photons", "photons"), ("sx", "sigma_x"),
                   ("sy", "sigma_y"), ("bg", "background"), ("lpx", "uncertainty_x"),
                   ("lpy", "uncertainty_y")]


def _status_codes(status, path) -> np.ndarray:
    """Fit status as uint8 codes (the order of FIT_STATUS, written into the yaml); 255 for a missing one."""
    missing = status.isna().to_numpy()
    codes = pd.Categorical(status.astype(object), categories=FIT_STATUS).codes
    unknown = sorted(set(status[(codes < 0) & ~missing].astype(str)))
    if unknown:
        raise ValueError(f"cannot write {str(path)!r}: status values {unknown} are not fit statuses {FIT_STATUS}")
    return np.where(codes < 0, 255, codes).astype(np.uint8)


def _warn_picasso_drops(arr, rows: int, cols: int, path) -> None:
    """Warn, with the count, about rows that Picasso's load_locs removes (its lib.ensure_sanity).

    spotfit writes every row (spotfit.io.load reads them all); Picasso drops rows with a NaN or inf in any
    column, x or y < 0 (a centre in [-0.5, 0) lies inside pixel 0, but Picasso's origin is its edge), x >= Width,
    y >= Height, or a negative lpx, lpy, photons, ellipticity, sx or sy (picasso/lib.py, 0.11).
    """
    if not len(arr):
        return
    reasons = {}
    finite = np.ones(len(arr), bool)
    for name in arr.dtype.names:
        if arr.dtype[name].kind == "f":
            finite &= np.isfinite(arr[name])
    reasons["NaN or inf"] = ~finite
    with np.errstate(invalid="ignore"):
        reasons["x or y < 0"] = (arr["x"] < 0) | (arr["y"] < 0)
        reasons[f"x >= {cols} or y >= {rows}"] = (arr["x"] >= cols) | (arr["y"] >= rows)
        negative = np.zeros(len(arr), bool)
        for name in ("lpx", "lpy", "photons", "ellipticity", "sx", "sy"):
            negative |= arr[name] < 0
        reasons["negative photons, sigma or precision"] = negative
    dropped = np.logical_or.reduce(list(reasons.values()))
    if dropped.any():
        why = ", ".join(f"{int(m.sum())} {name}" for name, m in reasons.items() if m.any())
        warnings.warn(f"{str(path)!r}: Picasso's load_locs will drop {int(dropped.sum())} of {len(arr)} rows ({why}); "
                      "spotfit wrote them all and spotfit.io.load reads them", FileFormatWarning, stacklevel=4)


def _save_picasso(locs, path, px, movie_shape):
    h5py = need("h5py", "this file format")
    yaml = need("yaml", "this file format")
    n = len(locs)
    frame = locs["frame"].to_numpy(np.int64)
    if n and (frame.min() < 0 or frame.max() > np.iinfo(np.uint32).max):
        raise ValueError(f"cannot write {str(path)!r}: frames must fit Picasso's uint32")
    fields = [("frame", "<u4")] + [(p, "<f4") for p, _ in _PICASSO_FLOATS] + [("ellipticity", "<f4")]
    # spotfit has no net gradient: the column is written only when the table carries one (Picasso reads
    # files without it). The fit's status and chi2 are extra columns, so a max_iterations row is marked.
    if "net_gradient" in locs:
        fields.append(("net_gradient", "<f4"))
    if "z" in locs:   # Picasso's 3D columns: z and its precision lpz, both in nm (picasso/zfit.py, 0.11)
        fields += [("z", "<f4"), ("lpz", "<f4")]
    if "loglik" in locs:
        fields.append(("likelihood", "<f4"))
    if "iterations" in locs:
        fields.append(("iterations", "<i4"))
    if "chi2" in locs:
        fields.append(("chi2", "<f4"))
    if "status" in locs:
        fields.append(("status", "<u1"))
    arr = np.zeros(n, dtype=fields)
    arr["frame"] = frame
    for pic, ours in _PICASSO_FLOATS:
        arr[pic] = locs[ours].to_numpy(np.float32) if ours in locs else np.nan
    if "ellipticity" in locs:
        arr["ellipticity"] = locs["ellipticity"].to_numpy(np.float32)
    else:  # Picasso's definition: (max(sx, sy) - min(sx, sy)) / max(sx, sy)
        hi = np.maximum(arr["sx"], arr["sy"])
        with np.errstate(invalid="ignore", divide="ignore"):
            arr["ellipticity"] = (hi - np.minimum(arr["sx"], arr["sy"])) / hi
    # spotfit has no net gradient; 0 unless the table carries one.
    if "net_gradient" in locs:
        arr["net_gradient"] = locs["net_gradient"].to_numpy(np.float32)
    if "z" in locs:
        arr["z"] = locs["z"].to_numpy(np.float32)
        arr["lpz"] = locs["uncertainty_z"].to_numpy(np.float32) if "uncertainty_z" in locs else np.nan
    if "loglik" in locs:
        arr["likelihood"] = locs["loglik"].to_numpy(np.float32)
    if "iterations" in locs:
        arr["iterations"] = locs["iterations"].to_numpy(np.int32)
    if "chi2" in locs:
        arr["chi2"] = locs["chi2"].to_numpy(np.float32)
    if "status" in locs:
        arr["status"] = _status_codes(locs["status"], path)
    if movie_shape is None:
        movie_shape = (int(frame.max()) + 1 if n else 0,
                       int(math.ceil(np.nanmax(arr["y"]) + 0.5)) if n else 0,
                       int(math.ceil(np.nanmax(arr["x"]) + 0.5)) if n else 0)
    frames, rows, cols = (int(v) for v in movie_shape)
    _warn_picasso_drops(arr, rows, cols, path)
    md = _meta(locs)
    params = md.get("parameters") or {}
    movie_doc = {"Byte Order": "<", "Data Type": str(md.get("movie_dtype", "uint16")),
                 "Frames": frames, "Height": rows, "Width": cols,
                 "Generated by": "spotfit"}
    loc_doc = {"Generated by": f"spotfit {md.get('version', '')} localize".replace("  ", " ")}
    if px:
        loc_doc["Pixelsize"] = float(px)
    for keys, name in ((("box", "box_size"), "Box Size"), (("estimator", "method"), "Fit method")):
        for key in keys:
            if isinstance(params, dict) and isinstance(params.get(key), (int, float, str)):
                loc_doc.setdefault(name, params[key])
    if "status" in locs:
        loc_doc["spotfit status codes"] = dict(enumerate(FIT_STATUS))
    loc_doc["spotfit attrs (json)"] = _dumps(locs.attrs)
    yaml_path = path.with_suffix(".yaml")
    with atomic_path(path) as tmp_h5, atomic_path(yaml_path) as tmp_yaml:
        with h5py.File(tmp_h5, "w") as f:
            f.create_dataset("locs", data=arr)
        with open(tmp_yaml, "w") as f:
            yaml.safe_dump_all([movie_doc, loc_doc], f, default_flow_style=False)


def _load_picasso(path):
    h5py = need("h5py", "this file format")
    yaml = need("yaml", "this file format")
    with h5py.File(path, "r") as f:
        if "locs" not in f:
            raise ValueError(f"{str(path)!r}: no 'locs' dataset (not a Picasso file)")
        arr = f["locs"][...]
    names = arr.dtype.names or ()
    out = {"frame": arr["frame"].astype(np.int64)}
    for pic, ours in _PICASSO_FLOATS:
        if pic in names:
            out[ours] = arr[pic]
    if "likelihood" in names:
        out["loglik"] = arr["likelihood"]
    if "lpz" in names:
        out["uncertainty_z"] = arr["lpz"]
    if "iterations" in names:
        out["iterations"] = arr["iterations"].astype(np.int32)
    if "status" in names:
        codes = arr["status"].astype(np.int64)
        out["status"] = pd.Categorical.from_codes(np.where(codes < len(FIT_STATUS), codes, -1), categories=FIT_STATUS)
    for name in names:
        if name not in ("frame", "likelihood", "iterations", "status", "lpz") and \
                name not in dict(_PICASSO_FLOATS):
            out[name] = arr[name]
    df = pd.DataFrame(out)
    docs = []
    yaml_path = path.with_suffix(".yaml")
    if yaml_path.exists():
        with open(yaml_path) as f:
            docs = [d for d in yaml.safe_load_all(f) if isinstance(d, dict)]
    for d in docs:
        if "spotfit attrs (json)" in d:
            df.attrs = _loads(d["spotfit attrs (json)"])
            return df
    md = {"pixel_size_nm": None, "movie_shape": None,
          "source": {"format": "picasso", "file": str(path), "info": docs}}
    for d in docs:
        if d.get("Pixelsize"):
            md["pixel_size_nm"] = float(d["Pixelsize"])
    if docs and {"Frames", "Height", "Width"} <= set(docs[0]):
        md["movie_shape"] = (int(docs[0]["Frames"]), int(docs[0]["Height"]),
                             int(docs[0]["Width"]))
    df.attrs = {"spotfit": md}
    return df
