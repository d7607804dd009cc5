"""Typed stub of spotfit._spotcore, the private pybind11 bindings of the spotcore C++ core.

Arrays are numpy arrays. ``stack`` is a 3D (frames, rows, cols) array of uint8, uint16, int16, uint32, int32,
float32 or float64 in native byte order, with any strides. ``camera`` is any object with the attributes of
``_CameraLike`` (a Protocol of this stub only). Invalid values raise ValueError, wrong types TypeError;
every call releases the GIL around the core.

The FitRecord structured dtype (one row per fit) has the fields, in this order:
frame i8, peak_row i4, peak_col i4, x f4, y f4, photons f4, background f4, sigma_x f4, sigma_y f4,
uncertainty_x f4, uncertainty_y f4, uncertainty_photons f4, uncertainty_background f4,
uncertainty_sigma_x f4, uncertainty_sigma_y f4, loglik f4, chi2 f4, iterations i4, status i4 (FitStatus),
z f4, uncertainty_z f4 (nm; astigmatic model, NaN otherwise).
"""
from typing import Any, ClassVar, Dict, Optional, Protocol, Sequence, Tuple, Union

import numpy as np
import numpy.typing as npt

_Stack = npt.NDArray[Any]
_FitRecords = npt.NDArray[np.void]
_F32 = npt.NDArray[np.float32]
_Index = Union[npt.NDArray[np.integer[Any]], Sequence[int]]
_Map = Optional[npt.ArrayLike]

has_openmp: bool
"""Whether the core was built with OpenMP."""
max_threads: int
"""Upper bound on the threads any call uses (spotcore::kMaxThreads)."""

class _CameraLike(Protocol):
    """What a camera argument must provide (not a class of the module; any object with these attributes)."""

    baseline: float
    sensitivity: float
    em_gain: float
    qe: float
    offset_map: _Map
    gain_map: _Map
    variance_map: _Map

class _Enum:
    def __init__(self, value: int) -> None: ...
    def __int__(self) -> int: ...
    def __index__(self) -> int: ...
    def __eq__(self, other: object) -> bool: ...
    def __ne__(self, other: object) -> bool: ...
    def __hash__(self) -> int: ...
    def __getstate__(self) -> int: ...
    def __setstate__(self, state: int) -> None: ...
    @property
    def name(self) -> str:
        """Name of the value."""
    @property
    def value(self) -> int:
        """Integer code of the value."""

class FitStatus(_Enum):
    """Outcome of one fit (the FitRecord status field)."""

    converged: ClassVar["FitStatus"]
    max_iterations: ClassVar["FitStatus"]
    singular: ClassVar["FitStatus"]
    out_of_box: ClassVar["FitStatus"]
    not_fitted: ClassVar["FitStatus"]
    unreliable: ClassVar["FitStatus"]
    z_out_of_range: ClassVar["FitStatus"]
    __members__: ClassVar[dict[str, "FitStatus"]]

class Model(_Enum):
    """PSF model: fixed_sigma (x, y, N, b), gauss (+ sigma), elliptical (+ sigma_x, sigma_y), astigmatic (+ z)."""

    fixed_sigma: ClassVar["Model"]
    gauss: ClassVar["Model"]
    elliptical: ClassVar["Model"]
    astigmatic: ClassVar["Model"]
    __members__: ClassVar[dict[str, "Model"]]

class Estimator(_Enum):
    """Fit estimator: unweighted least squares or Poisson maximum likelihood."""

    lsq: ClassVar["Estimator"]
    mle: ClassVar["Estimator"]
    __members__: ClassVar[dict[str, "Estimator"]]

class ThresholdMode(_Enum):
    """Detection threshold: factor * std(W1) per frame, or absolute photons of the filtered image."""

    std_w1: ClassVar["ThresholdMode"]
    absolute: ClassVar["ThresholdMode"]
    __members__: ClassVar[dict[str, "ThresholdMode"]]

class BoxBorder(_Enum):
    """Box pixels outside the image: NaN, or the value of the nearest edge pixel."""

    nan: ClassVar["BoxBorder"]
    edge: ClassVar["BoxBorder"]
    __members__: ClassVar[dict[str, "BoxBorder"]]

class DetectOptions:
    """Candidate detection (spotcore::DetectOptions); picklable, compared field by field."""

    mode: ThresholdMode
    threshold: float
    min_distance: float
    border: int
    def __init__(self) -> None: ...
    def __eq__(self, other: object) -> bool: ...
    def __getstate__(self) -> tuple[Any, ...]: ...
    def __setstate__(self, state: tuple[Any, ...]) -> None: ...

