"""Good/bad labels of localizations from their fit parameters (the rules of an in-focus single emitter)."""
from __future__ import annotations

from functools import lru_cache
from typing import Optional

import numpy as np
import pandas as pd
from ..registry import MODEL_PARAMETERS


#: Default rules of :func:`label_spots`; set one to None to switch it off.
DEFAULT_RULES = {
    "converged": True,            # fit status == "converged"
    "sigma_range": (0.7, 1.4),    # sigma_x and sigma_y within these multiples of psf_sigma
    "max_ellipticity": 1.15,      # max(sigma_x, sigma_y) / min(...)
    "min_photons": 400.0,         # fitted photons
    "max_offset": 1.0,            # px, fitted centre to the centre of the peak (box centre) pixel
    "max_uncertainty": 0.15,      # px, CRLB sqrt((u_x^2 + u_y^2) / 2)
    "chi2_pvalue": 1e-3,          # reject fits whose Pearson chi2 exceeds its (1 - p) quantile
}

# Grid of the simulated chi2 quantiles: background (photons/px) in factors of 2, spot photons in factors of 4.
_BACKGROUND_BINS = (-3, 10)     # log2 of the lowest and highest bin
_PHOTON_BINS = (3, 8)           # log4


def chi2_limit(p: float, background, photons, *, psf_sigma: float, box: int = 7, model: str = "gauss",
               estimator: str = "mle") -> np.ndarray:
    """(1 - p) quantile of the fit's Pearson chi2 for exact-model spots like these, by simulation.

    The chi2(box**2 - n_parameters) quantile holds only for large counts: at a few photons per pixel
    Pearson's chi2 has a heavier tail, and at an LSQ estimate the model can come near zero in a pixel,
    which no chi2 law describes. So the quantile is simulated: single pixel-integrated Gaussians with
    Poisson noise, centred uniformly within +-0.5 px of the box centre, fitted as localize fits them,
    on a grid of background (factors of 2) and photons (factors of 4); each spot gets the quantile of
    its grid cell. Cells are simulated once per setting (cached) with a fixed seed.
    """
    bg = np.asarray(background, dtype=np.float64)
    ph = np.asarray(photons, dtype=np.float64)
    limit = np.full(bg.shape, np.nan)
    finite = np.isfinite(bg) & np.isfinite(ph)
    with np.errstate(divide="ignore", invalid="ignore"):
        i = np.clip(np.floor(np.log2(np.maximum(bg, 1e-12))), *_BACKGROUND_BINS).astype(np.int64, copy=False)
        j = np.clip(np.floor(np.log(np.maximum(ph, 1e-12)) / np.log(4.0)), *_PHOTON_BINS).astype(np.int64, copy=False)
    for cell in set(zip(i[finite].tolist(), j[finite].tolist())):
        hit = finite & (i == cell[0]) & (j == cell[1])
        limit[hit] = _simulated_quantile(float(p), cell, round(float(psf_sigma), 3), int(box), model, estimator)
    return limit


@lru_cache(maxsize=512)
def _simulated_quantile(p, cell, psf_sigma, box, model, estimator):
    from ..core import fit_spots
    from ..simulate import integrated_gaussian
    if not 0 < p < 1:
        raise ValueError(f"chi2_pvalue must be in (0, 1), got {p}")
    n = int(min(max(30 / p, 10_000), 300_000))      # ~30 exceedances: the rate to ~20 %
    rng = np.random.default_rng([cell[0] - _BACKGROUND_BINS[0], cell[1], box])
    background, photons = 2.0 ** (cell[0] + 0.5), 4.0 ** (cell[1] + 0.5)
    centre = (box - 1) / 2 + rng.uniform(-0.5, 0.5, (n, 2))
    gx = integrated_gaussian(centre[:, 0], psf_sigma, box)
    gy = integrated_gaussian(centre[:, 1], psf_sigma, box)
    boxes = rng.poisson(background + photons * gy[:, :, None] * gx[:, None, :]).astype(np.float32)
    fits = fit_spots(boxes, psf_sigma=psf_sigma, estimator=estimator, model=model)
    values = fits["chi2"].to_numpy()[fits["status"].astype(str).to_numpy() == "converged"]
    return float(np.quantile(values, 1.0 - p)) if len(values) else np.nan


