"""Deprecated name of :mod:`spotfit.ml` (spotfit < 0.2): import from ``spotfit.ml`` instead."""
from ._shared.deprecation import moved

# regress.extract_patches(image, rows, cols) is spotfit.ml.frame_patches (spotfit.ml.extract_patches cuts movies)
__getattr__ = moved(__name__, "spotfit.ml", {"extract_patches": "frame_patches"})
