"""Deprecated name of :mod:`spotfit.ml` (spotfit < 0.2): import from ``spotfit.ml`` instead."""
from ._shared.deprecation import moved

__getattr__ = moved(__name__, "spotfit.ml")
