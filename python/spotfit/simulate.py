"""Simulated SMLM movies with exact ground truth."""
from __future__ import annotations

from typing import Optional, Tuple, Union

import numpy as np
import pandas as pd

from ._shared import validate as _validate
from .camera import Camera


def integrated_gaussian(centre: np.ndarray, sigma: float, n_pixels: int, first: int = 0) -> np.ndarray:
    """Fraction of a 1D Gaussian in each pixel ``first .. first+n_pixels-1`` (pixel centres at integers).

    ``centre`` may be an array (one row per emitter): result shape (len(centre), n_pixels).
    """
    edges = np.arange(first, first + n_pixels + 1, dtype=np.float64) - 0.5
    c = np.asarray(centre, dtype=np.float64)[..., None]
    from scipy.special import erf   # scipy.special costs ~0.3 s to import: only when simulating
    return 0.5 * np.diff(erf((edges - c) / (np.sqrt(2.0) * sigma)), axis=-1)


def expected_image(shape, x, y, photons, background, psf_sigma) -> np.ndarray:
    """Expected photons per pixel: background (a number or a (rows, cols) profile) + pixel-integrated
    Gaussian spots (Smith et al. 2010)."""
    rows, cols = shape
    img = np.empty(shape, dtype=np.float64)
    img[...] = background
    if len(x):
        ex = integrated_gaussian(x, psf_sigma, cols)  # (n, cols)
        ey = integrated_gaussian(y, psf_sigma, rows)  # (n, rows)
        img += np.einsum("n,nr,nc->rc", np.asarray(photons, dtype=np.float64), ey, ex)
    return img


def simulate(frames: int = 100, shape: Tuple[int, int] = (256, 256), density: float = 15.0,
             photons: Union[float, Tuple[float, float]] = (500.0, 5000.0), background: float = 20.0,
             psf_sigma: float = 1.3, camera: Optional[Camera] = None, seed: Optional[int] = None,
             border: float = 5.0, min_distance: float = 0.0, dtype=np.uint16, read_noise: float = 0.0,
             excess_noise: bool = False) -> Tuple[np.ndarray, pd.DataFrame]:
    """Simulate a movie of blinking point sources.

    Each frame holds Poisson(``density``) emitters at uniform positions at least ``border`` px from
    the edges (and ``min_distance`` px from each other, if > 0), with photons uniform in ``photons``
    (or fixed). The image is background + pixel-integrated Gaussian PSF in photons, Poisson noise,
    then the camera's ADU conversion (``Camera.to_adu``), rounded and clipped to the dtype's range.

    ``background`` is photons/pixel: a number, or a (rows, cols) array for an uneven illumination.
    ``read_noise`` adds Gaussian noise of that rms (ADU) before rounding. ``excess_noise`` simulates an
    EMCCD's multiplication noise: each photoelectron's gain is exponentially distributed (a gamma for n
    electrons; Basden et al. 2003, MNRAS 345:985), which doubles the variance. Both are off by default.

    Returns
    -------
    movie : ndarray (frames, rows, cols) of ``dtype``
    truth : DataFrame with ``frame, x, y, photons, background, sigma`` (pixels, photons; x = column,
        y = row, centre of pixel (0, 0) at (0, 0); frames 0-based).
    """
    camera = Camera() if camera is None else camera
    if int(frames) < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    rows, cols = (int(shape[0]), int(shape[1]))
    if rows < 1 or cols < 1:
        raise ValueError(f"shape must be positive, got {shape}")
    psf_sigma = _validate.positive("psf_sigma", psf_sigma)
    if np.ndim(background) == 0:
        background = _validate.positive("background", background, allow_zero=True)
    else:
        background = np.asarray(background, dtype=np.float64)
        if background.shape != (rows, cols):
            raise ValueError(f"background must be a number or a {rows}x{cols} array, got shape {background.shape}")
        if not (np.isfinite(background).all() and (background >= 0).all()):
            raise ValueError("background must be finite and >= 0 everywhere")
    read_noise = _validate.positive("read_noise", read_noise, allow_zero=True)
    density = _validate.positive("density", density, allow_zero=True)
    lo, hi = (photons, photons) if np.isscalar(photons) else photons
    if not 0 <= lo <= hi:
        raise ValueError(f"photons must be >= 0 and given as (low, high) with low <= high, got {photons}")
    if 2 * border >= min(rows, cols) - 1:
        raise ValueError(f"border {border} leaves no room in a {rows}x{cols} frame")
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else None
    movie = np.empty((int(frames), rows, cols), dtype=dtype)
    truth = []
    for f in range(int(frames)):
        n = rng.poisson(density)
        xs, ys = _positions(rng, n, rows, cols, border, min_distance)
        ph = rng.uniform(lo, hi, len(xs))
        mu = expected_image((rows, cols), xs, ys, ph, background, psf_sigma)
        electrons = rng.poisson(mu)
        if excess_noise:
            electrons = rng.gamma(np.maximum(electrons, 1), 1.0) * (electrons > 0)
        adu = camera.to_adu(electrons)
        if read_noise > 0:
            adu = adu + rng.normal(0.0, read_noise, adu.shape)
        if info is not None:
            adu = np.clip(np.rint(adu), info.min, info.max)
        movie[f] = adu
        truth.append(pd.DataFrame({"frame": f, "x": xs, "y": ys, "photons": ph}))
    gt = pd.concat(truth, ignore_index=True)
    gt["frame"] = gt["frame"].astype(np.int64)
    if np.ndim(background) == 0:
        gt["background"] = background
    else:   # the profile at each spot's pixel
        gt["background"] = background[np.rint(gt["y"]).astype(int), np.rint(gt["x"]).astype(int)] if len(gt) else []
    gt["sigma"] = psf_sigma
    return movie, gt