class Astigmatism:
    """Widths against z (spotcore::Astigmatism): s(z) = s0 sqrt(1 + u^2 + a u^3 + b u^4), u = (z - c) / d;
    s0 in px, c, d, z_min, z_max in nm."""

    s0_x: float
    c_x: float
    d_x: float
    a_x: float
    b_x: float
    s0_y: float
    c_y: float
    d_y: float
    a_y: float
    b_y: float
    z_min: float
    z_max: float
    def __init__(self) -> None: ...
    def __eq__(self, other: object) -> bool: ...
    def __getstate__(self) -> tuple[Any, ...]: ...
    def __setstate__(self, state: tuple[Any, ...]) -> None: ...

class FitOptions:
    """Levenberg-Marquardt fit (spotcore::FitOptions); box is odd 3..31, threads 0 = OpenMP default."""

    model: Model
    estimator: Estimator
    box: int
    psf_sigma: float
    max_iterations: int
    tolerance: float
    threads: int
    astigmatism: Astigmatism
    def __init__(self) -> None: ...
    def __eq__(self, other: object) -> bool: ...
    def __getstate__(self) -> tuple[Any, ...]: ...
    def __setstate__(self, state: tuple[Any, ...]) -> None: ...

class BoxOptions:
    """Boxes cut around centres (spotcore::BoxOptions); size odd 1..63 (0 = none as LocalizeOptions.screen)."""

    size: int
    border: BoxBorder
    mask_neighbours: bool
    def __init__(self) -> None: ...
    def __eq__(self, other: object) -> bool: ...
    def __getstate__(self) -> tuple[Any, ...]: ...
    def __setstate__(self, state: tuple[Any, ...]) -> None: ...

class LocalizeOptions:
    """Options of localize/detect_boxes; nested fields are live references (opt.fit.box = 9 works)."""

    detect: DetectOptions
    fit: FitOptions
    mask_neighbours: bool
    screen: BoxOptions
    def __init__(self) -> None: ...
    def __eq__(self, other: object) -> bool: ...
    def __getstate__(self) -> tuple[Any, ...]: ...
    def __setstate__(self, state: tuple[Any, ...]) -> None: ...

def version() -> str:
    """Version of the core (meson.build's project version)."""

def wavelet_filter(image: npt.ArrayLike) -> Tuple[_F32, _F32]:
    """Wavelet planes (W1, W2) of a 2D float32 image."""

def find_local_maxima(
    filtered: npt.ArrayLike, threshold: float, min_distance: float = 0.0, border: int = 0
) -> Tuple[npt.NDArray[np.int32], _F32]:
    """Local maxima above threshold: ((n, 2) int32 [row, col], (n,) float32 values), raster order."""

def fit_boxes(boxes: npt.ArrayLike, variance: Optional[npt.ArrayLike], options: FitOptions) -> _FitRecords:
    """Fit (n, box, box) float32 photon boxes (box side from the array, options.box ignored); box coordinates."""

def localize(stack: _Stack, camera: _CameraLike, options: LocalizeOptions, first_frame: int) -> _FitRecords:
    """Fused convert/filter/detect/fit; FitRecord rows in image pixels, frame = first_frame + index."""

MAX_EMITTERS: int

class MultiOptions:
    """Multi-emitter fitting: model selection (LR test) and residual re-detection."""

    max_emitters: int
    p_value: float
    cycles: int
    redetect_factor: float
    merge_distance: float
    def __init__(self) -> None: ...

def localize_multi(
    stack: _Stack, camera: _CameraLike, options: LocalizeOptions, multi: MultiOptions, first_frame: int
) -> Tuple[_FitRecords, npt.NDArray[np.int64], npt.NDArray[np.int32]]:
    """localize with multi-emitter fits: (FitRecord rows, group, n_in_group)."""

class StartsOptions:
    """Joint fit of a frame's given starts: Levenberg-Marquardt settings, the prior around each start."""

    max_iterations: int
    tolerance: float
    window: int
    cg_iterations: int
    warmup: int
    max_shift: float
    prior_sigma: float
    crlb_radius: float
    min_photons: float
    def __init__(self) -> None: ...

def fit_frame(
    frame: npt.ArrayLike, psf_sigma: float, x: npt.ArrayLike, y: npt.ArrayLike, options: StartsOptions
) -> Dict[str, Any]:
    """Joint fit of one frame's starts (photons): emitters (n, 7: x, y, photons, CRLB x, y, photons, background),
    background, chi2, iterations, converged."""

def fit_starts(
    stack: _Stack,
    camera: _CameraLike,
    options: LocalizeOptions,
    frame: npt.ArrayLike,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    starts: StartsOptions,
    first_frame: int,
) -> Tuple[_FitRecords, npt.NDArray[np.int64], npt.NDArray[np.int32]]:
    """Joint fit of every frame's given starts (absolute frame, x, y in pixels): (FitRecord rows, group, n_in_group)."""

