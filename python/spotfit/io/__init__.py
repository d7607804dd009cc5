"""Files: movies in (:func:`open_movie`, :func:`read_movie`, :func:`iter_chunks`, :func:`movie_info`) and
localization tables in and out (:func:`save`, :func:`load`; formats in :data:`FORMATS`).

Movies: TIFF (plain, ImageJ, OME, BigTIFF, multi-file series given as a list or a glob pattern) through
:mod:`tifffile`, and Picasso ``.raw`` movies with their ``.yaml`` sidecar (see :mod:`spotfit.io.movies`).
Tables: parquet, csv, thunderstorm, picasso (see :mod:`spotfit.io.tables`). All writes are atomic.

This layer sits above the API (it builds cameras from file metadata); the API never imports it.
"""
from .movies import (SUPPORTED_DTYPES, Movie, MovieError, MovieInfo, MovieNotFoundError, expand_paths,
                     iter_chunks, movie_info, open_movie, read_movie)
from .tables import FORMAT_SUFFIXES, FORMATS, infer_format, load, save

__all__ = ["FORMATS", "FORMAT_SUFFIXES", "Movie", "MovieError", "MovieInfo", "MovieNotFoundError",
           "SUPPORTED_DTYPES", "expand_paths", "infer_format", "iter_chunks", "load", "movie_info", "open_movie",
           "read_movie", "save"]