def _positions(rng, n, rows, cols, border, min_distance):
    xs = rng.uniform(border, cols - 1 - border, n)
    ys = rng.uniform(border, rows - 1 - border, n)
    if min_distance <= 0 or n < 2:
        return xs, ys
    keep_x, keep_y = [], []
    for x, y in zip(xs, ys):  # redraw a few times, then drop: density stays close to the target
        for _ in range(20):
            if all((x - a) ** 2 + (y - b) ** 2 >= min_distance ** 2 for a, b in zip(keep_x, keep_y)):
                keep_x.append(x)
                keep_y.append(y)
                break
            x, y = rng.uniform(border, cols - 1 - border), rng.uniform(border, rows - 1 - border)
    return np.array(keep_x), np.array(keep_y)


# --- 3D: astigmatic movies and bead stacks --------------------------------------------------------------------
def expected_image_xy(shape, x, y, photons, background, sigma_x, sigma_y) -> np.ndarray:
    """As :func:`expected_image`, with a width per spot and axis (arrays like ``x``): astigmatic spots."""
    rows, cols = shape
    img = np.empty(shape, dtype=np.float64)
    img[...] = background
    if len(x):
        from scipy.special import erf
        def axis(c, s, n):
            edges = np.arange(n + 1, dtype=np.float64) - 0.5
            return 0.5 * np.diff(erf((edges - np.asarray(c, np.float64)[:, None]) /
                                     (np.sqrt(2.0) * np.asarray(s, np.float64)[:, None])), axis=-1)
        img += np.einsum("n,nr,nc->rc", np.asarray(photons, dtype=np.float64), axis(y, sigma_y, rows),
                         axis(x, sigma_x, cols))
    return img


def _to_adu(mu, rng, camera, dtype):
    adu = camera.to_adu(rng.poisson(mu))
    if np.dtype(dtype).kind in "ui":
        info = np.iinfo(dtype)
        adu = np.clip(np.rint(adu), info.min, info.max)
    return adu


