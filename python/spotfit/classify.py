"""Spot quality: rule labels from the Gaussian fit, and a classifier on raw spot images.

Workflow: localize a movie, label each spot good/bad from its fit parameters with
:func:`label_spots`, cut the raw images around the spots with :func:`spotfit.extract_patches`, and
train a :class:`SpotClassifier` on (patches, labels); it then screens new data from the images alone.
scikit-learn is needed for the classifier (``pip install spotfit[ml]``), matplotlib for the PNG of
:func:`quality_report` (``pip install spotfit[plot]``).
"""
from __future__ import annotations

import hashlib
import io as _io
import json
import warnings
import zipfile
from pathlib import Path
from typing import NamedTuple, Optional

import numpy as np
import pandas as pd

from .camera import Camera
from .patches import extract_patches

__all__ = ["DEFAULT_RULES", "ModelVersionError", "PatchFeatures", "QualitySet", "SpotClassifier", "label_spots",
           "quality_report", "format_report", "simulate_quality_set"]

# --------------------------------------------------------------------------
# rule labels
# --------------------------------------------------------------------------

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
_N_PARAMS = {"fixed_sigma": 4, "gauss": 5, "gauss2d": 5, "elliptical": 6}


def _need(module: str, extra: str):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(f"{module.split('.')[0]} is needed here: `pip install spotfit[{extra}]`") from exc


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
    - ``chi2_pvalue`` 1e-3: Pearson chi2 of the fit above the (1 - p) quantile of a chi2
      distribution with ``box**2 - n_parameters`` degrees of freedom (Poisson noise; divided by
      the EMCCD excess-noise factor 2 when the camera has ``em_gain > 1``). Catches overlapping
      emitters that a single Gaussian does not describe.

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
                from scipy.stats import chi2
                dof = box * box - _N_PARAMS.get(model or "gauss", 5)
                excess = 2.0 if float(meta.get("camera", {}).get("em_gain", 1.0)) > 1 else 1.0
                ok = col("chi2", rule) / excess <= chi2.isf(float(value), dof)
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


# --------------------------------------------------------------------------
# features and classifier
# --------------------------------------------------------------------------

class PatchFeatures:
    """scikit-learn transformer: flattened patches (n, size*size) -> features.

    ``kind="raw"`` passes the photons through. ``kind="moments"`` (default) subtracts the
    background (median of the outer ring), and returns the patch normalized by its total signal
    plus log signal, log background, peak fraction, centroid offset, second-moment size (trace)
    and anisotropy, and the background-to-signal ratio: features that hold the shape of a spot
    apart from its brightness.
    """

    def __init__(self, kind: str = "moments"):
        self.kind = kind

    def get_params(self, deep=True):
        return {"kind": self.kind}

    def set_params(self, **params):
        for k, v in params.items():
            if k != "kind":
                raise ValueError(f"PatchFeatures has no parameter {k!r}")
            self.kind = v
        return self

    def fit(self, X, y=None):
        if self.kind not in ("raw", "moments"):
            raise ValueError(f"features must be 'raw' or 'moments', got {self.kind!r}")
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def fit_transform(self, X, y=None):
        return self.fit(X, y).transform(X)

    def transform(self, X):
        X = np.asarray(X, dtype=np.float32)
        if self.kind == "raw":
            return X
        n, size = len(X), int(round(np.sqrt(X.shape[1])))
        X = X.reshape(n, size, size)
        h = size // 2
        yy, xx = np.mgrid[-h:h + 1, -h:h + 1].astype(np.float32)
        disk = (xx ** 2 + yy ** 2 <= (h - 0.5) ** 2).astype(np.float32)
        ring = np.concatenate([X[:, 0, :], X[:, -1, :], X[:, 1:-1, 0], X[:, 1:-1, -1]], axis=1)
        bg = np.median(ring, axis=1)
        s = X - bg[:, None, None]
        total = np.maximum((s * disk).sum(axis=(1, 2)), 1.0)
        w = s * disk / total[:, None, None]
        mx, my = (w * xx).sum(axis=(1, 2)), (w * yy).sum(axis=(1, 2))
        vxx = (w * xx * xx).sum(axis=(1, 2)) - mx ** 2
        vyy = (w * yy * yy).sum(axis=(1, 2)) - my ** 2
        vxy = (w * xx * yy).sum(axis=(1, 2)) - mx * my
        tr = vxx + vyy
        aniso = np.sqrt(np.maximum((vxx - vyy) ** 2 + 4 * vxy ** 2, 0)) / np.maximum(np.abs(tr), 1e-3)
        extra = np.stack([np.log(total), np.log(np.maximum(bg, 0.1)), s[:, h, h] / total, mx, my, tr, aniso,
                          np.sqrt(np.maximum(bg, 0)) * size / np.sqrt(total)], axis=1)
        return np.concatenate([(s / total[:, None, None]).reshape(n, -1), extra], axis=1)


