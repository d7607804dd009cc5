"""Localize a movie layer in a worker thread, with progress and cancel, and without a second list of settings.

:func:`spotfit.localize` takes any movie that has ``shape``/``ndim`` and slices by frames, and it asks for
``chunk_frames`` frames at a time. :class:`WatchedMovie` is such a movie over a layer's data: it reports
each chunk it hands out and raises :class:`Cancelled` at the next chunk once cancelled. The rows are those of
``spotfit.localize`` on the same movie and settings, since it is the same call. No Qt here.
"""
from __future__ import annotations

import dataclasses
import math
import pathlib
import re
import threading
import types
import typing
from typing import Optional

import numpy as np

from .. import registry
from .._front import localize
from ..camera import Camera
from ..options import LocalizeOptions


class Cancelled(Exception):
    """The user cancelled a run."""


class WatchedMovie:
    """A layer's data as a movie for :func:`spotfit.localize` that reports progress and can be cancelled.

    ``report(done, total)`` is called with the frames finished before each chunk is read; ``cancel`` is a
    :class:`threading.Event`.
    """

    def __init__(self, data, camera=None, camera_assumed=None, report=None, cancel=None):
        self._data = data
        self.shape = tuple(int(s) for s in data.shape)
        self.ndim = len(self.shape)
        self.dtype = data.dtype
        self.camera = camera
        # no camera at all: localize assumes Camera() and warns once, as for an array
        self.camera_assumed = camera is None if camera_assumed is None else bool(camera_assumed)
        self._report = report or (lambda done, total: None)
        self.cancel = cancel or threading.Event()

    def _check(self):
        if self.cancel.is_set():
            raise Cancelled("localize cancelled")

    def __getitem__(self, key):
        self._check()
        first = key[0] if isinstance(key, tuple) else key
        if isinstance(first, slice) and self.ndim == 3:
            self._report(first.indices(self.shape[0])[0], self.shape[0])
        return np.asarray(self._data[key])

    def __array__(self, dtype=None, copy=None):
        self._check()
        out = np.asarray(self._data)
        return out if dtype is None else out.astype(dtype, copy=False)


def run(movie: WatchedMovie, options: LocalizeOptions):
    """``spotfit.localize`` of the movie, reporting completion; None when cancelled."""
    try:
        locs = localize(movie, options)
    except Cancelled:
        return None
    movie._report(movie.shape[0] if movie.ndim == 3 else 1, movie.shape[0] if movie.ndim == 3 else 1)
    return locs


# --------------------------------------------------------------------------
# the settings, read from LocalizeOptions and the registry
# --------------------------------------------------------------------------

def _registry_names() -> list:
    """Every list of names the registry exports (MODELS, ESTIMATORS, THRESHOLD_MODES, BOX_BORDERS...)."""
    return [tuple(v) for k, v in vars(registry).items()
            if k.isupper() and hasattr(v, "keys") and all(isinstance(n, str) for n in v)]


@dataclasses.dataclass(frozen=True)
class Setting:
    """How a viewer shows one :class:`LocalizeOptions` field."""

    name: str
    kind: type              # bool, int, float or str
    default: object
    help: str
    unit: str
    choices: tuple = ()     # registry names, for a str setting
    optional: bool = False  # None allowed: shown as 0 (threads)
    step: float = 1.0


def _kind(hint) -> tuple:
    """(type, optional) of an annotation: ``Optional[int]`` -> (int, True); an object or the path of its file
    (``Optional[Union[AstigmaticCalibration, str]]``) -> (pathlib.Path, True)."""
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    union = typing.get_origin(hint) in (typing.Union, getattr(types, "UnionType", None))
    if union and len(args) > 1 and str in args:
        return pathlib.Path, type(None) in typing.get_args(hint)
    optional = union and len(args) == 1
    return (args[0] if optional else hint), optional


def _step(default) -> float:
    return 10.0 ** (math.floor(math.log10(abs(default))) - 1) if default else 0.1


def settings() -> list:
    """One :class:`Setting` per :class:`LocalizeOptions` field, in order.

    Types come from the dataclass annotations, defaults, help and units from the fields' metadata, and a
    string setting's choices from the registry list that holds its default.
    """
    hints = typing.get_type_hints(LocalizeOptions)
    lists = _registry_names()
    out = []
    for f in dataclasses.fields(LocalizeOptions):
        kind, optional = _kind(hints[f.name])
        choices = ()
        if kind is str:
            found = {frozenset(names): names for names in lists if f.default in names}  # MODEL_PARAMETERS = MODELS
            if len(found) != 1:
                raise RuntimeError(f"LocalizeOptions.{f.name}: no single registry list holds {f.default!r}")
            choices = next(iter(found.values()))
        out.append(Setting(f.name, kind, f.default, f.metadata["help"], f.metadata["unit"], choices,
                           optional, _step(f.default) if kind is float else 1.0))
    return out


def _parameter_docs(doc: str) -> dict:
    """{name: description} of a numpydoc ``Parameters`` section (``a, b : type`` then indented text)."""
    out, names = {}, []
    section = (doc or "").split("Parameters\n", 1)[-1]
    for line in section.splitlines()[1:]:
        head = re.fullmatch(r"\s{4}(\w+(?:, \w+)*) : .*", line)
        if head:
            names = head.group(1).split(", ")
        elif line.startswith(" " * 8) and names:
            for name in names:
                out[name] = (out.get(name, "") + " " + line.strip()).strip()
        elif line.strip() and not line.startswith(" " * 5):
            break
    return out


def camera_settings() -> list:
    """One :class:`Setting` per number of :class:`spotfit.Camera` (baseline, sensitivity, em_gain, qe,
    pixel_size_nm), from the dataclass and its docstring; sCMOS maps come from the movie's metadata only."""
    hints = typing.get_type_hints(Camera)
    docs = _parameter_docs(Camera.__doc__)
    out = []
    for f in dataclasses.fields(Camera):
        kind, optional = _kind(hints[f.name])
        if kind is float:
            out.append(Setting(f.name, float, f.default, docs.get(f.name, ""), "", (), optional,
                               _step(f.default or 0)))
    return out


def camera_from(values: dict, base: Optional[Camera] = None) -> Camera:
    """``base`` (the movie's camera, with its sCMOS maps if any; default ``Camera()``) with the widget's
    numbers (0 = None for an optional one); Camera's own checks name a bad value."""
    optional = {s.name for s in camera_settings() if s.optional}
    values = {k: (None if k in optional and not v else float(v)) for k, v in values.items()}
    return dataclasses.replace(base, **values) if base is not None else Camera(**values)


def options_from(values: dict) -> LocalizeOptions:
    """LocalizeOptions of the widget's values (0 = None for an optional setting); invalid values raise
    LocalizeOptions' own ValueError/TypeError naming the setting."""
    optional = {s.name for s in settings() if s.optional}
    files = {s.name for s in settings() if s.kind is pathlib.Path}

    def value(name, v):
        if name in files:   # a file setting left empty (magicgui shows "." or "") is None
            return None if v is None or str(v) in ("", ".") else str(v)
        return None if name in optional and not v else v
    return LocalizeOptions(**{k: value(k, v) for k, v in values.items()})
