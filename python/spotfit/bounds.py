"""Cramér–Rao bounds for a pixel-integrated Gaussian spot with Poisson noise."""
from __future__ import annotations

import numpy as np
from scipy import integrate
from scipy.special import erf

from .registry import MODEL_PARAMETERS as PARAMETERS


def _fisher(photons, background, sx, sy, box, x, y, model, slopes=None):
    edges = np.arange(box + 1) - 0.5
    def axis(c, s):
        u = (edges - c) / (np.sqrt(2) * s)
        e = 0.5 * np.diff(erf(u))
        g = np.exp(-u ** 2)
        de = -np.diff(g) / (np.sqrt(2 * np.pi) * s)        # d/dc
        ds = -np.diff(u * g) / (np.sqrt(np.pi) * s)        # d/ds
        return e, de, ds
    ex, dex, dsx = axis(x, sx)
    ey, dey, dsy = axis(y, sy)
    mu = background + photons * np.outer(ey, ex)
    jac = [photons * np.outer(ey, dex), photons * np.outer(dey, ex), np.outer(ey, ex), np.ones_like(mu)]
    if model == "gauss":
        jac.append(photons * (np.outer(ey, dsx) + np.outer(dsy, ex)))
    elif model == "elliptical":
        jac += [photons * np.outer(ey, dsx), photons * np.outer(dsy, ex)]
    elif model == "astigmatic":   # chain rule through the widths s(z)
        jac.append(photons * (np.outer(ey, dsx) * slopes[0] + np.outer(dsy, ex) * slopes[1]))
    j = np.stack([a.ravel() for a in jac])
    return (j / mu.ravel()) @ j.T


def crlb(photons, background, psf_sigma=None, *, box: int = 7, model: str = "gauss", x=None, y=None,
         sigma_y=None, z=None, calibration=None) -> dict:
    """Cramér–Rao lower bound (standard deviations) of each fit parameter.

    Exact Fisher information of the pixel-integrated Gaussian on a ``box``×``box`` grid with Poisson
    noise (Smith et al. 2010; Mortensen et al. 2010 give the continuous approximation, see
    :func:`mortensen`). ``photons`` may be an array; the spot sits at the box centre unless ``x``,
    ``y`` (box coordinates) are given. Returns a dict of arrays keyed by parameter name.

    ``model="astigmatic"``: the 3D bound at depth ``z`` (nm) with the widths of ``calibration`` (an
    :class:`spotfit.AstigmaticCalibration`; ``psf_sigma`` is not used); ``"z"`` is in nm.
    """
    if model not in PARAMETERS:
        raise ValueError(f"model must be one of {sorted(PARAMETERS)}, got {model!r}")
    ph = np.atleast_1d(np.asarray(photons, dtype=np.float64))
    slopes = None
    if model == "astigmatic":
        if calibration is None or z is None:
            raise ValueError("the astigmatic bound needs z= (nm) and calibration= (an AstigmaticCalibration)")
        sxz, syz = calibration.widths(float(z))
        psf_sigma, sigma_y = float(sxz), float(syz)
        slopes = tuple(float(v) for v in calibration.slopes(float(z)))
    elif psf_sigma is None:
        raise ValueError(f"model {model!r} needs psf_sigma")
    if (ph <= 0).any() or background < 0 or psf_sigma <= 0 or box < 3 or box % 2 == 0:
        raise ValueError("crlb needs photons > 0, background >= 0, psf_sigma > 0 and an odd box >= 3")
    c = (box - 1) / 2
    x = c if x is None else x
    y = c if y is None else y
    sy = psf_sigma if sigma_y is None else sigma_y
    names = PARAMETERS[model]
    out = {k: np.empty(len(ph)) for k in names}
    for i, n in enumerate(ph):
        var = np.diag(np.linalg.inv(_fisher(n, background, psf_sigma, sy, box, x, y, model, slopes)))
        for k, v in zip(names, var):
            out[k][i] = np.sqrt(v)
    if np.ndim(photons) == 0:
        out = {k: float(v[0]) for k, v in out.items()}
    return out


def mortensen(photons, background, psf_sigma, *, estimator: str = "mle", pixel_size: float = 1.0):
    """Localization precision (std, same unit as ``pixel_size``) of Mortensen et al. 2010 (Nat. Methods 7:377).

    ``estimator="mle"``: eq. 5 (≈ Cramér–Rao bound of an integrated Gaussian);
    ``"lsq"``: eq. 6 (unweighted least squares), both without EM excess noise.
    ``background`` is in photons per pixel, ``psf_sigma`` in the unit of ``pixel_size``.
    """
    n = np.asarray(photons, dtype=np.float64)
    a2 = pixel_size ** 2
    sa2 = psf_sigma ** 2 + a2 / 12.0
    tau = 2 * np.pi * sa2 * background / (n * a2)
    if estimator == "lsq":
        return np.sqrt(sa2 / n * (16.0 / 9.0 + 8 * np.pi * sa2 * background / (n * a2)))
    if estimator != "mle":
        raise ValueError(f"estimator must be 'mle' or 'lsq', got {estimator!r}")
    def factor(t):
        if t == 0:
            return 1.0
        val, _ = integrate.quad(lambda u: np.log(u) / (1 + u / t), 0, 1)
        return 1.0 / (1.0 + val)
    f = np.vectorize(factor)(tau)
    return np.sqrt(sa2 / n * f)
