"""Super-resolution images from localization tables.

Coordinates follow spotfit's convention: camera pixel ``(row, col)`` covers
``[row - 0.5, row + 0.5) x [col - 0.5, col + 0.5)``, so with ``zoom`` rendered
pixels per camera pixel a localization at ``(x, y)`` falls in rendered pixel
``(floor((y + 0.5) * zoom), floor((x + 0.5) * zoom))``.  The kernels are compiled
(``spotfit._kernels``, Cython).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from . import _kernels  # Cython; numpy references in tests/test_cython.py
from ._shared.atomic import atomic_path

# 2**31 pixels: 8 GiB as float32; beyond that a zoom is almost surely a mistake, not a request.
MAX_PIXELS = 2**31

__all__ = ["render", "save_image"]


def _camera_pixel_nm(locs) -> float | None:
    md = locs.attrs.get("spotfit") if isinstance(getattr(locs, "attrs", None), dict) else None
    px = md.get("pixel_size_nm") if isinstance(md, dict) else None
    return float(px) if px else None


def _frame_shape(locs, x, y) -> tuple[int, int]:
    md = locs.attrs.get("spotfit") if isinstance(getattr(locs, "attrs", None), dict) else None
    shape = md.get("movie_shape") if isinstance(md, dict) else None
    if shape is not None and len(shape) >= 2:
        return int(shape[-2]), int(shape[-1])
    ok = np.isfinite(x) & np.isfinite(y)
    if not ok.any():
        return 1, 1
    # Smallest frame containing every localization (pixel c spans c +- 0.5).
    return (max(1, int(math.floor(y[ok].max() + 0.5)) + 1),
            max(1, int(math.floor(x[ok].max() + 0.5)) + 1))


def render(locs: pd.DataFrame, pixel_size: float | None = None, zoom: float = 10,
           method: str = "histogram", shape: tuple[int, int] | None = None,
           sigma: float | None = None, *, min_sigma: float = 0.5,
           max_sigma: float = 50.0) -> np.ndarray:
    """Render localizations as a super-resolution image.

    Parameters
    ----------
    locs : pandas.DataFrame
        Localization table with ``x`` and ``y`` in camera pixels; for
        ``method="gaussian"`` also ``uncertainty_x``/``uncertainty_y`` unless
        `sigma` is given.  ``attrs["spotfit"]`` may hold ``movie_shape`` and
        ``pixel_size_nm``.
    pixel_size : float, optional
        Size of a rendered pixel in nm.  Overrides `zoom` with
        ``camera_pixel_nm / pixel_size``; needs
        ``attrs["spotfit"]["pixel_size_nm"]``.
    zoom : float, default 10
        Rendered pixels per camera pixel along each axis.
    method : {"histogram", "gaussian"}, default "histogram"
        ``"histogram"`` counts localizations per rendered pixel.
        ``"gaussian"`` spreads each localization as a pixel-integrated
        Gaussian of standard deviation ``mean(uncertainty_x, uncertainty_y)``
        (or `sigma`) and unit total mass.
    shape : tuple of int, optional
        ``(rows, cols)`` of the camera frame.  Default: the last two entries
        of ``attrs["spotfit"]["movie_shape"]``, else the smallest frame that
        holds every localization.  The image has ``ceil(rows * zoom)`` by
        ``ceil(cols * zoom)`` pixels.
    sigma : float, optional
        Fixed blur in camera pixels for ``"gaussian"`` instead of each
        localization's uncertainty.
    min_sigma, max_sigma : float
        Bounds on the blur, in rendered pixels (``"gaussian"`` only).  The
        floor keeps tiny uncertainties from vanishing between pixel
        centres; the cap bounds the cost of badly fitted localizations.
        Non-finite uncertainties are rendered with `min_sigma`.

    Returns
    -------
    numpy.ndarray
        float32 image.  Localizations outside it or with non-finite x/y are
        skipped; ``"histogram"`` images sum to the number kept and
        ``"gaussian"`` images to about that number (less what is spread
        past the image border).
    """
    if not isinstance(locs, pd.DataFrame):
        raise TypeError(f"locs must be a pandas DataFrame, got {type(locs).__name__}")
    missing = [c for c in ("x", "y") if c not in locs.columns]
    if missing:
        raise ValueError(f"localization table lacks column(s) {missing}")
    if pixel_size is not None:
        cam = _camera_pixel_nm(locs)
        if cam is None:
            raise ValueError("pixel_size (nm) needs the camera pixel size in "
                             "locs.attrs['spotfit']['pixel_size_nm']; pass zoom instead")
        zoom = cam / float(pixel_size)
    zoom = float(zoom)
    if not zoom > 0:
        raise ValueError(f"zoom must be positive, got {zoom}")
    x = locs["x"].to_numpy(np.float64)
    y = locs["y"].to_numpy(np.float64)
    rows, cols = shape if shape is not None else _frame_shape(locs, x, y)
    height, width = int(math.ceil(int(rows) * zoom - 1e-9)), int(math.ceil(int(cols) * zoom - 1e-9))
    if height < 1 or width < 1:
        raise ValueError(f"rendered image would be empty: shape={(rows, cols)}, zoom={zoom}")
    if height * width > MAX_PIXELS:
        raise ValueError(f"rendered image would be {height}x{width} pixels (> {MAX_PIXELS:.0e}): lower zoom "
                         f"(or raise the pixel size); {rows}x{cols} camera pixels at zoom {zoom:g}")
    # Continuous coordinates in rendered pixels; pixel i spans [i, i + 1).
    u, v = (x + 0.5) * zoom, (y + 0.5) * zoom
    if method == "histogram":
        return _histogram(u, v, height, width)
    if method == "gaussian":
        if sigma is not None:
            s = np.full(len(locs), float(sigma) * zoom)
        elif {"uncertainty_x", "uncertainty_y"} <= set(locs.columns):
            s = 0.5 * (locs["uncertainty_x"].to_numpy(np.float64)
                       + locs["uncertainty_y"].to_numpy(np.float64)) * zoom
        else:
            raise ValueError("gaussian rendering needs uncertainty_x and uncertainty_y "
                             "columns, or a fixed sigma=")
        s = np.where(np.isfinite(s), s, min_sigma)
        s = np.clip(s, float(min_sigma), float(max_sigma))
        return _gaussian(u, v, s, height, width)
    raise ValueError(f"unknown method {method!r}; use 'histogram' or 'gaussian'")


def _histogram(u, v, height, width) -> np.ndarray:
    return _kernels.histogram(np.ascontiguousarray(u, np.float64), np.ascontiguousarray(v, np.float64),
                              int(height), int(width))


def _gaussian(u, v, s, height, width) -> np.ndarray:
    # Each point: pixel-integrated Gaussian over +-ceil(3 s) pixels around floor(u), floor(v),
    # normalised to unit mass in that window; summed in float64 (Cython, tests/test_cython.py).
    return _kernels.gaussian(np.ascontiguousarray(u, np.float64), np.ascontiguousarray(v, np.float64),
                             np.ascontiguousarray(s, np.float64), int(height), int(width))


# --------------------------------------------------------------------------
# writing images
# --------------------------------------------------------------------------

def save_image(img, path, *, vmin: float | None = None, vmax: float | None = None,
               cmap: str | None = None) -> Path:
    """Write a rendered image to TIFF or PNG, atomically.

    Parameters
    ----------
    img : array_like
        2D image (e.g. from :func:`render`).
    path : str or os.PathLike
        ``.tif``/``.tiff``: float32 values as they are (tifffile).
        ``.png``: 8-bit display image, values mapped linearly from `vmin`
        to `vmax` and clipped.
    vmin, vmax : float, optional
        PNG display range.  Defaults: 0 (or the minimum, if negative) and
        the 99.5th percentile of the positive pixels.
    cmap : str, optional
        Matplotlib colormap name for an RGB PNG; needs matplotlib
        (``pip install spotfit[plot]``).  Default: grey levels, written
        without any extra package.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    img = np.asarray(img)
    if img.ndim != 2:
        raise ValueError(f"save_image needs a 2D image, got shape {img.shape}")
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        def write(tmp):
            tifffile.imwrite(tmp, img.astype(np.float32, copy=False))
    elif suffix == ".png":
        data = np.nan_to_num(img.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo = float(vmin) if vmin is not None else min(0.0, float(data.min(initial=0.0)))
        if vmax is not None:
            hi = float(vmax)
        else:
            pos = data[data > 0]
            hi = float(np.percentile(pos, 99.5)) if pos.size else 1.0
        scaled = np.clip((data - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
        try:
            import matplotlib.image
        except ImportError as exc:
            raise ImportError("saving PNG needs matplotlib; install it with `pip install spotfit[plot]` "
                              "(or save a .tif)") from exc

        def write(tmp):
            matplotlib.image.imsave(tmp, scaled, vmin=0.0, vmax=1.0, cmap=cmap or "gray", format="png")
    else:
        raise ValueError(f"cannot save image {str(path)!r}: use a .png, .tif or .tiff suffix")
    with atomic_path(path) as tmp:
        write(tmp)
    return path


# --------------------------------------------------------------------------
# 3D (astigmatic z): colour by z, and an x-z side view
# --------------------------------------------------------------------------

def _z_values(locs) -> np.ndarray:
    if "z" not in locs.columns:
        raise ValueError("the localization table has no z column (fit with model='astigmatic')")
    return locs["z"].to_numpy(np.float64)


def render_z(locs: pd.DataFrame, zoom: float = 10, shape: tuple[int, int] | None = None,
             z_range: tuple[float, float] | None = None, cmap: str = "turbo") -> np.ndarray:
    """Render 3D localizations coloured by z: an RGB float32 image (rows, cols, 3) in [0, 1].

    Each rendered pixel's brightness is its number of localizations (scaled to the 99.5th percentile) and its
    hue the mean z of those localizations on ``cmap`` (matplotlib), ``z_range`` (nm; default the 1st-99th
    percentile of z) mapped to the colormap's ends.
    """
    from ._shared.optional import need
    cm = need("matplotlib", "colouring by z").colormaps[cmap]
    z = _z_values(locs)
    x = locs["x"].to_numpy(np.float64)
    y = locs["y"].to_numpy(np.float64)
    rows, cols = shape if shape is not None else _frame_shape(locs, x, y)
    h, w = int(math.ceil(int(rows) * zoom - 1e-9)), int(math.ceil(int(cols) * zoom - 1e-9))
    if h * w > MAX_PIXELS:
        raise ValueError(f"rendered image would be {h}x{w} pixels (> {MAX_PIXELS:.0e}): lower zoom")
    u, v = np.floor((x + 0.5) * zoom), np.floor((y + 0.5) * zoom)
    ok = np.isfinite(u) & np.isfinite(v) & np.isfinite(z) & (u >= 0) & (v >= 0) & (u < w) & (v < h)
    idx = (v[ok] * w + u[ok]).astype(np.int64)
    count = np.bincount(idx, minlength=h * w).astype(np.float64)
    zsum = np.bincount(idx, weights=z[ok], minlength=h * w)
    lo, hi = z_range if z_range is not None else (np.percentile(z[ok], [1, 99]) if ok.any() else (0.0, 1.0))
    mean_z = np.divide(zsum, count, out=np.zeros_like(zsum), where=count > 0)
    t = np.clip((mean_z - lo) / max(hi - lo, 1e-9), 0, 1)
    top = np.percentile(count[count > 0], 99.5) if (count > 0).any() else 1.0
    bright = np.clip(count / max(top, 1e-9), 0, 1)
    rgb = cm(t)[:, :3] * bright[:, None]
    return rgb.reshape(h, w, 3).astype(np.float32)


def render_side(locs: pd.DataFrame, zoom: float = 10, *, axis: str = "x", nm_per_pixel: float | None = None,
                z_range: tuple[float, float] | None = None, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Side view of 3D localizations: a histogram with ``axis`` (x or y, camera pixels x ``zoom``) across and
    z down (z_range[1] on top), float32. Rendered pixels are ``camera pixel / zoom`` wide; z uses the same
    nm per rendered pixel (``nm_per_pixel``, default from ``attrs["spotfit"]["pixel_size_nm"]``, else 10 nm).
    """
    if axis not in ("x", "y"):
        raise ValueError(f"axis must be 'x' or 'y', got {axis!r}")
    z = _z_values(locs)
    a = locs[axis].to_numpy(np.float64)
    x = locs["x"].to_numpy(np.float64)
    y = locs["y"].to_numpy(np.float64)
    rows, cols = shape if shape is not None else _frame_shape(locs, x, y)
    extent = int(cols if axis == "x" else rows)
    if nm_per_pixel is None:
        cam = _camera_pixel_nm(locs)
        nm_per_pixel = cam / zoom if cam else 10.0
    lo, hi = z_range if z_range is not None else (float(np.nanmin(z)), float(np.nanmax(z))) if len(z) else (0.0, 1.0)
    width = int(math.ceil(extent * zoom - 1e-9))
    height = max(int(math.ceil((hi - lo) / float(nm_per_pixel))), 1)
    if width * height > MAX_PIXELS:
        raise ValueError(f"side view would be {height}x{width} pixels (> {MAX_PIXELS:.0e}): raise nm_per_pixel")
    u = (a + 0.5) * zoom
    v = (hi - z) / float(nm_per_pixel)
    return _histogram(u, v, height, width)
