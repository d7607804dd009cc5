"""Good/bad classifier of spot images (scikit-learn, ``pip install spotfit[ml]``), saved and loaded safely.

Workflow: localize a movie, label each spot from its fit with :func:`spotfit.ml.label_spots`, cut the images
around the spots with :func:`spotfit.ml.extract_patches`, train a :class:`SpotClassifier` on (patches, labels);
it then screens new data from the images alone (``spotfit.localize(..., classifier=clf)``).
"""
from __future__ import annotations

import hashlib
import io as _io
import json
import warnings
import zipfile
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd

from .._shared.optional import need
from .._shared.threads import usable_cores
from .._shared.version import VERSION
from .._shared.warnings import FallbackWarning
from ..camera import Camera
from .features import PatchFeatures
from .patches import extract_patches
from .quality import quality_report


class ModelVersionError(ValueError):
    """A saved classifier was written by another spotfit or scikit-learn version."""


MODEL_FORMAT = "spotfit-spot-classifier"
MODEL_FORMAT_VERSION = 1
#: Fewest spots of each class fit() accepts: the 5-fold stratified cross-validation of select_model needs one
#: per fold (a classifier trained on fewer has nothing to learn the class from).
MIN_PER_CLASS = 5


def check_labels(labels, n: Optional[int] = None, least: int = MIN_PER_CLASS) -> np.ndarray:
    """``labels`` as n booleans (True = good), or ValueError when a class has fewer than ``least``."""
    y = np.asarray(labels)
    n = len(y) if n is None else n
    if y.shape != (n,) or y.dtype.kind not in "bui":
        raise ValueError(f"labels must be {n} booleans (True = good), got shape {y.shape} dtype {y.dtype}")
    y = y.astype(bool)
    n_good = int(y.sum())
    if y.all() or not y.any() or min(n_good, n - n_good) < least:
        raise ValueError(f"labels must contain both good and bad spots, at least {least} of each: got "
                         f"{n_good} good and {n - n_good} bad (loosen the labelling rules or label more spots)")
    return y


# spotfit types a saved pipeline may name (files of spotfit < 0.2 name the old module path).
_TRUSTED = [f"{PatchFeatures.__module__}.PatchFeatures", "spotfit.classify.PatchFeatures"]


