"""Post-processing of localization tables: linking blinks into events, precision (NeNA) and resolution (FRC).

API level: works on pandas tables in pixels, imports the core's bindings, ``_shared``, ``render`` and
numpy/scipy/pandas only (never ``io``, ``ml``, ``cli`` or ``distributed``).
"""
from .link import link
from .precision import frc, nena