class ModelVersionError(ValueError):
    """A saved classifier was written by another spotfit or scikit-learn version."""


MODEL_FORMAT = "spotfit-spot-classifier"
MODEL_FORMAT_VERSION = 1
_TRUSTED = ["spotfit.classify.PatchFeatures"]


class SpotClassifier:
    """Good/bad classifier of spot images: a scikit-learn Pipeline (features, scaling, model).

    Parameters
    ----------
    model : {"hgb", "logistic", "svm-poly"}
        Gradient-boosted trees (HistGradientBoostingClassifier, default), logistic regression, or
        a polynomial-kernel SVM (``degree=3, coef0=1``; probabilities by sigmoid calibration).
    features : {"moments", "raw"}
        See :class:`PatchFeatures`.
    random_state : int
    **params
        Passed to the model (e.g. ``C=10`` for logistic/svm-poly, ``max_iter=300`` for hgb).
    """

    MODELS = ("hgb", "logistic", "svm-poly")

    def __init__(self, model: str = "hgb", *, features: str = "moments", random_state: Optional[int] = 0, **params):
        if model not in self.MODELS:
            raise ValueError(f"model must be one of {self.MODELS}, got {model!r}")
        if features not in ("moments", "raw"):
            raise ValueError(f"features must be 'moments' or 'raw', got {features!r}")
        self.model, self.features, self.random_state, self.params = model, features, random_state, params
        self.pipeline = self._build()
        self.size: Optional[int] = None
        self.info: dict = {}

    def _build(self):
        _need("sklearn", "ml")
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler
        if self.model == "logistic":
            from sklearn.linear_model import LogisticRegression
            est = LogisticRegression(**dict({"C": 1.0, "max_iter": 3000}, **self.params))
        elif self.model == "svm-poly":
            from sklearn.calibration import CalibratedClassifierCV
            from sklearn.svm import SVC
            svc = SVC(**dict({"kernel": "poly", "degree": 3, "coef0": 1.0, "C": 1.0}, **self.params))
            est = CalibratedClassifierCV(svc, method="sigmoid", cv=3, ensemble=False)
        else:
            from sklearn.ensemble import HistGradientBoostingClassifier
            est = HistGradientBoostingClassifier(**dict({"random_state": self.random_state}, **self.params))
        return Pipeline([("features", PatchFeatures(self.features)), ("scale", StandardScaler()), ("model", est)])

    def __repr__(self):
        state = f"trained on {self.info.get('n_train')} {self.size}x{self.size} patches" if self.size else "untrained"
        return f"SpotClassifier(model={self.model!r}, features={self.features!r}; {state})"

    def _X(self, patches) -> np.ndarray:
        X = np.asarray(patches, dtype=np.float32)
        if X.ndim != 3 or X.shape[1] != X.shape[2] or X.shape[1] < 3:
            raise ValueError(f"patches must have shape (n, size, size) with size >= 3, got {X.shape}")
        if self.size is not None and X.shape[1] != self.size:
            raise ValueError(f"this classifier was trained on {self.size}x{self.size} patches, got "
                             f"{X.shape[1]}x{X.shape[2]}")
        if not np.isfinite(X).all():
            raise ValueError("patches contain NaN or inf (use extract_patches(border='pad'))")
        return X.reshape(len(X), -1)

    @staticmethod
    def _y(labels, n) -> np.ndarray:
        y = np.asarray(labels)
        if y.shape != (n,) or y.dtype.kind not in "bui":
            raise ValueError(f"labels must be {n} booleans (True = good), got shape {y.shape} dtype {y.dtype}")
        y = y.astype(bool)
        if y.all() or not y.any():
            raise ValueError("labels must contain both good and bad spots")
        return y

    def fit(self, patches, labels) -> "SpotClassifier":
        """Train on patches (n, size, size) photons and labels (n,) bool (True = good)."""
        X = self._X(patches)
        y = self._y(labels, len(X))
        self.pipeline.fit(X, y)
        self.size = int(np.asarray(patches).shape[1])
        self.info = {"n_train": int(len(y)), "n_good": int(y.sum())}
        return self

    def _check_fitted(self):
        if self.size is None:
            raise RuntimeError("this SpotClassifier is not trained: call fit() or SpotClassifier.load()")

    def predict_proba(self, patches) -> np.ndarray:
        """Probability (n,) that each spot is good."""
        self._check_fitted()
        X = self._X(patches)
        if not len(X):
            return np.empty(0)
        return self.pipeline.predict_proba(X)[:, list(self.pipeline.classes_).index(True)]

    def predict(self, patches, threshold: float = 0.5) -> np.ndarray:
        """Good (True) / bad (n,) bool: ``predict_proba(patches) >= threshold``."""
        return self.predict_proba(patches) >= threshold

    def score(self, patches, labels) -> float:
        """Accuracy against labels (n,) bool."""
        p = self.predict(patches)
        return float(np.mean(p == self._y(labels, len(p)))) if len(p) else float("nan")

    def predict_spots(self, stack, locs: pd.DataFrame, *, camera: Optional[Camera] = None, threshold: float = 0.5):
        """Classify localizations from the movie: patches around each peak pixel, then predict.

        Returns ``(good, p_good)``, two (len(locs),) arrays (bool, float). Border spots are padded
        (see :func:`spotfit.extract_patches`).
        """
        self._check_fitted()
        p = self.predict_proba(extract_patches(stack, locs, self.size, camera=camera))
        return p >= threshold, p

    def report(self, patches, labels, *, png=None, **kwargs) -> dict:
        """:func:`quality_report` of this classifier on labelled patches."""
        return quality_report(labels, self.predict_proba(patches), patches=patches, png=png, **kwargs)

    @classmethod
    def select_model(cls, patches, labels, models=MODELS, *, features: str = "moments", cv: int = 5,
                     scoring: str = "roc_auc", random_state: int = 0) -> "SpotClassifier":
        """Cross-validate each model (stratified ``cv`` folds), refit the best on all data.

        Returns the fitted best classifier; ``.cv_results_`` is a DataFrame (model, mean, std of
        ``scoring``, any scikit-learn scorer name), best first.
        """
        from sklearn.model_selection import StratifiedKFold, cross_val_score
        rows, X = [], None
        for m in models:
            clf = cls(m, features=features, random_state=random_state)
            X = clf._X(patches) if X is None else X
            y = cls._y(labels, len(X))
            s = cross_val_score(clf.pipeline, X, y, scoring=scoring,
                                cv=StratifiedKFold(cv, shuffle=True, random_state=random_state))
            rows.append({"model": m, "mean": float(s.mean()), "std": float(s.std())})
        table = pd.DataFrame(rows).sort_values("mean", ascending=False, ignore_index=True)
        best = cls(table["model"][0], features=features, random_state=random_state).fit(patches, labels)
        best.cv_results_ = table
        best.info["cv"] = {"scoring": scoring, "folds": cv, "results": rows}
        return best

    # ---- persistence ------------------------------------------------------------------------

    def save(self, path) -> Path:
        """Write a zip: ``header.json`` (versions, SHA-256) + the pipeline (skops if installed, else joblib)."""
        self._check_fitted()
        import sklearn

        from . import __version__
        try:
            import skops.io as sio
            payload, kind = sio.dumps(self.pipeline), "skops"
        except ImportError:
            import joblib
            buf = _io.BytesIO()
            joblib.dump(self.pipeline, buf)
            payload, kind = buf.getvalue(), "joblib"
        header = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "spotfit": __version__,
                  "sklearn": sklearn.__version__, "payload": kind, "sha256": hashlib.sha256(payload).hexdigest(),
                  "model": self.model, "features": self.features, "params": self.params, "size": self.size,
                  "random_state": self.random_state, "info": self.info}
        path = Path(path)
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
            z.writestr("header.json", json.dumps(header, indent=1, default=str))
            z.writestr(f"model.{kind}", payload)
        return path

    @classmethod
    def load(cls, path, *, check_version: bool = True) -> "SpotClassifier":
        """Read a file written by :meth:`save`.

        The header is checked before any model code is deserialized: a foreign or damaged file
        raises ValueError, a file from another spotfit or scikit-learn version raises
        :class:`ModelVersionError` (``check_version=False`` only warns: scikit-learn does not
        promise that models load across versions). Only load joblib files you trust; skops
        files load only scikit-learn types and spotfit's own.
        """
        import sklearn

        from . import __version__
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no such classifier file: {str(path)!r}")
        try:
            with zipfile.ZipFile(path) as z:
                header = json.loads(z.read("header.json"))
                payload = z.read(f"model.{header['payload']}")
        except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError) as exc:
            raise ValueError(f"{path} is not a spotfit classifier file, or it is damaged: {exc}") from exc
        if header.get("format") != MODEL_FORMAT or header.get("format_version") != MODEL_FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported classifier format {header.get('format')!r} "
                             f"version {header.get('format_version')!r}")
        if hashlib.sha256(payload).hexdigest() != header.get("sha256"):
            raise ValueError(f"{path} is damaged: its model data does not match the checksum in its header")
        mismatch = [f"{name} {header.get(key)} (this is {have})" for name, key, have in
                    (("spotfit", "spotfit", __version__), ("scikit-learn", "sklearn", sklearn.__version__))
                    if header.get(key) != have]
        if mismatch:
            msg = (f"{path} was saved by {' and '.join(mismatch)}; retrain it (`spotfit classify train`) or "
                   "install the versions it was saved with")
            if check_version:
                raise ModelVersionError(msg)
            warnings.warn(msg, stacklevel=2)
        if header["payload"] == "skops":
            sio = _need("skops.io", "ml")
            untrusted = set(sio.get_untrusted_types(data=payload))
            foreign = sorted(t for t in untrusted if t not in _TRUSTED and not t.startswith("sklearn."))
            if foreign:  # scikit-learn's own types and spotfit's are the only code such a file may name
                raise ValueError(f"{path} holds types spotfit does not load: {foreign}")
            pipeline = sio.loads(payload, trusted=sorted(untrusted))
        elif header["payload"] == "joblib":
            import joblib
            pipeline = joblib.load(_io.BytesIO(payload))
        else:
            raise ValueError(f"{path}: unknown model payload {header['payload']!r}")
        from sklearn.pipeline import Pipeline
        if not isinstance(pipeline, Pipeline):
            raise ValueError(f"{path} does not hold a scikit-learn Pipeline")
        clf = cls.__new__(cls)
        clf.model, clf.features, clf.params = header["model"], header["features"], header.get("params", {})
        clf.random_state, clf.size, clf.info = header.get("random_state"), int(header["size"]), header.get("info", {})
        clf.pipeline = pipeline
        return clf


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------

