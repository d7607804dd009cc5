"""spotfit: find and measure fluorescent spots in single-molecule microscopy movies.

>>> import spotfit
>>> movie, truth = spotfit.simulate(frames=10, seed=1)
>>> locs = spotfit.localize(movie, camera=spotfit.Camera(baseline=100, sensitivity=1.0))
"""
__version__ = "0.1.0"

from .bounds import crlb, mortensen
from .camera import Camera
from .core import FIT_STATUS, find_peaks, fit_spots, localize, wavelet_filter
from .simulate import simulate

__all__ = ["Camera", "FIT_STATUS", "crlb", "find_peaks", "fit_spots", "localize", "mortensen", "simulate",
           "wavelet_filter", "__version__"]
