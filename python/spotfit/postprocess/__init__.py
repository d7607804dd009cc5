"""Post-processing of localization tables: drift correction (``undrift``, ``apply_drift``)."""
from .drift import apply_drift, undrift

__all__ = ["apply_drift", "undrift"]
