"""Readers of the npe2 manifest: movies (an Image layer with its camera) and localization tables (Points and
a rendered super-resolution Image over the movie).

``get_reader`` answers None for a file that is not ours, so napari can offer it to another reader; the
function it returns raises a clear error for a file that is ours but cannot be read.
"""
from __future__ import annotations

import os
from pathlib import Path

from .. import io
from . import _layers

MOVIE_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".raw")       # spotfit.io.open_movie's formats
TABLE_SUFFIXES = (".parquet", ".pq", ".csv", ".hdf5", ".h5")      # spotfit.io.load's (rapidSTORM .txt: widget)


def _paths(path) -> list:
    return [Path(p) for p in path] if isinstance(path, (list, tuple)) else [Path(path)]


def _looks_like_table(path: Path) -> bool:
    """A CSV is ours when its header names x and y (spotfit csv, ThunderSTORM, Picasso's export)."""
    if path.suffix.lower() != ".csv":
        return True
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            line = f.readline()
            while line.startswith("#"):
                line = f.readline()
    except OSError:
        return False
    names = {n.strip().strip('"').split("[")[0].strip() for n in line.split(",")}
    return {"x", "y"} <= names


def get_reader(path):
    """npe2 reader command: a function that reads ``path`` (one file or a list = one movie series), or None."""
    paths = _paths(path)
    if not paths or any(os.path.isdir(p) for p in paths):
        return None
    suffixes = {p.suffix.lower() for p in paths}
    if suffixes <= set(MOVIE_SUFFIXES):
        return read_movie
    if len(paths) == 1 and suffixes <= set(TABLE_SUFFIXES) and _looks_like_table(paths[0]):
        return read_localizations
    return None


def read_movie(path) -> list:
    """``[(data, kwargs, "image")]`` of a movie; ``metadata["spotfit"]["camera"]`` is its :class:`Camera`."""
    paths = _paths(path)
    movie = io.open_movie([str(p) for p in paths] if len(paths) > 1 else str(paths[0]))
    return [_layers.movie_layer(movie, paths[0].stem)]


def read_localizations(path, *, pixel_size_nm=None, zoom: float = _layers.DEFAULT_ZOOM) -> list:
    """Points (frame, y, x) of a localization file, and its rendering at ``zoom`` over the movie.

    ``pixel_size_nm`` converts a ThunderSTORM file's nm when no ``<stem>-protocol.txt`` gives it.
    """
    path = Path(path[0] if isinstance(path, (list, tuple)) else path)
    try:
        locs = io.load(path, pixel_size_nm=pixel_size_nm)
    except ValueError as exc:
        if "pixel_size_nm" in str(exc):
            raise ValueError(f"{exc}. In napari: open it with the spotfit 'Open localizations' widget, which "
                             "takes the pixel size, or put ThunderSTORM's <stem>-protocol.txt beside it") from exc
        raise
    name = path.stem
    return [_layers.points_layer(locs, name),
            _layers.render_layer(locs, f"{name} rendered", zoom=zoom, shape=_layers.frame_shape(locs))]