def quality_report(labels, p_good, *, threshold: float = 0.5, patches=None, png=None, n_examples: int = 16,
                   seed: int = 0) -> dict:
    """Accuracy, precision/recall per class, ROC AUC and confusion matrix; optionally a PNG.

    Parameters
    ----------
    labels : (n,) bool, reference labels (True = good)
    p_good : (n,) float, predicted probability of good (or bool predictions)
    patches : (n, size, size), optional; with ``png``, a grid of ``n_examples`` good and bad spots
        (tiles framed green where the prediction agrees with the label, red where not) is written
        with matplotlib. Without matplotlib the PNG is skipped with a warning and the reason is
        put in ``report["png_skipped"]``.

    Returns
    -------
    dict with n, accuracy, roc_auc (NaN with one class), per_class (DataFrame: precision, recall,
    f1, support for "bad"/"good"), confusion (DataFrame, rows = label, columns = predicted), png.
    """
    y = np.asarray(labels).astype(bool)
    p = np.asarray(p_good, dtype=np.float64)
    if y.ndim != 1 or p.shape != y.shape:
        raise ValueError(f"labels and p_good must be 1D of the same length, got {y.shape} and {p.shape}")
    pred = p >= threshold
    names = ["bad", "good"]
    conf = pd.DataFrame([[int(np.sum(~y & ~pred)), int(np.sum(~y & pred))], [int(np.sum(y & ~pred)), int(np.sum(y & pred))]],
                        index=pd.Index(names, name="label"), columns=pd.Index(names, name="predicted"))
    rows = []
    for k, cls in enumerate((False, True)):
        tp = conf.iloc[k, k]
        prec = tp / max(conf.iloc[:, k].sum(), 1)
        rec = tp / max(conf.iloc[k, :].sum(), 1)
        rows.append({"precision": prec, "recall": rec, "f1": 2 * prec * rec / max(prec + rec, 1e-12),
                     "support": int(conf.iloc[k, :].sum())})
    auc = float("nan")
    if y.any() and not y.all():
        from scipy.stats import rankdata  # Mann-Whitney form of the ROC AUC (Hanley & McNeil 1982)
        r = rankdata(p)
        auc = float((r[y].sum() - y.sum() * (y.sum() + 1) / 2) / (y.sum() * (~y).sum()))
    rep = {"n": int(len(y)), "accuracy": float(np.mean(pred == y)) if len(y) else float("nan"), "roc_auc": auc,
           "per_class": pd.DataFrame(rows, index=names), "confusion": conf, "png": None}
    if png is not None:
        if patches is None:
            raise ValueError("png needs the patches")
        try:
            _need("matplotlib", "plot")
        except ImportError:
            rep["png_skipped"] = "matplotlib is not installed: no PNG written (`pip install spotfit[plot]`)"
            warnings.warn(rep["png_skipped"], stacklevel=2)
        else:
            rep["png"] = str(_example_grid(np.asarray(patches), y, p, pred, Path(png), n_examples, seed))
    return rep


