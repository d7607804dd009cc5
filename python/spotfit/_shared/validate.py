"""Input checks shared by the public functions: one clear exception per problem."""
from __future__ import annotations

import numbers

import numpy as np

from ..registry import PIXEL_DTYPES
_F32_MAX = float(np.finfo(np.float32).max)


def positive(name: str, value, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be a finite number {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


#: Plausible camera pixel sizes in the sample, nm: outside, a unit was probably mistyped (0.133 = µm).
PIXEL_SIZE_NM_RANGE = (1.0, 10_000.0)


def pixel_size_nm(value, name: str = "pixel_size_nm") -> float:
    value = positive(name, value)
    lo, hi = PIXEL_SIZE_NM_RANGE
    if not lo <= value <= hi:
        hint = f" (is it in µm? {value:g} µm = {value * 1000:g} nm)" if value < lo else ""
        raise ValueError(f"{name} = {value:g} nm is outside the plausible {lo:g}-{hi:g} nm{hint}")
    return value


def odd_box(box) -> int:
    if isinstance(box, bool) or not isinstance(box, numbers.Integral):
        raise TypeError(f"box must be an odd integer, got {box!r}")
    box = int(box)
    if box % 2 == 0 or not 3 <= box <= 31:
        raise ValueError(f"box must be an odd integer between 3 and 31, got {box}")
    return box


INT32_MAX = 2**31 - 1


def integer(name: str, value, lo: int, hi: int = INT32_MAX) -> int:
    """An integer parameter in [lo, hi] (the core takes int32); integral floats such as 3.0 are accepted."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Integral, numbers.Real)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if not isinstance(value, numbers.Integral) and not float(value).is_integer():
        raise ValueError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be an integer in [{lo}, {hi}], got {value}")
    return value


def choice(name: str, value, options) -> str:
    if value not in options:
        raise ValueError(f"{name} must be one of {sorted(options)}, got {value!r}")
    return value


def pixel_array(a, name: str = "stack") -> np.ndarray:
    """Return `a` as an array the core can read (native byte order, supported dtype), checking values."""
    a = np.asarray(a)
    if a.dtype.kind not in "uif":
        raise TypeError(f"{name} must hold integer or float pixels, got dtype {a.dtype}")
    if not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))
    if a.dtype not in PIXEL_DTYPES:
        a = a.astype(np.float64 if a.dtype.itemsize >= 8 or a.dtype.kind == "i" else np.float32)
    if a.dtype.kind == "f" and a.size and not np.isfinite(a).all():
        bad = np.argwhere(~np.isfinite(a))[0]
        raise ValueError(f"{name} contains NaN or inf (first at index {tuple(int(i) for i in bad)})")
    if a.dtype == np.float64 and a.size and max(-float(a.min()), float(a.max())) > _F32_MAX:
        # The core works in float32: such a pixel would become inf and blank its whole frame silently.
        raise ValueError(f"{name} has values beyond the float32 range (|value| > {_F32_MAX:.4g})")
    return a


def boolean(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def localization_table(locs, action: str, *, allow_empty: bool = False):
    """``locs`` if it is a DataFrame with ``frame``, ``x`` and ``y`` columns (and rows, unless ``allow_empty``);
    else a TypeError or a ValueError that says what is wrong and what could not be done (``action``)."""
    import pandas as pd
    if not isinstance(locs, pd.DataFrame):
        raise TypeError(f"locs must be a pandas DataFrame, got {type(locs).__name__}")
    missing = [c for c in ("frame", "x", "y") if c not in locs.columns]
    if missing:
        raise ValueError(f"cannot {action}: locs has no column {', '.join(missing)} (needs frame, x, y; has "
                         f"{list(locs.columns)[:12]})")
    if not len(locs) and not allow_empty:
        raise ValueError(f"locs is empty: there is nothing to {action}")
    return locs