def fit_region(
    region: npt.ArrayLike, offset: Optional[npt.ArrayLike], fit: FitOptions, multi: MultiOptions, starts: npt.ArrayLike
) -> Dict[str, Any]:
    """Model selection in one square region from (k, 3) starts [x, y, photons]."""

def detect_boxes(
    stack: _Stack, camera: _CameraLike, options: LocalizeOptions, first_frame: int
) -> Tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.int32], _F32, Optional[_F32], Optional[_F32]]:
    """(frame, peak_row, peak_col, boxes (n, box, box), variance (n, box, box) or None, screen (n, s, s) or None)."""

def cut_boxes(
    stack: _Stack,
    camera: _CameraLike,
    frames: _Index,
    rows: _Index,
    cols: _Index,
    options: BoxOptions,
    threads: int,
) -> Tuple[_F32, Optional[_F32], npt.NDArray[np.bool_]]:
    """(boxes (n, s, s) photons, variance (n, s, s) or None without a variance map, inside (n, s, s) bool)."""

def to_photons(stack: _Stack, camera: _CameraLike, threads: int) -> _F32:
    """Every frame in photons: (frames, rows, cols) float32, as detection converts."""

class LinkOptions:
    """Options of link (spotcore::LinkOptions): radius px > 0, gate in standard deviations (0 = none),
    max_dark_frames >= 0, threads >= 0 (0: OpenMP default; the output does not depend on it)."""

    radius: float
    gate: float
    max_dark_frames: int
    threads: int
    def __init__(self) -> None: ...

def link(
    frame: npt.NDArray[np.int64],
    x: npt.NDArray[np.float64],
    y: npt.NDArray[np.float64],
    sd_x: Optional[npt.NDArray[np.float64]],
    sd_y: Optional[npt.NDArray[np.float64]],
    options: LinkOptions,
    events: bool = ...,
    labels: bool = ...,
    sum_of: Sequence[npt.NDArray[np.float64]] = ...,
) -> Tuple[Optional[npt.NDArray[np.int64]], int, Optional[Dict[str, Any]]]:
    """(event (n,) int64 per frame-sorted row with labels=True else None, n_events, with events=True the
    per-event arrays first_frame, last_frame, count, x, y, sd_x, sd_y and sums (a list: each sum_of column
    summed per event), else None). sd_x, sd_y: uncertainties (px) or None."""

class DriftGrid:
    """Bin (i, j) of a drift density image is centred on (x0 + j * bin, y0 + i * bin), px."""
    x0: float
    y0: float
    bin: float
    nx: int
    ny: int
    def __init__(self) -> None: ...

class DriftTrackOptions:
    radius: float
    coarse_step: float
    step: float
    iterations: int
    drop: float
    def __init__(self) -> None: ...

max_drift_bins: int

def drift_histogram(
    x: npt.ArrayLike, y: npt.ArrayLike, weights: Optional[npt.ArrayLike], grid: DriftGrid
) -> _F32:
    """Cloud-in-cell histogram (grid.ny, grid.nx) float32 of points x, y (px)."""

def drift_stencil(
    image: npt.ArrayLike, grid: DriftGrid, x: npt.ArrayLike, y: npt.ArrayLike, starts: _Index, ends: _Index,
    centres: npt.ArrayLike, step: float, threads: int,
) -> npt.NDArray[np.float64]:
    """(segments, 13): 3x3 stencil of scores around each centre, sums of gx^2, gx*gy, gy^2, points inside."""

def drift_track(
    image: npt.ArrayLike, grid: DriftGrid, x: npt.ArrayLike, y: npt.ArrayLike, starts: _Index, ends: _Index,
    options: DriftTrackOptions,
) -> Tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """AIM round 1: (segments, 2) shifts onto the reference image, and the score per point of each."""

def drift_rts(
    t: npt.ArrayLike, m: npt.ArrayLike, r: npt.ArrayLike, breaks: npt.ArrayLike, q: float
) -> Tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Random-walk RTS smoother: (smoothed means, variances); breaks[k] != 0 uncouples k and k + 1."""

class DriftDensity:
    """A sparse density image of AIM round 2 (16x16-bin tiles where points are)."""
    @property
    def grid(self) -> DriftGrid: ...
    def stencil(
        self, x: npt.ArrayLike, y: npt.ArrayLike, starts: _Index, ends: _Index, centres: npt.ArrayLike, threads: int
    ) -> npt.NDArray[np.float64]:
        """drift_stencil on this density with a step of one bin: (segments, 13)."""