def simulate_astigmatic(calibration, frames: int = 100, shape: Tuple[int, int] = (128, 128),
                        density: float = 5.0, photons=(1000.0, 6000.0), background=(20.0, 30.0),
                        z=(-500.0, 500.0), camera: Optional[Camera] = None, seed: Optional[int] = None,
                        border: float = 8.0, min_distance: float = 0.0,
                        dtype=np.uint16) -> Tuple[np.ndarray, pd.DataFrame]:
    """A movie of astigmatic emitters: each spot's widths are ``calibration.widths(z)`` at its z.

    Each frame holds Poisson(``density``) emitters (at least ``min_distance`` px apart when > 0) with z
    uniform in ``z`` (nm), photons uniform in ``photons``; the background (photons/px) of each frame is
    uniform in ``background`` (or fixed). Poisson noise, then the camera's ADU conversion.

    Returns
    -------
    movie : ndarray (frames, rows, cols) of ``dtype``
    truth : DataFrame ``frame, x, y, z, photons, background, sigma_x, sigma_y`` (px, nm, photons)
    """
    camera = Camera() if camera is None else camera
    rows, cols = int(shape[0]), int(shape[1])
    if int(frames) < 1 or rows < 1 or cols < 1:
        raise ValueError(f"frames and shape must be positive, got {frames}, {shape}")
    if 2 * border >= min(rows, cols) - 1:
        raise ValueError(f"border {border} leaves no room in a {rows}x{cols} frame")
    rng = np.random.default_rng(seed)
    lo, hi = (photons, photons) if np.isscalar(photons) else photons
    blo, bhi = (background, background) if np.isscalar(background) else background
    zlo, zhi = (z, z) if np.isscalar(z) else z
    if not (0 <= lo <= hi and 0 <= blo <= bhi and zlo <= zhi):
        raise ValueError("photons, background and z must be a number or (low, high) with low <= high, "
                         "photons and background >= 0")
    movie = np.empty((int(frames), rows, cols), dtype=dtype)
    truth = []
    for f in range(int(frames)):
        xs, ys = _positions(rng, rng.poisson(density), rows, cols, border, min_distance)
        zs = rng.uniform(zlo, zhi, len(xs))
        ph = rng.uniform(lo, hi, len(xs))
        bg = rng.uniform(blo, bhi)
        sx, sy = calibration.widths(zs)
        movie[f] = _to_adu(expected_image_xy((rows, cols), xs, ys, ph, bg, sx, sy), rng, camera, dtype)
        truth.append(pd.DataFrame({"frame": f, "x": xs, "y": ys, "z": zs, "photons": ph, "background": bg,
                                   "sigma_x": sx, "sigma_y": sy}))
    gt = pd.concat(truth, ignore_index=True)
    gt["frame"] = gt["frame"].astype(np.int64)
    return movie, gt


def simulate_beads(calibration, *, z_step_nm: float = 20.0, planes: Optional[int] = None, beads: int = 20,
                   photons: float = 20000.0, background: float = 30.0, shape: Tuple[int, int] = (128, 128),
                   camera: Optional[Camera] = None, seed: Optional[int] = None, border: float = 12.0,
                   min_distance: float = 20.0, dtype=np.uint16) -> Tuple[np.ndarray, pd.DataFrame]:
    """A z-stack of beads on one surface, one frame per stage step, through ``calibration``'s range.

    Plane k images the beads at z = z_top - k * ``z_step_nm``: the first plane has the most positive z
    (Picasso's sign, docs/3d.md); ``planes`` defaults to those that span the calibrated range. The beads
    keep their x, y through the stack.

    Returns
    -------
    stack : ndarray (planes, rows, cols) of ``dtype``
    truth : DataFrame ``frame, bead, x, y, z, sigma_x, sigma_y`` (one row per bead and plane)
    """
    camera = Camera() if camera is None else camera
    z_step_nm = _validate.positive("z_step_nm", z_step_nm)
    z_min, z_max = calibration.z_range
    if planes is None:
        planes = int(np.floor((z_max - z_min) / z_step_nm)) + 1
    planes = int(planes)
    if planes < 1:
        raise ValueError(f"planes must be >= 1, got {planes}")
    rng = np.random.default_rng(seed)
    rows, cols = int(shape[0]), int(shape[1])
    xs, ys = _positions(rng, int(beads), rows, cols, border, min_distance)
    z_top = 0.5 * (planes - 1) * z_step_nm + 0.5 * (z_min + z_max)
    stack = np.empty((planes, rows, cols), dtype=dtype)
    truth = []
    for k in range(planes):
        zk = z_top - k * z_step_nm
        sx, sy = calibration.widths(np.full(len(xs), zk))
        stack[k] = _to_adu(expected_image_xy((rows, cols), xs, ys, np.full(len(xs), float(photons)), background,
                                             sx, sy), rng, camera, dtype)
        truth.append(pd.DataFrame({"frame": k, "bead": np.arange(len(xs)), "x": xs, "y": ys, "z": zk,
                                   "sigma_x": sx, "sigma_y": sy}))
    return stack, pd.concat(truth, ignore_index=True)
