"""spotfit: find and measure fluorescent spots in single-molecule microscopy movies.

>>> import spotfit
>>> camera = spotfit.Camera(baseline=100, sensitivity=0.5)
>>> movie, truth = spotfit.simulate(frames=10, camera=camera, seed=1)
>>> locs = spotfit.localize(movie, camera=camera)

Layers (each imports only those below it): the C++ core's bindings (``_spotcore``) -> ``registry`` and
``_shared`` -> the API (``core``, ``camera``, ``options``, ``simulate``, ``bounds``, ``evaluate``, ``render``)
-> ``io`` (files), ``ml`` (classifier, regressors) and ``distributed`` (Dask) -> ``cli`` and the front door
``spotfit.localize``. ``import spotfit`` loads the API and ``io``; ``ml``, ``distributed`` and ``bounds``
load on first use.
"""
from ._include import get_include, get_library_dir
from ._shared.version import VERSION as __version__
from ._shared.warnings import SpotfitWarning
from ._front import calibrate_astigmatism, localize
from .astigmatism import AstigmaticCalibration
from .camera import Camera, make_camera
from .core import cut_boxes, find_peaks, fit_spots, wavelet_filter
from .options import LocalizeOptions
from .registry import FIT_STATUS
from .simulate import simulate, simulate_astigmatic, simulate_beads
from . import io, registry  # noqa: E402  (public sub-packages, imported for their names)

# name -> module that defines it, imported on first use so that `import spotfit` stays light.
_LAZY = {
    "crlb": "bounds", "mortensen": "bounds",
    "simulate_smlm": "smlm", "smlm": "smlm",
    "undrift": "postprocess",
    "link": "postprocess", "nena": "postprocess", "frc": "postprocess", "postprocess": "postprocess",
    "report": "postprocess.report",
    "render": "render", "evaluate": "evaluate", "distributed": "distributed", "ml": "ml", "cli": "cli",
    "SpotClassifier": "ml", "label_spots": "ml", "extract_patches": "ml", "CentroidRegressor": "ml",
    "training_set": "ml", "Localizer": "ml", "localize_stream": "ml",
    # spotfit < 0.2 module names (deprecated shims that name the new place)
    "classify": "classify", "regress": "regress", "realtime": "realtime", "patches": "patches",
}


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'spotfit' has no attribute {name!r}")
    import importlib
    mod = importlib.import_module(f"{__name__}.{module}")
    value = mod if name == module else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = ["AstigmaticCalibration", "Camera", "CentroidRegressor", "FIT_STATUS", "LocalizeOptions", "Localizer",
           "SpotClassifier", "SpotfitWarning", "calibrate_astigmatism", "crlb", "cut_boxes", "extract_patches",
           "find_peaks", "fit_spots", "frc", "get_include", "get_library_dir", "io", "label_spots", "link",
           "localize", "localize_stream", "make_camera", "mortensen", "nena", "registry", "render", "report",
           "simulate", "simulate_astigmatic", "simulate_beads", "simulate_smlm", "training_set", "undrift",
           "wavelet_filter", "__version__"]