def label_spots(locs: pd.DataFrame, rules: Optional[dict] = None, *, psf_sigma: Optional[float] = None,
                box: Optional[int] = None, model: Optional[str] = None):
    """Label each localization good (True) or bad from its fit parameters.

    A spot is good when it passes every active rule (:data:`DEFAULT_RULES`, overridden by ``rules``;
    a rule set to None is off). The defaults come from the physics of an in-focus single emitter,
    not from the data set's own statistics:

    - ``converged``: the fit converged (``status``).
    - ``sigma_range`` (0.7, 1.4): ``sigma_x`` and ``sigma_y`` within these multiples of the expected
      PSF sigma. An in-focus emitter's fitted sigma scatters by a few % (its CRLB); defocused spots
      are wider, hot pixels and noise spikes narrower.
    - ``max_ellipticity`` 1.15: a 15% axis difference is > 3x the CRLB of sigma for >~800 photons;
      two emitters ~1.5-2.5 px apart look elongated. Informative only for ``model="elliptical"``.
    - ``min_photons`` 400 and ``max_uncertainty`` 0.15 px: too few photons for a useful position;
      the uncertainty is the Cramér-Rao bound at the estimate (Smith et al. 2010, Nat. Methods 7:373;
      0.15 px = 15-24 nm at 100-160 nm pixels).
    - ``max_offset`` 1 px: the fitted centre stays within 1 px of the detection pixel's centre.
    - ``chi2_pvalue`` 1e-3: Pearson chi2 of the fit above the (1 - p) quantile that exact-model
      spots of the same background, photons, box, model and estimator reach (:func:`chi2_limit`,
      simulated; about the chi2(``box**2 - n_parameters``) quantile at high counts). So on single
      in-focus emitters it rejects about a fraction p. The chi2 is divided by the EMCCD
      excess-noise factor 2 when the camera has ``em_gain > 1``. Catches overlapping emitters that a
      single Gaussian does not describe. With ``estimator="lsq"`` and < ~4 background photons per
      pixel the limit is very large (the LSQ model nears zero in some pixel), so the rule rejects little.

    Parameters
    ----------
    locs : DataFrame
        Output of :func:`spotfit.localize` (columns status, sigma_x, sigma_y, photons, x, y,
        peak_row, peak_col, uncertainty_x, uncertainty_y, chi2 as the active rules need).
    rules : dict, optional
        Overrides of :data:`DEFAULT_RULES`.
    psf_sigma, box, model : optional
        Expected PSF sigma (px), fit box side and fit model; default from
        ``locs.attrs["spotfit"]["parameters"]`` (written by localize). ``box`` falls back to 7 and
        ``model`` to "gauss"/"elliptical" by whether sigma_x == sigma_y everywhere.

    Returns
    -------
    good : Series of bool, named "good", indexed like ``locs``
    report : DataFrame indexed by rule: ``setting``, ``rejected`` (spots failing the rule) and
        ``only`` (spots failing this rule alone); ``report.attrs`` has ``n`` and ``n_good``.
    """
    if not isinstance(locs, pd.DataFrame):
        raise TypeError(f"locs must be a pandas DataFrame, got {type(locs).__name__}")
    rules = dict(DEFAULT_RULES, **(rules or {}))
    unknown = set(rules) - set(DEFAULT_RULES)
    if unknown:
        raise ValueError(f"unknown rule(s) {sorted(unknown)}; rules are {sorted(DEFAULT_RULES)}")
    meta = locs.attrs.get("spotfit", {}) if isinstance(locs.attrs.get("spotfit"), dict) else {}
    pars = meta.get("parameters", {})
    psf_sigma = pars.get("psf_sigma") if psf_sigma is None else psf_sigma
    if psf_sigma is None or not np.isfinite(float(psf_sigma)) or float(psf_sigma) <= 0:
        raise ValueError("psf_sigma (px) must be given: locs.attrs has no spotfit parameters")
    psf_sigma = float(psf_sigma)
    box = int(pars.get("box", 7) if box is None else box)

    def col(name, rule):
        if name not in locs:
            raise ValueError(f"rule {rule!r} needs column {name!r}; pass rules={{{rule!r}: None}} to skip it")
        return locs[name].to_numpy(dtype=np.float64) if name != "status" else locs[name].astype(str).to_numpy()

    if model is None:
        model = pars.get("model")
        if model is None and {"sigma_x", "sigma_y"} <= set(locs):
            model = "gauss" if np.array_equal(locs["sigma_x"].to_numpy(), locs["sigma_y"].to_numpy()) else "elliptical"
    fails, settings, notes = {}, {}, {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for rule, value in rules.items():
            if value is None or value is False:
                continue
            settings[rule] = value
            if rule == "converged":
                ok = col("status", rule) == "converged"
            elif rule == "sigma_range":
                lo, hi = (float(v) * psf_sigma for v in value)
                sx, sy = col("sigma_x", rule), col("sigma_y", rule)
                ok = (sx >= lo) & (sx <= hi) & (sy >= lo) & (sy <= hi)
            elif rule == "max_ellipticity":
                sx, sy = col("sigma_x", rule), col("sigma_y", rule)
                ok = np.maximum(sx, sy) / np.minimum(sx, sy) <= float(value)
                if model not in (None, "elliptical"):
                    notes[rule] = f"uninformative for model={model!r} (sigma_x == sigma_y)"
            elif rule == "min_photons":
                ok = col("photons", rule) >= float(value)
            elif rule == "max_offset":
                has_peak = {"peak_row", "peak_col"} <= set(locs)
                cx = col("peak_col", rule) if has_peak else np.rint(col("x", rule))
                cy = col("peak_row", rule) if has_peak else np.rint(col("y", rule))
                ok = np.hypot(col("x", rule) - cx, col("y", rule) - cy) <= float(value)
            elif rule == "max_uncertainty":
                ok = np.sqrt((col("uncertainty_x", rule) ** 2 + col("uncertainty_y", rule) ** 2) / 2) <= float(value)
            else:  # chi2_pvalue
                fit_model = model if model in MODEL_PARAMETERS else "gauss"
                dof = box * box - len(MODEL_PARAMETERS[fit_model])
                excess = 2.0 if float(meta.get("camera", {}).get("em_gain", 1.0)) > 1 else 1.0
                estimator = pars.get("estimator") if pars.get("estimator") in ("mle", "lsq") else "mle"
                statistic = col("chi2", rule) / excess
                limit = chi2_limit(float(value), col("background", rule), col("photons", rule), psf_sigma=psf_sigma,
                                   box=box, model=fit_model, estimator=estimator)
                ok = statistic <= limit
                notes[rule] = f"dof={dof}" + (", EMCCD excess noise 2" if excess > 1 else "")
            fails[rule] = ~ok  # NaN comparisons are False: a NaN parameter fails its rule
    n = len(locs)
    fail = np.array(list(fails.values())).reshape(len(fails), n)
    good = pd.Series(~fail.any(axis=0), index=locs.index, name="good")
    n_fail = fail.sum(axis=0)
    report = pd.DataFrame({"setting": [str(settings[r]) for r in fails],
                           "rejected": [int(f.sum()) for f in fail],
                           "only": [int((f & (n_fail == 1)).sum()) for f in fail],
                           "note": [notes.get(r, "") for r in fails]}, index=pd.Index(list(fails), name="rule"))
    report.attrs.update(n=n, n_good=int(good.sum()), psf_sigma=psf_sigma)
    return good, report


