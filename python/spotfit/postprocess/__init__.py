"""Post-processing of localization tables: drift correction (``undrift``, ``apply_drift``), linking blinks into
events (``link``), precision (NeNA) and resolution (FRC).

API level: works on pandas tables in pixels, imports the core's bindings, ``_shared``, ``render`` and
numpy/scipy/pandas only (never ``io``, ``ml``, ``cli`` or ``distributed``).
"""
from .drift import apply_drift, undrift
from .link import link
from .precision import frc, nena

__all__ = ["apply_drift", "frc", "link", "nena", "undrift"]