def format_report(rep: dict) -> str:
    """Plain-text table of a :func:`quality_report` result."""
    lines = [f"spots {rep['n']}   accuracy {rep['accuracy']:.4f}   ROC AUC {rep['roc_auc']:.4f}", "",
             rep["per_class"].to_string(float_format=lambda v: f"{v:.4f}"), "", "confusion matrix:",
             rep["confusion"].to_string()]
    if rep.get("png"):
        lines.append(f"examples: {rep['png']}")
    if rep.get("png_skipped"):
        lines.append(rep["png_skipped"])
    return "\n".join(lines)


def _example_grid(patches, y, p, pred, path: Path, n_examples: int, seed: int) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    rng = np.random.default_rng(seed)
    cols = 8
    groups = []
    for cls, title in ((True, "labelled good"), (False, "labelled bad")):
        idx = np.flatnonzero(y == cls)
        wrong, right = idx[pred[idx] != cls], idx[pred[idx] == cls]
        k_wrong = min(len(wrong), n_examples // 4)  # show some mistakes, mostly typical spots
        pick = np.concatenate([rng.permutation(wrong)[:k_wrong], rng.permutation(right)[:n_examples - k_wrong]])
        groups.append((title, pick))
    nrows = sum(max(1, -(-len(g) // cols)) for _, g in groups)
    fig = Figure(figsize=(cols * 1.2, nrows * 1.35 + 0.6))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(nrows, cols, hspace=0.45, wspace=0.1)
    row = 0
    for title, pick in groups:
        for j, i in enumerate(pick):
            ax = fig.add_subplot(grid[row + j // cols, j % cols])
            ax.imshow(patches[i], cmap="gray", interpolation="nearest")
            ok = pred[i] == y[i]
            for s in ax.spines.values():
                s.set_color("tab:green" if ok else "tab:red")
                s.set_linewidth(2.5)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"p={p[i]:.2f}", fontsize=7, color="black" if ok else "tab:red")
            if j == 0:
                ax.set_ylabel(title, fontsize=8)
        row += max(1, -(-len(pick) // cols))
    fig.suptitle("spot examples: p = P(good); red frame = classifier disagrees with label", fontsize=9)
    fig.savefig(path, dpi=110)
    return path


# --------------------------------------------------------------------------
# simulation with truth labels
# --------------------------------------------------------------------------

class QualitySet(NamedTuple):
    """Result of :func:`simulate_quality_set`."""

    movie: np.ndarray     #: (frames, rows, cols) uint16 ADU
    camera: Camera        #: the camera used
    sites: pd.DataFrame   #: one row per simulated site: frame, x, y, kind, photons, sigma, separation
    locs: pd.DataFrame    #: localize() output + "kind" (site kind or "spurious") and "truth" (bool)
    patches: np.ndarray   #: (len(locs), size, size) photons around each localization


KINDS = ("good", "double", "defocus", "dim", "hot")


def simulate_quality_set(n: int = 3000, seed: Optional[int] = None, *, psf_sigma: float = 1.3,
                         background: float = 20.0, fractions=(0.5, 0.125, 0.125, 0.125, 0.125), size: int = 9,
                         spacing: int = 12, grid: int = 8, camera: Optional[Camera] = None) -> QualitySet:
    """Simulate good and bad spots with truth labels, localize them and cut their patches.

    ``n`` sites are laid on a ``grid`` x ``grid`` lattice (``spacing`` px, positions jittered by
    ±0.5 px) in each frame, on a uniform background (photons/px), with Poisson noise; each site is
    one of (``fractions`` in this order):

    - ``good``: one emitter, photons log-uniform in [800, 5000], sigma = ``psf_sigma``;
    - ``double``: two emitters 1.5-2.5 px apart (1.15-1.9 sigma), photons N and 0.6-1.0 N. Closer
      pairs differ from one Gaussian by less than the shot noise and cannot be labelled per spot;
    - ``defocus``: sigma 1.5-2.0x ``psf_sigma``, photons log-uniform in [1500, 8000];
    - ``dim``: one emitter of 100-300 photons;
    - ``hot``: one pixel 200-2000 photons above background (a camera defect, no PSF).

    The movie is localized with ``model="elliptical"`` and an absolute detection threshold of
    6 photons on the W2 wavelet plane (≈1.5 std of W1 on the background; the default relative
    threshold would be raised by the dense lattice of bright spots). Each localization takes the
    kind of the nearest site within 3 px ("spurious" otherwise); ``truth`` is kind == "good".
    """
    from . import core
    from .simulate import expected_image
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.shape != (len(KINDS),) or (fr < 0).any() or fr.sum() <= 0:
        raise ValueError(f"fractions must be {len(KINDS)} non-negative numbers for {KINDS}")
    if spacing < size + 2:
        raise ValueError(f"spacing {spacing} must be >= size + 2 = {size + 2}")
    camera = Camera(baseline=100, sensitivity=0.5) if camera is None else camera
    rng = np.random.default_rng(seed)
    kinds = rng.choice(len(KINDS), size=int(n), p=fr / fr.sum())
    per = grid * grid
    shape = (grid * spacing, grid * spacing)
    frames = -(-int(n) // per)
    movie = np.empty((frames,) + shape, np.uint16)
    sites = []
    for f in range(frames):
        mu = np.full(shape, float(background))
        xs, ys, ns, ss = [], [], [], []
        for j, k in enumerate(kinds[f * per:(f + 1) * per]):
            cy = (j // grid + 0.5) * spacing - 0.5 + rng.uniform(-0.5, 0.5)
            cx = (j % grid + 0.5) * spacing - 0.5 + rng.uniform(-0.5, 0.5)
            kind, sep, sigma = KINDS[k], 0.0, psf_sigma
            if kind == "good":
                ph = np.exp(rng.uniform(np.log(800), np.log(5000)))
                em = [(cx, cy, ph)]
            elif kind == "double":
                sep, ang = rng.uniform(1.5, 2.5), rng.uniform(0, np.pi)
                ph = np.exp(rng.uniform(np.log(800), np.log(5000)))
                dx, dy = sep / 2 * np.cos(ang), sep / 2 * np.sin(ang)
                em = [(cx + dx, cy + dy, ph), (cx - dx, cy - dy, ph * rng.uniform(0.6, 1.0))]
                ph = em[0][2] + em[1][2]
            elif kind == "defocus":
                sigma = psf_sigma * rng.uniform(1.5, 2.0)
                ph = np.exp(rng.uniform(np.log(1500), np.log(8000)))
                em = [(cx, cy, ph)]
            elif kind == "dim":
                ph = rng.uniform(100, 300)
                em = [(cx, cy, ph)]
            else:
                ph, em = rng.uniform(200, 2000), []
                cx, cy = float(np.rint(cx)), float(np.rint(cy))
                mu[int(cy), int(cx)] += ph
            if kind == "defocus":
                mu += expected_image(shape, [cx], [cy], [ph], 0.0, sigma)
            else:
                for x, y, p in em:
                    xs.append(x), ys.append(y), ns.append(p)
            sites.append((f, cx, cy, kind, ph, sigma, sep))
        if xs:
            mu += expected_image(shape, np.array(xs), np.array(ys), np.array(ns), 0.0, psf_sigma)
        movie[f] = np.clip(np.rint(camera.to_adu(rng.poisson(mu))), 0, 65535)
    sites = pd.DataFrame(sites, columns=["frame", "x", "y", "kind", "photons", "sigma", "separation"])
    sites["kind"] = pd.Categorical(sites["kind"], categories=KINDS)
    locs = core.localize(movie, camera=camera, psf_sigma=psf_sigma, model="elliptical", threshold=6.0,
                         threshold_mode="absolute", threads=None)
    from scipy.spatial import cKDTree
    big = 4.0 * max(shape)  # frames stacked far apart along y: one tree for all frames
    tree = cKDTree(np.c_[sites["x"], sites["y"] + sites["frame"] * big])
    dist, idx = tree.query(np.c_[locs["x"], locs["y"] + locs["frame"] * big])
    kind = np.where(dist < 3, sites["kind"].astype(str).to_numpy()[np.minimum(idx, len(sites) - 1)], "spurious")
    locs["kind"] = pd.Categorical(kind, categories=KINDS + ("spurious",))
    locs["truth"] = kind == "good"
    return QualitySet(movie, camera, sites, locs, extract_patches(movie, locs, size, camera=camera))
