"""spotfit's warning classes: filter them with ``warnings.filterwarnings("ignore", category=...)``."""
from __future__ import annotations


class SpotfitWarning(UserWarning):
    """Base class of every warning spotfit issues."""


class CameraWarning(SpotfitWarning):
    """The camera settings look wrong for the data (e.g. the baseline is above most pixels)."""


class BaselineWarning(CameraWarning):
    """The camera offset lies above most pixels of the movie's first frame, by more than their noise."""


class NoiseModelWarning(CameraWarning):
    """The fits' chi2 says the data are noisier or quieter than Poisson noise under these camera settings."""


class FallbackWarning(SpotfitWarning, RuntimeWarning):
    """A computation fell back to a slower path (e.g. a classifier's fast evaluation disagreed)."""


class FileFormatWarning(SpotfitWarning):
    """A file was read or written with a loss the user should know about (missing metadata, dropped rows)."""


class SpotfitDeprecationWarning(SpotfitWarning, DeprecationWarning):
    """A name moved or will be removed; the message names the replacement."""
