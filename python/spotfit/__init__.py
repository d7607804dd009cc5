"""spotfit: find and measure fluorescent spots in single-molecule microscopy movies.

>>> import spotfit
>>> camera = spotfit.Camera(baseline=100, sensitivity=0.5)
>>> movie, truth = spotfit.simulate(frames=10, camera=camera, seed=1)
>>> locs = spotfit.localize(movie, camera=camera)
"""
__version__ = "0.1.0"

from . import io, render
from ._include import get_include, get_library_dir
from .bounds import crlb, mortensen
from .camera import Camera
from .classify import SpotClassifier, label_spots
from .core import FIT_STATUS, find_peaks, fit_spots, localize, wavelet_filter
from .patches import extract_patches
from .realtime import Localizer, localize_stream
from .regress import CentroidRegressor, training_set
from .simulate import simulate

__all__ = ["Camera", "CentroidRegressor", "FIT_STATUS", "Localizer", "SpotClassifier", "crlb", "extract_patches",
           "find_peaks", "fit_spots", "get_include", "get_library_dir", "io", "label_spots", "localize", "localize_stream", "mortensen", "render",
           "simulate", "training_set", "wavelet_filter", "__version__"]
