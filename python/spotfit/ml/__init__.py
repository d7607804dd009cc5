"""Machine learning on spots: quality rules and a classifier of spot images, learned centroid regressors,
and real-time localization with them.

- :func:`label_spots`, :data:`DEFAULT_RULES` (``rules``): good/bad from the fit parameters.
- :class:`SpotClassifier` (``classifier``, features in ``features``), :func:`quality_report`,
  :func:`simulate_quality_set` (``quality``): train and judge a classifier (``pip install spotfit[ml]``).
- :func:`extract_patches` (``patches``), :func:`save_dataset` / :func:`load_dataset` (``datasets``).
- :class:`CrowdedDetector`, :func:`crowded_training_set` (``crowded``): a network that proposes emitters in
  crowded frames for ``spotfit.localize(..., detector=)`` (``pip install spotfit[tf]``).
- :class:`CentroidRegressor`, :func:`training_set`, :func:`normalize` (``regress``; TensorFlow kinds need
  ``pip install spotfit[tf]``), :class:`Localizer`, :func:`localize_stream` (``realtime``).

This layer uses the API (:mod:`spotfit.core`) and the file readers (:mod:`spotfit.io`); neither imports it.
"""
import os

from .crowded import DEFAULT_RANGES as CROWDED_RANGES, CrowdedDetector, crowded_training_set
from .classifier import MODEL_FORMAT, ModelVersionError, SpotClassifier
from .datasets import SpotDataset, load_dataset, save_dataset
from .features import PatchFeatures
from .patches import extract_patches
from .quality import QualitySet, format_report, quality_report, simulate_quality_set
from .realtime import Localizer, localize_stream
from .regress import DEFAULT_MODELS, CentroidRegressor, as_regressor, fill_outside, frame_patches, normalize, training_set
from .rules import DEFAULT_RULES, chi2_limit, label_spots



def as_classifier(classifier):
    """A classifier object from a :class:`SpotClassifier`, a path to a saved one, or any object with ``size``
    and ``predict_proba`` (the protocol :func:`spotfit.core.localize` uses)."""
    if isinstance(classifier, (str, os.PathLike)):
        return SpotClassifier.load(classifier)
    if isinstance(classifier, SpotClassifier):
        classifier._check_fitted()
        return classifier
    if hasattr(classifier, "size") and hasattr(classifier, "predict_proba"):
        return classifier
    raise TypeError("classifier must be a spotfit.SpotClassifier or a path to a saved one, got "
                    f"{type(classifier).__name__}")


def as_detector(detector):
    """A detector object from ``"crowded"`` (the packaged :class:`CrowdedDetector`), a path to a saved one, or
    any object with ``candidates`` (the protocol :func:`spotfit.core.localize` uses)."""
    if isinstance(detector, str) and detector == "crowded":
        return CrowdedDetector.default()
    if isinstance(detector, (str, os.PathLike)):
        if not os.path.exists(detector):
            raise ValueError(f"detector must be 'crowded' or a saved CrowdedDetector (.npz); {detector!r} does "
                             "not exist")
        return CrowdedDetector.load(detector)
    if callable(getattr(detector, "candidates", None)):
        return detector
    raise TypeError("detector must be 'crowded', a spotfit.ml.CrowdedDetector or a path to a saved one, got "
                    f"{type(detector).__name__}")


def resolve_models(classifier=None, estimator=None):
    """``(classifier, estimator)`` with names and paths turned into objects: a saved classifier is loaded; an
    estimator that is not a fit estimator name (``"mle"``, ``"lsq"``) becomes a regressor (:func:`as_regressor`)."""
    from ..registry import ESTIMATORS
    if classifier is not None:
        classifier = as_classifier(classifier)
    if isinstance(estimator, str) and estimator not in ESTIMATORS and estimator not in DEFAULT_MODELS \
            and not estimator.endswith(".npz"):
        raise ValueError(f"estimator must be one of {sorted(ESTIMATORS) + sorted(DEFAULT_MODELS)}, a "
                         f"CentroidRegressor or a saved regressor (.npz), got {estimator!r}")
    if estimator is not None and not (isinstance(estimator, str) and estimator in ESTIMATORS):
        estimator = as_regressor(estimator)
    return classifier, estimator


__all__ = ["as_classifier", "as_detector", "resolve_models", "CentroidRegressor", "CROWDED_RANGES", "CrowdedDetector",
           "crowded_training_set", "DEFAULT_RULES", "chi2_limit", "Localizer", "MODEL_FORMAT", "ModelVersionError", "PatchFeatures",
           "QualitySet", "SpotClassifier", "SpotDataset", "as_regressor", "extract_patches", "fill_outside",
           "format_report", "frame_patches", "label_spots", "load_dataset", "localize_stream", "normalize",
           "quality_report", "save_dataset", "simulate_quality_set", "training_set"]
