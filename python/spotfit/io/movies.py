"""Reading movies: :func:`open_movie` (a lazy, array-like :class:`Movie` with its camera), :func:`read_movie`, :func:`iter_chunks` and :func:`movie_info` open TIFF movies
(plain, ImageJ, OME, BigTIFF, multi-file series given as a list or a glob
pattern) through :mod:`tifffile`, and Picasso ``.raw`` movies described by a
``.yaml`` sidecar.  Every movie is seen as a stack ``(frames, rows, cols)``;
a 2D image is one frame and the leading axes of a hyperstack (time, z) are
flattened into frames in file order; channels interleaved with them are refused.
A movie that ends before the number of frames its header promises (ImageJ
``images=``, OME ``SizeZ*SizeC*SizeT``, tifffile's ``shape``) raises
:class:`MovieError` naming the file instead of being read as a silently
shorter movie.
"""

from __future__ import annotations

import contextlib
import glob as _glob
import threading
from collections import OrderedDict
import logging
import math
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Iterator, NamedTuple

import numpy as np

from .._shared.optional import need
from ..camera import Camera, assumed_camera_message, make_camera

#: Pixel types a movie file may hold (converted to a type the core reads, chunk by chunk, when needed).
SUPPORTED_DTYPES = tuple(np.dtype(t) for t in (
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float16", "float32", "float64"))


class MovieError(ValueError):
    """A movie file cannot be read: corrupt, truncated, or unsupported."""


class MovieNotFoundError(MovieError, FileNotFoundError):
    """A movie file (or glob pattern) does not exist."""


class MovieInfo(NamedTuple):
    """Shape, dtype and metadata of a movie (see :func:`movie_info`)."""

    n_frames: int
    rows: int
    cols: int
    dtype: np.dtype
    metadata: dict


# --------------------------------------------------------------------------
# movies
# --------------------------------------------------------------------------

def natural_key(p) -> list:
    """Sort key of file names in natural order (``_2`` before ``_10``)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", str(p))]


def expand_paths(path_or_paths) -> list[Path]:
    """The files of a movie: a path, a list of paths, or a glob pattern (natural order)."""
    if isinstance(path_or_paths, (str, os.PathLike)):
        s = os.fspath(path_or_paths)
        if any(c in s for c in "*?[") and not os.path.exists(s):
            paths = [Path(p) for p in _glob.glob(s)]
            if not paths:
                raise MovieNotFoundError(f"no files match the pattern {s!r}")
            return sorted(paths, key=natural_key)
        return [Path(s)]
    paths = [Path(p) for p in path_or_paths]
    if not paths:
        raise MovieError("an empty list of movie files was given")
    return paths


def _check_path(path: Path) -> None:
    if not path.exists():
        raise MovieNotFoundError(f"movie file not found: {str(path)!r}")
    if path.is_dir():
        raise MovieError(f"{str(path)!r} is a directory, not a movie file")


def _check_dtype(dtype, path) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.newbyteorder("=") not in SUPPORTED_DTYPES:
        raise MovieError(f"{str(path)!r}: unsupported pixel type {dtype}; supported: "
                         + ", ".join(d.name for d in SUPPORTED_DTYPES))
    return dtype


class _Part:
    """One file of a movie: shape, native dtype, a reader and metadata."""

    def __init__(self, path, n_frames, rows, cols, dtype, read, close, metadata):
        if rows < 1 or cols < 1:
            close()
            raise MovieError(f"{str(path)!r}: frames of {rows}x{cols} pixels hold no image")
        self.path, self.n_frames, self.rows, self.cols = path, n_frames, rows, cols
        self.dtype = np.dtype(dtype).newbyteorder("=")
        self.read, self.close, self.metadata = read, close, metadata


def _open_raw(path: Path) -> _Part:
    # Picasso raw movie: headerless pixels; layout in <stem>.yaml
    # (keys "Byte Order", "Data Type", "Frames", "Height", "Width").
    yaml = need("yaml", "Picasso .raw movies")
    info_path = path.with_suffix(".yaml")
    if not info_path.exists():
        raise MovieError(f"{str(path)!r}: Picasso raw movie needs its sidecar "
                         f"{str(info_path)!r}, which does not exist")
    try:
        with open(info_path) as f:
            info = next(iter(yaml.safe_load_all(f)))
        dtype = np.dtype(info["Data Type"]).newbyteorder(
            {"<": "<", ">": ">"}.get(str(info.get("Byte Order", "<")), "<"))
        n, rows, cols = int(info["Frames"]), int(info["Height"]), int(info["Width"])
    except Exception as exc:
        raise MovieError(f"{str(info_path)!r}: not a valid Picasso movie description "
                         f"({type(exc).__name__}: {exc})") from exc
    _check_dtype(dtype, path)
    expected, size = n * rows * cols * dtype.itemsize, path.stat().st_size
    if size != expected:
        what = "ends early" if size < expected else "is longer than described"
        raise MovieError(f"{str(path)!r} {what}: {size} bytes but {info_path.name} "
                         f"promises {n} frames of {rows}x{cols} {dtype.name} = {expected} bytes")
    px = info.get("Pixelsize", info.get("Camera.Pixelsize"))
    md = {"format": "picasso-raw", "pixel_size_nm": float(px) if px else None,
          "camera": {k: v for k, v in info.items() if str(k).startswith("Camera")},
          "picasso": info, "promised_frames": n}
    return _Part(path, n, rows, cols, dtype,
                 _contiguous_reader(path, dtype, 0, rows, cols),
                 lambda: None, md)


def _contiguous_reader(path, dtype, offset: int, rows: int, cols: int):
    """read(a, b) -> frames a..b-1 of uncompressed frames stored back to back from byte `offset`.

    Plain reads, not a memory map: pages of a memory map that have been read stay in the process's
    resident set while the map is open, so the RSS of a streaming pass would grow with the movie's length
    (measured with bench/bench_memory.py).
    """
    frame_bytes = rows * cols * dtype.itemsize
    native = dtype.newbyteorder("=")

    def read(a, b):
        data = np.empty((b - a) * rows * cols, dtype=dtype)
        # readinto, not np.fromfile: a Ctrl-C inside fromfile's file-object handling surfaces as a
        # TypeError ("expected str, bytes or os.PathLike object") instead of KeyboardInterrupt.
        with open(path, "rb") as f:
            f.seek(offset + a * frame_bytes)
            got = f.readinto(data.view(np.uint8))
        if got != data.nbytes:
            raise MovieError(f"{str(path)!r} ends early: frames {a}..{b - 1} lie past the end of the file")
        return data.reshape(b - a, rows, cols).astype(native, copy=False)
    return read


def _promised_frames(tif, series) -> list[tuple[str, int]]:
    """Frame counts promised by the file's own metadata."""
    out = []
    ij = tif.imagej_metadata if tif.is_imagej else None
    if ij and "images" in ij:
        out.append(("ImageJ metadata images=", int(ij["images"])))
    if tif.is_ome and tif.ome_metadata:
        try:
            pix = ET.fromstring(tif.ome_metadata).find(".//{*}Image/{*}Pixels")
            if pix is not None:
                n = math.prod(int(pix.get(k, 1)) for k in ("SizeZ", "SizeC", "SizeT"))
                out.append(("OME metadata SizeZ*SizeC*SizeT=", n))
        except (ET.ParseError, ValueError):
            pass
    if tif.is_shaped and tif.shaped_metadata:
        shape = tif.shaped_metadata[0].get("shape")
        if shape and len(shape) >= 2:
            out.append(("tifffile metadata shape=", int(np.prod(shape[:-2], dtype=np.int64))))
    return out


def _pixel_size_nm(tif) -> float | None:
    # OME: PhysicalSizeX (+ PhysicalSizeXUnit, default µm)
    if tif.is_ome and tif.ome_metadata:
        with contextlib.suppress(ET.ParseError, ValueError, TypeError):
            pix = ET.fromstring(tif.ome_metadata).find(".//{*}Pixels")
            if pix is not None and pix.get("PhysicalSizeX"):
                unit = pix.get("PhysicalSizeXUnit", "µm")
                scale = {"nm": 1.0, "µm": 1e3, "um": 1e3, "mm": 1e6}.get(unit)
                if scale:
                    return float(pix.get("PhysicalSizeX")) * scale
    # Micro-Manager summary
    mm = getattr(tif, "micromanager_metadata", None)
    with contextlib.suppress(Exception):
        px = (mm or {}).get("Summary", {}).get("PixelSize_um")
        if px:
            return float(px) * 1e3
    # ImageJ: XResolution = pixels per `unit`
    if tif.is_imagej and tif.imagej_metadata:
        unit = str(tif.imagej_metadata.get("unit", "")).replace("\\u00B5", "µ")
        scale = {"nm": 1.0, "micron": 1e3, "um": 1e3, "µm": 1e3}.get(unit)
        tag = tif.pages[0].tags.get("XResolution")
        if scale and tag is not None:
            num, den = tag.value
            if num:
                return den / num * scale
    return None


class _TiffLog(logging.Handler):
    # tifffile logs, and does not raise, when an IFD or a tag value lies past
    # the end of the file; it then returns fewer pages or drops metadata.
    _DAMAGE = re.compile(r"invalid page offset|invalid value offset|corrupt", re.I)

    def __init__(self):
        super().__init__(logging.WARNING)
        self.damage: list[str] = []

    # A damaged page chain can make tifffile log one error per bogus page for minutes (found by
    # fuzzing): past this many messages the file is declared damaged at once.
    MAX_MESSAGES = 200

    def emit(self, record):
        if self._DAMAGE.search(msg := record.getMessage()):
            self.damage.append(msg)

    def handle(self, record):
        # Logger.callHandlers lets an exception from handle() propagate (emit's would be swallowed).
        result = super().handle(record)
        self.count = getattr(self, "count", 0) + 1
        if self.count > self.MAX_MESSAGES:
            raise _TooDamaged(f"more than {self.MAX_MESSAGES} tifffile errors while opening")
        return result


class _TooDamaged(Exception):
    """Raised from inside tifffile's logging to stop reading a hopelessly damaged file."""


_TIFF_LAYOUTS = {  # version -> (header bytes, tag-count format, tag size, offset format)
    42: (8, "H", 12, "I"),   # classic TIFF
    43: (16, "Q", 20, "Q"),  # BigTIFF
}
_TAG_SUBIFDS = 330


def _scan_ifds(path: Path) -> int:
    """Walk a TIFF file's IFD structure cheaply; refuse one that would make tifffile loop.

    tifffile follows the chain of IFDs (one per page) lazily, page by page.  It detects a chain that
    points back to an earlier IFD only when it indexes all pages at once, so a chain that loops (found
    by fuzzing: an empty IFD whose next-IFD offset is its own) makes ``TiffFile.series`` parse the same
    IFD up to 2**32 times.  IFDs that overlap each other let a small file hold about ``size**2 / 24``
    tags to parse.  A valid TIFF has neither: every IFD (its tag count, its 12- or 20-byte entries and
    its next-IFD offset) occupies bytes of its own, so after this check tifffile parses at most
    ``size / 12`` tags and ``size / 6`` pages.  The walk covers the main chain and the IFDs listed in
    SubIFDs tags (which tifffile also parses).  Damage that tifffile reports itself (an offset past the
    end, more than 4096 tags, a header that is not TIFF) ends the walk and is left to tifffile An IFD
    offset inside the 8- or 16-byte header is refused: tifffile would parse the header as tags.

    Returns
    -------
    int
        Number of IFDs seen in the main chain (0 if the walk could not start).

    Raises
    ------
    MovieError
        If an IFD is reached twice (a loop), two IFDs overlap, or an IFD starts inside the header.
    """
    import bisect
    import mmap
    import struct

    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            return 0
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            size = len(buf)  # the bounds below are those of this map
            bo = {b"II": "<", b"MM": ">"}.get(bytes(buf[:2]))
            if bo is None:
                return 0
            layout = _TIFF_LAYOUTS.get(struct.unpack_from(bo + "H", buf, 2)[0])
            if layout is None or size < layout[0]:
                return 0
            header, nfmt, tagsize, ofmt = layout
            nsize, osize = struct.calcsize(nfmt), struct.calcsize(ofmt)
            nfmt, ofmt = bo + nfmt, bo + ofmt
            entry = struct.Struct(bo + ("HHQQ" if osize == 8 else "HHII"))
            subifds_code = struct.pack(bo + "H", _TAG_SUBIFDS)
            first = struct.unpack_from(ofmt, buf, header - osize)[0]
            seen: dict[int, int] = {}  # IFD offset -> end of its bytes
            starts: list[int] = []  # the same offsets, sorted

            def ifd(off: int, what: str):
                """(tag count, end) of the IFD at `off`, or None if tifffile would reject it itself."""
                if off in seen:
                    raise MovieError(f"{str(path)!r} is a damaged TIFF file: {what} leads to the "
                                     f"IFD at byte {off} a second time (a loop in its IFD "
                                     "structure)")
                if off < header:   # tifffile parses it (header bytes as tags): found by fuzzing
                    raise MovieError(f"{str(path)!r} is a damaged TIFF file: {what} leads to an "
                                     f"IFD at byte {off}, inside the file header")
                if off + nsize > size:
                    return None
                n = struct.unpack_from(nfmt, buf, off)[0]
                end = off + nsize + n * tagsize + osize
                if n > 4096 or end > size:
                    return None
                # Checked as the walk goes, so that the walk itself reads at most size / 12 entries.
                i = bisect.bisect_left(starts, off)
                before = starts[i - 1] if i > 0 and seen[starts[i - 1]] > off else None
                after = starts[i] if i < len(starts) and starts[i] < end else None
                if before is not None or after is not None:
                    a, b = (before, off) if before is not None else (off, after)
                    raise MovieError(f"{str(path)!r} is a damaged TIFF file: the IFDs at "
                                     f"bytes {a} and {b} overlap")
                seen[off] = end
                starts.insert(i, off)
                return n, end

            def subifds(off: int, n: int) -> list[int]:
                table = off + nsize
                entries = buf[table:table + n * tagsize]
                if subifds_code not in entries:  # fast path: no SubIFDs tag in this IFD
                    return []
                for i, (code, typ, count, value) in enumerate(entry.iter_unpack(entries)):
                    if code != _TAG_SUBIFDS:
                        continue
                    width = {4: 4, 13: 4, 16: 8, 18: 8}.get(typ)
                    if width is None or count < 1:
                        return []
                    # the value field follows code, type (2 bytes each) and count (osize bytes)
                    at = value if count * width > osize else table + i * tagsize + 4 + osize
                    if at + count * width > size:
                        return []
                    return list(struct.unpack_from(f"{bo}{count}{'I' if width == 4 else 'Q'}",
                                                   buf, at))
                return []

            pages, off = 0, first
            while off:
                found = ifd(off, "the page chain" if pages else "the header")
                if found is None:
                    break
                n, end = found
                pages += 1
                for sub in subifds(off, n):
                    if sub >= 8:  # tifffile skips smaller SubIFD offsets
                        ifd(sub, f"a SubIFDs entry of page {pages - 1}")
                off = struct.unpack_from(ofmt, buf, end - osize)[0]
    return pages


def _open_tiff(path: Path, multi: bool) -> _Part:
    import tifffile

    log, logger = _TiffLog(), logging.getLogger("tifffile")
    logger.addHandler(log)
    try:
        return _open_tiff_checked(path, multi, tifffile, log)
    except _TooDamaged as exc:
        raise MovieError(f"{str(path)!r} is a damaged TIFF file ({exc})") from None
    finally:
        logger.removeHandler(log)


def _open_tiff_checked(path, multi, tifffile, log) -> _Part:
    try:
        _scan_ifds(path)  # bounds tifffile's work on a damaged IFD structure (see its docstring)
    except MovieError:
        raise
    except (OSError, ValueError):
        pass  # cannot map the file (e.g. not a regular file): tifffile reports what is wrong
    try:
        # In a list of files, each file is read on its own (a multi-file OME
        # or Micro-Manager header would otherwise pull in the other files).
        known = getattr(tifffile.TIFF, "FILE_FLAGS", ("ome",))
        flags = {f"is_{k}": False for k in ("ome", "mmstack", "ndtiff") if k in known}
        tif = tifffile.TiffFile(path, **(flags if multi else {}))
    except Exception as exc:
        raise MovieError(f"{str(path)!r} is not a readable TIFF file "
                         f"({type(exc).__name__}: {exc})") from exc
    try:
        if not tif.series:
            raise MovieError(f"{str(path)!r}: TIFF file contains no images")
        series = tif.series[0]
        if series.kind in ("generic", "uniform", "shaped") and len(tif.series) > 1:
            raise MovieError(f"{str(path)!r}: pages differ in shape or type "
                             f"({len(tif.series)} series); cannot read as one movie")
        axes, shape = series.axes, series.shape
        if "S" in axes or len(shape) < 2 or axes[-2:] != "YX":
            raise MovieError(f"{str(path)!r}: unsupported image layout axes={axes!r} "
                             f"shape={shape} (need grey-level frames, axes ending in YX)")
        lead = dict(zip(axes[:-2], shape[:-2]))
        if lead.get("C", 1) > 1 and any(n > 1 for ax, n in lead.items() if ax != "C"):
            # Channels interleaved with time/z are different images, not more frames of one movie. (A
            # lone C axis is kept as frames: tifffile/ImageJ label an unannotated 3D stack that way.)
            raise MovieError(f"{str(path)!r} has {shape[axes.index('C')]} channels (axes={axes!r}, "
                             f"shape={shape}); spotfit localizes one channel: save it on its own, e.g. "
                             "tifffile.imwrite(out, tifffile.imread(path)[:, c], imagej=True)")
        dtype = _check_dtype(np.dtype(tif.byteorder + series.dtype.char), path)
        rows, cols = int(shape[-2]), int(shape[-1])
        n_series = int(np.prod(shape[:-2], dtype=np.int64))
        frame_bytes = rows * cols * dtype.itemsize
        # Frames whose pixel data really lie inside the file.
        dataoffset = series.dataoffset
        if dataoffset is not None:
            # A damaged offset tag can hold a float or a negative number (found by fuzzing).
            if not (float(dataoffset).is_integer() and 0 <= dataoffset < tif.filehandle.size):
                raise MovieError(f"{str(path)!r} is corrupt: image data offset {dataoffset!r} "
                                 "is not a byte position inside the file")
            dataoffset = int(dataoffset)
            avail = (tif.filehandle.size - dataoffset) // max(frame_bytes, 1)
        else:
            avail = 0
            for page in series.pages:
                if page is None or not page.dataoffsets:
                    break
                size = page.parent.filehandle.size
                if any(o + c > size or o == 0 for o, c in
                       zip(page.dataoffsets, page.databytecounts)):
                    break
                avail += 1
        found = min(n_series, int(avail))
        promised = _promised_frames(tif, series)
        expected, source = n_series, "the TIFF pages"
        for src, n in promised:
            if n > expected:
                expected, source = n, src
        if found < expected:
            raise MovieError(f"{str(path)!r} ends early (truncated or corrupt): only "
                             f"{found} frames can be read but {source} promises {expected}")
        if log.damage:
            raise MovieError(f"{str(path)!r} is truncated or corrupt: {log.damage[0]}")
        md = {"format": series.kind, "axes": axes, "pixel_size_nm": _pixel_size_nm(tif),
              "promised_frames": max((n for _, n in promised), default=None),
              "camera": {}}
        if tif.is_imagej and tif.imagej_metadata:
            md["imagej"] = {k: v for k, v in tif.imagej_metadata.items()
                            if isinstance(v, (str, int, float, bool))}
        mmd = getattr(tif, "micromanager_metadata", None)
        if mmd and isinstance(mmd.get("Summary"), dict):
            md["camera"] = {k: v for k, v in mmd["Summary"].items()
                            if "camera" in k.lower() or k in ("BitDepth", "Binning")}
    except MovieError:
        tif.close()
        raise
    except Exception as exc:
        tif.close()
        raise MovieError(f"{str(path)!r}: cannot interpret TIFF structure "
                         f"({type(exc).__name__}: {exc})") from exc

    native = dtype.newbyteorder("=")
    if dataoffset is not None and n_series:
        # Contiguous uncompressed data: read one chunk at a time with plain file reads.
        read = _contiguous_reader(path, dtype, dataoffset, rows, cols)
    else:
        def read(a, b):
            try:
                arr = tif.asarray(key=slice(a, b), series=0)
            except Exception as exc:
                raise MovieError(f"{str(path)!r}: failed to read frames {a}..{b - 1} "
                                 f"({type(exc).__name__}: {exc})") from exc
            return np.asarray(arr, dtype=native).reshape(b - a, rows, cols)
    return _Part(path, n_series, rows, cols, dtype, read, tif.close, md)


def _zarr_reader(path: Path, multi: bool, part: _Part):
    """read(a, b) through tifffile's zarr store (``aszarr=True``): any layout, compressed or tiled."""
    zarr = need("zarr", "reader='zarr'")
    import tifffile
    known = getattr(tifffile.TIFF, "FILE_FLAGS", ("ome",))
    flags = {f"is_{k}": False for k in ("ome", "mmstack", "ndtiff") if k in known} if multi else {}
    store = tifffile.imread(path, aszarr=True, series=0, level=0, **flags)
    z = zarr.open(store, mode="r")
    n, rows, cols = part.n_frames, part.rows, part.cols
    if z.shape[-2:] != (rows, cols) or int(np.prod(z.shape[:-2], dtype=np.int64)) != n:
        store.close()
        raise MovieError(f"{str(path)!r}: the zarr view has shape {z.shape}, but the movie header promised {n} "
                         f"frames of {rows}x{cols}; was the file changed?")

    def read(a, b):
        if z.ndim == 3:
            out = np.asarray(z[a:b])
        else:  # e.g. OME TZCYX: frames are the leading axes in C order
            lead = z.shape[:-2]
            out = np.stack([np.asarray(z[np.unravel_index(f, lead)]) for f in range(a, b)]) if b > a \
                else np.empty((0, rows, cols), z.dtype)
        return out.reshape(b - a, rows, cols).astype(part.dtype, copy=False)

    close = part.close

    def close_both():
        store.close()
        close()
    return read, close_both


READERS = ("auto", "zarr")


class _Movie:
    """Frames of one or more files, read lazily."""

    def __init__(self, path_or_paths, reader: str = "auto"):
        self.parts: list[_Part] = []
        paths = expand_paths(path_or_paths)
        try:
            for p in paths:
                _check_path(p)
                part = _open_raw(p) if p.suffix.lower() == ".raw" \
                    else _open_tiff(p, multi=len(paths) > 1)
                self.parts.append(part)
                if reader == "zarr" and p.suffix.lower() != ".raw":
                    part.read, part.close = _zarr_reader(p, len(paths) > 1, part)
                first = self.parts[0]
                if (part.rows, part.cols, part.dtype) != (first.rows, first.cols, first.dtype):
                    raise MovieError(
                        f"{str(p)!r}: frames are {part.rows}x{part.cols} {part.dtype} but "
                        f"{str(first.path)!r} has {first.rows}x{first.cols} {first.dtype}")
        except BaseException:
            self.close()
            raise
        self.starts = np.cumsum([0] + [p.n_frames for p in self.parts])
        self.n_frames = int(self.starts[-1])
        first = self.parts[0]
        self.rows, self.cols, self.dtype = first.rows, first.cols, first.dtype
        self.metadata = dict(first.metadata, files=[str(p.path) for p in self.parts],
                             frames_per_file=[p.n_frames for p in self.parts])

    def read(self, a: int, b: int) -> np.ndarray:
        out = np.empty((max(b - a, 0), self.rows, self.cols), self.dtype)
        for i, part in enumerate(self.parts):
            lo, hi = max(a, self.starts[i]), min(b, self.starts[i + 1])
            if lo < hi:
                s = int(self.starts[i])
                out[lo - a:hi - a] = part.read(int(lo - s), int(hi - s))
        return out

    def close(self):
        for p in self.parts:
            with contextlib.suppress(Exception):
                p.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def movie_info(path) -> MovieInfo:
    """Shape, pixel type and metadata of a movie without reading its pixels.

    Parameters
    ----------
    path : str, os.PathLike, or list of them
        TIFF file, Picasso ``.raw`` file, list of files, or glob pattern.

    Returns
    -------
    MovieInfo
        Named tuple ``(n_frames, rows, cols, dtype, metadata)``.  ``metadata``
        holds ``format``, ``files``, ``frames_per_file``, ``pixel_size_nm``
        (float or None), ``promised_frames``, ``camera`` (dict) and, where
        present, ``imagej`` or ``picasso`` header entries.

    Raises
    ------
    MovieNotFoundError
        If a file does not exist.
    MovieError
        If a file is a directory, corrupt, truncated, or of unsupported type.
    """
    with _Movie(path) as m:
        return MovieInfo(m.n_frames, m.rows, m.cols, m.dtype, m.metadata)


def _frame_range(n: int, frames) -> tuple[int, int]:
    if frames is None:
        return 0, n
    if not isinstance(frames, slice) or frames.step not in (None, 1):
        raise ValueError("frames must be None or a slice with step 1")
    a, b, _ = frames.indices(n)
    return a, max(a, b)


def iter_chunks(source, chunk_frames: int = 256, *, frames=None
                ) -> Iterator[tuple[int, np.ndarray]]:
    """Iterate over a movie in chunks of frames with bounded memory.

    Parameters
    ----------
    source : str, os.PathLike, list of paths, glob pattern, or numpy.ndarray
        Movie file(s) (see :func:`read_movie`) or an in-memory array
        ``(frames, rows, cols)`` or ``(rows, cols)``.
    chunk_frames : int, default 256
        Maximum number of frames per chunk.
    frames : slice, optional
        Contiguous frame range to read (step 1).

    Yields
    ------
    first : int
        0-based index of the chunk's first frame in the movie.
    chunk : numpy.ndarray
        Array ``(n, rows, cols)`` in the file's pixel type (native byte
        order).  Each chunk is a fresh array, never a view of a file.
    """
    chunk_frames = int(chunk_frames)
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
    if isinstance(source, np.ndarray):
        arr = source[None] if source.ndim == 2 else source
        if arr.ndim != 3:
            raise ValueError(f"movie array must be 2D or 3D, got shape {source.shape}")
        a, b = _frame_range(arr.shape[0], frames)
        for s in range(a, b, chunk_frames):
            yield s, np.array(arr[s:min(s + chunk_frames, b)])
        return
    with _Movie(source) as m:
        a, b = _frame_range(m.n_frames, frames)
        for s in range(a, b, chunk_frames):
            yield s, m.read(s, min(s + chunk_frames, b))


def read_movie(path_or_paths, *, frames=None) -> np.ndarray:
    """Read a whole movie (or a range of frames) into memory.

    Parameters
    ----------
    path_or_paths : str, os.PathLike, list of them, or glob pattern
        A TIFF file (plain, ImageJ, OME, BigTIFF; uint8/uint16/float32 and
        other integer/float grey levels), a Picasso ``.raw`` file with its
        ``.yaml`` sidecar, a list of files concatenated in the given order,
        or a glob pattern (files sorted in natural order, so ``_2`` precedes
        ``_10``).
    frames : slice, optional
        Contiguous frame range to read (step 1).

    Returns
    -------
    numpy.ndarray
        Array ``(frames, rows, cols)`` in the file's pixel type; a 2D image
        gives one frame.

    Raises
    ------
    MovieNotFoundError
        If a file does not exist (also a :class:`FileNotFoundError`).
    MovieError
        If a file is a directory, not a TIFF, truncated (fewer frames than
        its metadata promises), of an unsupported pixel type or layout, or
        if files of a list differ in frame shape or type.
    """
    with _Movie(path_or_paths) as m:
        a, b = _frame_range(m.n_frames, frames)
        return m.read(a, b)


# --------------------------------------------------------------------------
# lazy, array-like movies
# --------------------------------------------------------------------------

# Per-process cache of open movies, so that a Dask worker parses each file's header once.
_OPEN: "OrderedDict[tuple, tuple]" = OrderedDict()
_OPEN_LOCK = threading.Lock()
_OPEN_MAX = 16


def _opened(files: tuple, reader: str):
    """(_Movie, lock) for these files, opened once per process (re-opened if a file changed)."""
    for f in files:
        _check_path(Path(f))
    key = (files, reader, tuple((os.stat(f).st_mtime_ns, os.stat(f).st_size) for f in files))
    with _OPEN_LOCK:
        hit = _OPEN.get(key)
        if hit is not None:
            _OPEN.move_to_end(key)
            return hit
    entry = (_Movie(list(files), reader), threading.Lock())
    with _OPEN_LOCK:
        _OPEN[key] = entry
        while len(_OPEN) > _OPEN_MAX:
            _, (old, _) = _OPEN.popitem(last=False)
            old.close()
    return entry


class Movie:
    """A movie on disk as a lazy, read-only array ``(frames, rows, cols)`` that knows its camera.

    Made by :func:`open_movie`. Slicing frames (``movie[10:20]``) reads only those frames; ``np.asarray(movie)``
    reads all. The object holds only paths and shapes, so it pickles to Dask workers, which open the files
    themselves (once per process). :func:`spotfit.localize` and ``dask.array.from_array`` take it as it is.

    Attributes
    ----------
    shape, dtype, ndim : the stack's shape ``(frames, rows, cols)``, native pixel type, 3
    metadata : dict
        As :func:`movie_info`.
    files : list of str
    camera : Camera
        The camera given to :func:`open_movie`, else the one the file's metadata records
        (:func:`spotfit.camera.make_camera`; defaults where it records nothing).
    """

    ndim = 3

    def __init__(self, path_or_paths, *, camera: Camera | None = None, reader: str = "auto"):
        if reader not in READERS:
            raise ValueError(f"reader must be one of {READERS}, got {reader!r}")
        if camera is not None and not isinstance(camera, Camera):
            raise TypeError(f"camera must be a spotfit.Camera, got {type(camera).__name__}")
        self.files = [str(p) for p in expand_paths(path_or_paths)]
        self.reader = reader
        self._source = path_or_paths
        m, _ = _opened(tuple(self.files), reader)  # every header is checked now
        self.files = list(m.metadata["files"])
        self.shape = (m.n_frames, m.rows, m.cols)
        self.dtype = m.dtype
        self.metadata = m.metadata
        self._camera = self._camera_given = camera

    @property
    def camera(self) -> Camera:
        if self._camera is None:
            try:
                self._camera = make_camera(self.metadata, frame_shape=self.shape[1:])
            except (ValueError, TypeError) as exc:
                raise MovieError(f"{self._source!r}: the camera settings in its metadata are invalid ({exc}); "
                                 "pass camera=") from exc
        return self._camera

    @property
    def camera_assumed(self) -> bool:
        """True when no camera was passed and the metadata records no baseline or sensitivity."""
        return self._camera_given is None and assumed_camera_message(self.metadata) is not None

    def __repr__(self) -> str:
        name = self.files[0] if len(self.files) == 1 else f"{self.files[0]} + {len(self.files) - 1} more"
        return f"<spotfit.io.Movie {name!r}: {self.shape[0]} frames of {self.shape[1]}x{self.shape[2]} {self.dtype}>"

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def read(self, a: int, b: int) -> np.ndarray:
        """Frames ``a .. b-1`` as a new array in the native pixel type."""
        a, b = _frame_range(self.shape[0], slice(a, b))
        movie, lock = _opened(tuple(self.files), self.reader)
        with lock:  # tifffile file handles are not thread-safe
            return movie.read(a, b)

    def __getitem__(self, key) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        frames, rest = key[0], key[1:]
        if isinstance(frames, (int, np.integer)):
            f = int(frames) + self.shape[0] if frames < 0 else int(frames)
            if not 0 <= f < self.shape[0]:
                raise IndexError(f"frame {frames} is out of range for {self.shape[0]} frames")
            return self.read(f, f + 1)[(0,) + rest]
        if isinstance(frames, slice) and frames.step in (None, 1):
            a, b, _ = frames.indices(self.shape[0])
            return self.read(a, max(a, b))[(slice(None),) + rest]
        return self.read(0, self.shape[0])[key]  # fancy indexing: read all, then index

    def __array__(self, dtype=None, copy=None):
        out = self.read(0, self.shape[0])
        return out if dtype is None else out.astype(dtype, copy=False)


def open_movie(path_or_paths, *, camera: Camera | None = None, reader: str = "auto") -> Movie:
    """Open a movie lazily (only headers are read): a :class:`Movie` that slices like an array.

    Parameters
    ----------
    path_or_paths : str, os.PathLike, list of them, or glob pattern
        As :func:`read_movie`.
    camera : Camera, optional
        Overrides the camera the file's metadata records.
    reader : {"auto", "zarr"}
        ``"auto"``: plain reads of frames stored back to back, tifffile for other layouts. ``"zarr"``: every
        TIFF through tifffile's zarr store (``pip install spotfit[dask]``).

    Raises
    ------
    MovieNotFoundError, MovieError
        As :func:`movie_info`.
    """
    return Movie(path_or_paths, camera=camera, reader=reader)
