"""The one list of each kind: fit models, estimators, threshold modes, fit states, box borders, pixel types,
and the columns of a localization table.

Where the C++ core owns a list (an enum in ``cpp/include/spotcore/``), the list here is derived from the bound
enum, so adding a value to the core adds it everywhere (API checks, command-line ``choices``, file formats).
Lists owned by a Python layer live with their owner: table formats in :mod:`spotfit.io`, classifier and
regressor kinds in :mod:`spotfit.ml`.
"""
from __future__ import annotations

from types import MappingProxyType

import numpy as np

from . import _spotcore


def _members(enum, rename=None) -> MappingProxyType:
    """{public name: enum value} in the enum's numeric order."""
    rename = rename or {}
    items = sorted(enum.__members__.items(), key=lambda kv: int(kv[1]))
    return MappingProxyType({rename.get(name, name): value for name, value in items})


#: Fit models: ``fixed_sigma`` (x, y, photons, background), ``gauss`` (+ sigma), ``elliptical`` (+ sigma_x, sigma_y),
#: ``astigmatic`` (+ z, nm, with sigma_x(z), sigma_y(z) from a calibration).
MODELS = _members(_spotcore.Model)
#: Fit estimators: unweighted least squares, Poisson maximum likelihood.
ESTIMATORS = _members(_spotcore.Estimator)
#: Detection threshold modes: ``std`` = factor x std(W1) per frame (ThunderSTORM), ``absolute`` = photons.
THRESHOLD_MODES = _members(_spotcore.ThresholdMode, {"std_w1": "std"})
#: Per-fit outcome, the categories of the ``status`` column, in code order (a list, as in spotfit 0.x).
FIT_STATUS = list(_members(_spotcore.FitStatus))
#: What a cut box holds outside the image: NaN (the fit ignores it), or the nearest edge pixel's value.
BOX_BORDERS = _members(_spotcore.BoxBorder)

_NUMPY_KIND = {"u": "uint", "i": "int", "f": "float"}
#: Pixel types the core reads without a copy (other integer/float types are converted once per chunk).
PIXEL_DTYPES = frozenset(np.dtype(_NUMPY_KIND[name[0]] + name[1:]) for name in _members(_spotcore.PixelType))

#: Fitted parameters of each model, in the order of the Fisher matrix (spotfit.bounds).
MODEL_PARAMETERS = MappingProxyType({
    "fixed_sigma": ("x", "y", "photons", "background"),
    "gauss": ("x", "y", "photons", "background", "sigma"),
    "elliptical": ("x", "y", "photons", "background", "sigma_x", "sigma_y"),
    "astigmatic": ("x", "y", "photons", "background", "z"),
})
if set(MODEL_PARAMETERS) != set(MODELS):  # a model added to the core needs its parameter names here
    raise ImportError(f"spotfit.registry: MODEL_PARAMETERS {sorted(MODEL_PARAMETERS)} do not match the core's "
                      f"models {sorted(MODELS)}")

#: Columns of the table :func:`spotfit.localize` returns, in order.
COLUMNS = ("frame", "x", "y", "photons", "background", "sigma_x", "sigma_y", "uncertainty_x", "uncertainty_y",
           "uncertainty_photons", "uncertainty_background", "uncertainty_sigma_x", "uncertainty_sigma_y",
           "loglik", "chi2", "iterations", "status", "peak_row", "peak_col")
#: Columns a 3D model (``astigmatic``) adds after ``y``: z and its Cramér–Rao bound, nm.
COLUMNS_3D = ("z", "uncertainty_z")