class SpotClassifier:
    """Good/bad classifier of spot images: a scikit-learn Pipeline (features, scaling, model).

    Parameters
    ----------
    model : {"hgb", "logistic", "svm-poly"}
        Gradient-boosted trees (HistGradientBoostingClassifier, default), logistic regression, or
        a polynomial-kernel SVM (``degree=3, coef0=1``; probabilities by sigmoid calibration).
    features : {"shape", "moments", "raw"}
        See :class:`PatchFeatures`; "shape" (14 numbers per spot) is the default.
    random_state : int
    **params
        Passed to the model (e.g. ``C=10`` for logistic/svm-poly, ``max_iter=300`` for hgb).
    """

    MODELS = ("hgb", "logistic", "svm-poly")
    #: patches per block in :meth:`predict_proba` (features and model work stay in the CPU caches)
    CHUNK = 4096

    def __init__(self, model: str = "hgb", *, features: str = "shape", random_state: Optional[int] = 0, **params):
        if model not in self.MODELS:
            raise ValueError(f"model must be one of {self.MODELS}, got {model!r}")
        if features not in PatchFeatures.KINDS:
            raise ValueError(f"features must be one of {PatchFeatures.KINDS}, got {features!r}")
        self.model, self.features, self.random_state, self.params = model, features, random_state, params
        self.pipeline = self._build()
        self.size: Optional[int] = None
        self.info: dict = {}
        self._fast = None

    def _build(self):
        need("sklearn", "the spot classifier")
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
            # 50 trees of depth 3 at rate 0.2: as accurate as scikit-learn's default 100 trees of 31 leaves on
            # the 14 shape numbers (bench/bench_classify.py), and ~3x faster to evaluate
            est = HistGradientBoostingClassifier(**dict({"random_state": self.random_state, "max_iter": 50,
                                                         "max_depth": 3, "learning_rate": 0.2}, **self.params))
        return Pipeline([("features", PatchFeatures(self.features)), ("scale", StandardScaler()), ("model", est)])

    def __repr__(self):
        state = f"trained on {self.info.get('n_train')} {self.size}x{self.size} patches" if self.size else "untrained"
        return f"SpotClassifier(model={self.model!r}, features={self.features!r}; {state})"

    def _X(self, patches, check: bool = True) -> np.ndarray:
        """(n, size, size) -> (n, size²); float32 and checked for NaN unless ``check=False``."""
        X = np.asarray(patches)
        if X.ndim != 3 or X.shape[1] != X.shape[2] or X.shape[1] < 3 or X.dtype.kind not in "biuf":
            raise ValueError(f"patches must be numbers of shape (n, size, size) with size >= 3, "
                             f"got {X.shape} {X.dtype}")
        if self.size is not None and X.shape[1] != self.size:
            raise ValueError(f"this classifier was trained on {self.size}x{self.size} patches, got "
                             f"{X.shape[1]}x{X.shape[2]}")
        X = X.reshape(len(X), X.shape[1] * X.shape[2])
        return self._finite(X) if check else X

    @staticmethod
    def _finite(X) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float32)
        if not np.isfinite(X).all():
            raise ValueError("patches contain NaN or inf (use extract_patches(border='pad'))")
        return X

    @staticmethod
    def _y(labels, n, least: int = 1) -> np.ndarray:
        return check_labels(labels, n, least)

    def fit(self, patches, labels) -> "SpotClassifier":
        """Train on patches (n, size, size) photons and labels (n,) bool (True = good)."""
        X = self._X(patches)
        y = self._y(labels, len(X), MIN_PER_CLASS)
        self.pipeline.fit(X, y)
        self._fast = None
        self.size = int(np.asarray(patches).shape[1])
        self.info = {"n_train": int(len(y)), "n_good": int(y.sum())}
        return self

    def __getstate__(self):  # the fast evaluator holds closures: rebuilt after unpickling
        return dict(self.__dict__, _fast=None)

    def _check_fitted(self):
        if self.size is None:
            raise RuntimeError("this SpotClassifier is not trained: call fit() or SpotClassifier.load()")

    def predict_proba(self, patches, *, threads: Optional[int] = None) -> np.ndarray:
        """Probability (n,) float64 that each spot is good.

        Works through blocks of :attr:`CHUNK` patches on ``threads`` Python threads (default: the
        cores this process may use), each with one OpenMP/BLAS thread: on a busy machine, the spinning
        OpenMP threads of scikit-learn's tree predictor made hgb slower, threads over blocks do not.
        logistic and svm-poly skip scikit-learn's per-call machinery: the scaler is folded into the
        weights (logistic: one matrix-vector product; svm-poly: the kernel against all support
        vectors as one matrix product); hgb runs the pipeline per block. The result equals
        ``self.pipeline.predict_proba`` to float32 rounding (checked on synthetic spots when the
        fast form is built; the pipeline is used, with a RuntimeWarning, if it differs). BLAS is
        held at one thread, process-wide, during the call.
        """
        self._check_fitted()
        if threads is None:
            threads = usable_cores()
        if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
            raise ValueError(f"threads must be None or an integer >= 1, got {threads!r}")
        threads = int(threads)
        X = self._X(patches, check=False)
        out = np.empty(len(X))
        screen, ctl = self._screen(), _controller()
        step = self.CHUNK

        def work(starts):
            with ctl.limit(limits=1, user_api="openmp"):  # per calling thread (OpenMP ICV)
                for i in starts:
                    out[i:i + step] = screen(self._finite(X[i:i + step]))

        blocks = range(0, len(X), step)
        with ctl.limit(limits=1, user_api="blas"):  # process-wide: set once, here
            if threads == 1 or len(blocks) < 2:
                work(blocks)
            else:
                from concurrent.futures import ThreadPoolExecutor
                with ThreadPoolExecutor(min(threads, len(blocks))) as pool:
                    list(pool.map(work, [blocks[k::threads] for k in range(threads)]))
        return out

    def _screen(self):
        """Function (m, size²) float32 photons -> (m,) P(good); built once per fitted pipeline."""
        if getattr(self, "_fast", None) is None or self._fast[0] is not self.pipeline:
            ref, fast = self._compile()
            if fast is not ref:
                probe = _probe_patches(self.size).reshape(-1, self.size * self.size)
                diff = float(np.max(np.abs(fast(probe) - ref(probe))))
                if not diff <= 1e-5:  # a scikit-learn whose fitted attributes mean something else
                    warnings.warn(f"fast {self.model} evaluation differs from scikit-learn's by {diff:.2g}: "
                                  "using the scikit-learn pipeline", FallbackWarning, stacklevel=3)
                    fast = ref
            _controller(refresh=True)  # the model's OpenMP runtime is loaded by now
            self._fast = (self.pipeline, fast)
        return self._fast[1]

    def _compile(self):
        """(reference, fast) functions of float32 patches; fast is reference where none is known."""
        from scipy.special import expit
        feats, scale, est = (self.pipeline.named_steps[k] for k in ("features", "scale", "model"))
        pos = list(self.pipeline.classes_).index(True)

        def ref(X):
            return est.predict_proba(scale.transform(feats.transform(X)))[:, pos]

        if pos != 1 or self.model == "hgb":
            return ref, ref
        d = est.n_features_in_
        mean = scale.mean_ if scale.with_mean else np.zeros(d)
        sd = scale.scale_ if scale.with_std else np.ones(d)
        if self.model == "logistic":  # P = expit(((f - mean) / sd) . coef + b)
            w, b = est.coef_[0] / sd, est.intercept_[0] - np.dot(mean / sd, est.coef_[0])
            return ref, lambda X: expit(feats.transform(X) @ w + b)
        cal = est.calibrated_classifiers_
        svc = cal[0].estimator
        if len(cal) != 1 or svc.kernel != "poly" or svc.dual_coef_.shape[0] != 1 or int(svc.degree) < 1:
            return ref, ref
        # decision = sum_i dual_i (gamma z.s_i + coef0)^degree + b with z = (f - mean) / sd
        g, sv = svc._gamma, svc.support_vectors_
        A = np.ascontiguousarray((g * sv / sd).T)
        c = svc.coef0 - g * sv @ (mean / sd)
        dual, b, deg, sig = svc.dual_coef_[0], svc.intercept_[0], int(svc.degree), cal[0].calibrators[0]

        def fast(X):
            k = feats.transform(X) @ A
            k += c
            kd = k * k if deg > 1 else k
            for _ in range(deg - 2):
                kd *= k
            return expit(-(sig.a_ * (kd @ dual + b) + sig.b_))  # Platt sigmoid as CalibratedClassifierCV

        return ref, fast

    def predict(self, patches, threshold: float = 0.5, *, threads: Optional[int] = None) -> np.ndarray:
        """Good (True) / bad (n,) bool: ``predict_proba(patches) >= threshold``."""
        return self.predict_proba(patches, threads=threads) >= threshold

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
    def select_model(cls, patches, labels, models=MODELS, *, features: str = "shape", cv: int = 5,
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
            y = cls._y(labels, len(X), MIN_PER_CLASS)
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
        try:
            import skops.io as sio
            payload, kind = sio.dumps(self.pipeline), "skops"
        except ImportError:
            import joblib
            buf = _io.BytesIO()
            joblib.dump(self.pipeline, buf)
            payload, kind = buf.getvalue(), "joblib"
        header = {"format": MODEL_FORMAT, "format_version": MODEL_FORMAT_VERSION, "spotfit": VERSION,
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
                    (("spotfit", "spotfit", VERSION), ("scikit-learn", "sklearn", sklearn.__version__))
                    if header.get(key) != have]
        if mismatch:
            msg = (f"{path} was saved by {' and '.join(mismatch)}; retrain it (`spotfit classify train`) or "
                   "install the versions it was saved with")
            if check_version:
                raise ModelVersionError(msg)
            warnings.warn(msg, stacklevel=2)
        if header["payload"] == "skops":
            sio = need("skops.io", "loading a classifier")
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
        clf.pipeline, clf._fast = pipeline, None
        return clf


_CONTROLLER = None


def _controller(refresh: bool = False):
    """threadpoolctl controller (a scikit-learn dependency) of the OpenMP/BLAS runtimes loaded so far."""
    global _CONTROLLER
    if _CONTROLLER is None or refresh:
        from threadpoolctl import ThreadpoolController
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER


def _probe_patches(size: int, n: int = 256) -> np.ndarray:
    """(n, size, size) float32 synthetic spots (Gaussian, hot pixel, flat) to check the fast path with."""
    rng = np.random.default_rng(0)
    h = size // 2
    yy, xx = np.mgrid[-h:h + 1, -h:h + 1]
    x0, y0, s = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n), rng.uniform(0.6, 3.0, n)
    g = np.exp(-((xx - x0[:, None, None]) ** 2 + (yy - y0[:, None, None]) ** 2) / (2 * s[:, None, None] ** 2))
    mu = g / g.sum(axis=(1, 2), keepdims=True) * np.exp(rng.uniform(np.log(50), np.log(8000), n))[:, None, None]
    mu[::8] = 0
    mu[::8, h, h] = rng.uniform(100, 2000, len(mu[::8]))
    return rng.poisson(mu + rng.uniform(2, 60, n)[:, None, None]).astype(np.float32)
