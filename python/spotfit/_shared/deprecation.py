"""Old module names that moved: a module ``__getattr__`` that warns once per name and forwards."""
from __future__ import annotations

import importlib
import warnings

from .warnings import SpotfitDeprecationWarning


def moved(old: str, new: str, renamed: dict | None = None):
    """``__getattr__`` for module ``old`` whose names now live in module ``new`` (``renamed``: old -> new name)."""
    renamed = renamed or {}

    def __getattr__(name):
        if name.startswith("__"):
            raise AttributeError(name)
        target = renamed.get(name, name)
        value = getattr(importlib.import_module(new), target)
        warnings.warn(f"{old}.{name} moved to {new}.{target} (spotfit 0.2); {old} will be removed",
                      SpotfitDeprecationWarning, stacklevel=2)
        return value
    return __getattr__
