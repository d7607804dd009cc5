"""LocalizeOptions: every setting of :func:`spotfit.localize`, validated once, in one frozen object.

The same object goes to the C++ core (:meth:`LocalizeOptions.to_core`), to Dask tasks, to the command line
(which builds its options from :func:`fields`) and into ``locs.attrs["spotfit"]["parameters"]``.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Optional, Union

from . import _spotcore
from ._shared import threads as _threads
from ._shared import validate
from .astigmatism import AstigmaticCalibration
from .registry import BOX_BORDERS, ESTIMATORS, MODELS, THRESHOLD_MODES


def _option(default, help: str, unit: str = "", result: bool = True):
    """A field with its help text and unit (for the CLI and viewers); ``result=False``: does not change rows."""
    return field(default=default, metadata={"help": help, "unit": unit, "result": result})


@dataclass(frozen=True)
class LocalizeOptions:
    """Settings of detection and fit. Invalid values raise ValueError/TypeError naming the setting.

    ``LocalizeOptions(box=9).replace(estimator="lsq")`` gives a changed copy.
    """

    psf_sigma: float = _option(1.3, "PSF standard deviation: start value of the fit, fixed with "
                               "model=fixed_sigma", "px")
    box: Optional[int] = _option(None, "odd side of the square fit box; border spots get a clipped box (default "
                                 "7; 9 with max_emitters > 1; model=astigmatic: the calibration's default_box())",
                                 "px")
    threshold: float = _option(1.5, "detection threshold on the wavelet plane W2: a multiple of std(W1) "
                               "(threshold_mode=std) or photons (absolute)")
    threshold_mode: str = _option("std", f"how threshold is read: {' or '.join(THRESHOLD_MODES)}")
    min_distance: float = _option(0.0, "drop maxima closer than this to a stronger one (<= 1 keeps all)", "px")
    border: int = _option(0, "ignore peaks closer than this to the image edge", "px")
    estimator: str = _option("mle", f"fit estimator: {' or '.join(ESTIMATORS)} (Poisson maximum likelihood, "
                             "least squares)")
    model: str = _option("gauss", f"PSF model: {', '.join(MODELS)}")
    max_iterations: int = _option(30, "Levenberg-Marquardt iterations at most")
    tolerance: float = _option(1e-3, "stop when a step moves x, y, sigma by less than this (px) and photons, "
                               "background by less than this relative")
    mask_neighbours: bool = _option(True, "fit each box without the pixels nearer to another detected spot")
    classify_threshold: float = _option(0.5, "P(good) at or above which a classified spot is good")
    drop_bad: bool = _option(False, "keep only good spots, screened before the fit (needs a classifier)")
    max_emitters: int = _option(1, "emitters fitted jointly per region, 1..10; above 1, crowded spots are fitted "
                                "together with model selection and residual re-detection (fixed sigma = psf_sigma)")
    threads: Optional[int] = _option(None, "OpenMP threads (default: all cores or OMP_NUM_THREADS); results "
                                     "do not depend on it", result=False)
    chunk_frames: int = _option(256, "frames read and processed at a time (memory ~ this x frame size)",
                                result=False)
    calibration: Optional[Union[AstigmaticCalibration, str]] = _option(
        None, "model=astigmatic: the widths against z, an AstigmaticCalibration or its JSON file "
        "(spotfit.calibrate_astigmatism)")

    def __post_init__(self):
        set_ = object.__setattr__.__get__(self)
        set_("psf_sigma", validate.positive("psf_sigma", self.psf_sigma))
        if self.box is not None:
            set_("box", validate.odd_box(self.box))
        set_("threshold", validate.positive("threshold", self.threshold))  # <= 0 would make every pixel a spot
        validate.choice("threshold_mode", self.threshold_mode, THRESHOLD_MODES)
        set_("min_distance", validate.positive("min_distance", self.min_distance, allow_zero=True))
        set_("border", validate.integer("border", self.border, 0))
        validate.choice("estimator", self.estimator, ESTIMATORS)
        validate.choice("model", self.model, MODELS)
        set_("max_iterations", validate.integer("max_iterations", self.max_iterations, 1))
        set_("tolerance", validate.positive("tolerance", self.tolerance))
        set_("mask_neighbours", validate.boolean("mask_neighbours", self.mask_neighbours))
        threshold = validate.positive("classify_threshold", self.classify_threshold, allow_zero=True)
        if threshold > 1:
            raise ValueError(f"classify_threshold must be a probability in [0, 1], got {threshold}")
        set_("classify_threshold", threshold)
        set_("drop_bad", validate.boolean("drop_bad", self.drop_bad))
        set_("max_emitters", validate.integer("max_emitters", self.max_emitters, 1, int(_spotcore.MAX_EMITTERS)))
        _threads.threads(self.threads)
        set_("chunk_frames", validate.integer("chunk_frames", self.chunk_frames, 1))
        cal = self.calibration
        if cal is not None and not isinstance(cal, AstigmaticCalibration):
            if not isinstance(cal, (str, os.PathLike)):
                raise TypeError("calibration must be a spotfit.AstigmaticCalibration or the path of its JSON file, "
                                f"got {type(cal).__name__}")
            set_("calibration", AstigmaticCalibration.load(cal))
        if self.model == "astigmatic" and self.calibration is None:
            raise ValueError("model='astigmatic' needs calibration= (spotfit.calibrate_astigmatism, "
                             "AstigmaticCalibration.load or .from_picasso)")

    @property
    def fit_box(self) -> int:
        """The box side used: ``box``, or for ``box=None`` the default for these settings. Several emitters
        need more pixels for the likelihood-ratio test (close pairs: docs/crowded.md); an astigmatic PSF
        needs room for its most defocused width."""
        if self.box is not None:
            return self.box
        if self.model == "astigmatic" and self.calibration is not None:
            return self.calibration.default_box()
        return 9 if self.max_emitters > 1 else 7

    def replace(self, **changes) -> "LocalizeOptions":
        """A copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_keywords(cls, options: Optional["LocalizeOptions"] = None, **keywords) -> "LocalizeOptions":
        """``options`` (default: the defaults) with ``keywords`` applied; unknown names are a TypeError."""
        base = cls() if options is None else options
        if not isinstance(base, cls):
            raise TypeError(f"options must be a spotfit.LocalizeOptions, got {type(base).__name__}")
        unknown = sorted(set(keywords) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise TypeError(f"unexpected keyword argument(s) {unknown}: unknown localize option(s); "
                            f"the options are {names()}")
        return base.replace(**keywords) if keywords else base

    def parameters(self) -> dict:
        """The settings that determine the rows (``locs.attrs["spotfit"]["parameters"]``)."""
        skip = {"classify_threshold", "drop_bad"}   # recorded with the classifier, when there is one
        if self.calibration is None:
            skip.add("calibration")                  # 2D: the parameters of spotfit < 0.3
        if self.max_emitters == 1:
            skip.add("max_emitters")                 # single-emitter: the parameters as before
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.metadata["result"] and f.name not in skip}
        out["box"] = self.fit_box
        if "calibration" in out:
            out["calibration"] = self.calibration.as_dict()
        return out

    def to_core(self, *, box: Optional[int] = None, mask_neighbours: Optional[bool] = None,
                screen_size: int = 0) -> "_spotcore.LocalizeOptions":
        """The C++ ``spotcore::LocalizeOptions``; ``screen_size`` > 0 also cuts edge-filled, unmasked
        boxes of that side for a classifier in the same pass."""
        core = _spotcore.LocalizeOptions()
        core.detect.mode = THRESHOLD_MODES[self.threshold_mode]
        core.detect.threshold = self.threshold
        core.detect.min_distance = self.min_distance
        core.detect.border = self.border
        core.fit = self.fit_options(box)
        core.mask_neighbours = self.mask_neighbours if mask_neighbours is None else bool(mask_neighbours)
        if screen_size:
            core.screen.size = int(screen_size)
            core.screen.border = BOX_BORDERS["edge"]
            core.screen.mask_neighbours = False
        return core

    def fit_options(self, box: Optional[int] = None) -> "_spotcore.FitOptions":
        """The C++ ``spotcore::FitOptions``."""
        fit = _spotcore.FitOptions()
        fit.model = MODELS[self.model]
        fit.estimator = ESTIMATORS[self.estimator]
        fit.box = self.fit_box if box is None else int(box)
        fit.psf_sigma = self.psf_sigma
        fit.max_iterations = self.max_iterations
        fit.tolerance = self.tolerance
        fit.threads = _threads.threads(self.threads)
        if self.calibration is not None:
            fit.astigmatism = self.calibration.to_core()
        return fit


    def multi_options(self) -> "_spotcore.MultiOptions":
        """The C++ ``spotcore::MultiOptions`` (defaults of the core but max_emitters)."""
        multi = _spotcore.MultiOptions()
        multi.max_emitters = self.max_emitters
        return multi


def names() -> list:
    """Names of every option, in order."""
    return [f.name for f in dataclasses.fields(LocalizeOptions)]


def fields() -> list:
    """``(name, default, help, unit)`` of every option, in order (for the command line and viewers)."""
    return [(f.name, f.default, f.metadata["help"], f.metadata["unit"]) for f in dataclasses.fields(LocalizeOptions)]
