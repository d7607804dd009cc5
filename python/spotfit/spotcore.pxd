# Cython declarations of spotfit's C++ core (cpp/include/spotcore/, installed as spotfit/include/spotcore/).
#
#     from spotfit.spotcore cimport localize, ImageStack, Camera, LocalizeOptions, Localization, Result
#
# Build with include_dirs=spotfit.get_include(), link to libspotcore in spotfit.get_library_dir()
# (see docs/cython.md and examples/cython_downstream/). Every function here is plain C++: no Python
# objects, safe to call without the GIL. Functions never throw; they return a Result.
# Keep in step with the headers: the test tests/test_cython.py compiles a module against them.

from libc.stdint cimport int32_t, int64_t, uint8_t
from libcpp cimport bool
from libcpp.string cimport string
from libcpp.vector cimport vector


cdef extern from "spotcore/types.h" namespace "spotcore" nogil:
    enum class Status(int32_t):
        ok
        invalid_argument
        out_of_memory
        internal_error

    cppclass Result:
        Status status
        string message      # empty when ok
        bool ok()

    # Per-fit outcome (data, not an error); same codes as spotfit.FitStatus.
    enum class FitStatus(int32_t):
        converged
        max_iterations
        singular
        out_of_box
        not_fitted
        unreliable
        z_out_of_range

    const char* fit_status_name(FitStatus s)

    enum class Model(int32_t):
        fixed_sigma
        gauss
        elliptical
        astigmatic

    int model_parameter_count(Model m)

    enum class Estimator(int32_t):
        lsq
        mle

    enum class PixelType(int32_t):
        u8
        u16
        i16
        u32
        i32
        f32
        f64

    # (frames, rows, cols) pixels of any PixelType; strides in BYTES, may be negative.
    cppclass ImageStack:
        const void* data
        PixelType type
        int64_t frames, rows, cols
        int64_t stride_frame, stride_row, stride_col

    int64_t pixel_bytes(PixelType type)
    # The ImageStack of a C-contiguous (frames, rows, cols) buffer.
    ImageStack contiguous_stack(const void* data, PixelType type, int64_t frames, int64_t rows, int64_t cols)

    # photons = (ADU - baseline) * sensitivity / (em_gain * qe); sCMOS maps (rows*cols float32) when set.
    cppclass Camera:
        double baseline
        double sensitivity
        double em_gain
        double qe
        const float* offset_map
        const float* gain_map
        const float* variance_map


cdef extern from "spotcore/filter.h" namespace "spotcore" nogil:
    # W1 = I - V1, W2 = V1 - V2 (à trous B-spline, order 3, scale 2). image, w1, w2: rows*cols float32;
    # w1 may be NULL; scratch: 2*rows*cols floats.
    Result wavelet_filter(const float* image, int64_t rows, int64_t cols, float* w1, float* w2,
                          float* scratch)
    double standard_deviation(const float* values, int64_t n)


cdef extern from "spotcore/detect.h" namespace "spotcore" nogil:
    cppclass Peak:
        int32_t row, col
        float value

    enum class ThresholdMode(int32_t):
        std_w1
        absolute

    cppclass DetectOptions:
        ThresholdMode mode
        float threshold
        float min_distance
        int32_t border

    # Local maxima of filtered (rows*cols) strictly above threshold, appended to out in raster order.
    Result find_local_maxima(const float* filtered, int64_t rows, int64_t cols, float threshold,
                             float min_distance, int32_t border, vector[Peak]& out)


cdef extern from "spotcore/fit.h" namespace "spotcore" nogil:
    # s(z) = s0 sqrt(1 + u^2 + A u^3 + B u^4), u = (z - c) / d per axis (s0 px; c, d, z nm).
    cppclass Astigmatism:
        float s0_x, c_x, d_x, a_x, b_x
        float s0_y, c_y, d_y, a_y, b_y
        float z_min, z_max

    cppclass FitOptions:
        Model model
        Estimator estimator
        int32_t box               # odd, 3..31
        float psf_sigma           # px
        int32_t max_iterations
        float tolerance
        int32_t threads           # 0: OpenMP default
        Astigmatism astigmatism   # Model.astigmatic only

    cppclass FitResult:
        float x, y, photons, background, sigma_x, sigma_y
        float crlb_x, crlb_y, crlb_photons, crlb_background, crlb_sigma_x, crlb_sigma_y
        float loglik
        float chi2
        int32_t iterations
        FitStatus status
        float z, crlb_z           # astigmatic: nm (NaN for the 2D models)

    # n boxes of box*box photons (row-major, box after box); NaN = outside the image.
    # variance: NULL or per-pixel read-noise variance (photons^2), same layout. results: n slots.
    Result fit_boxes(const float* boxes, const float* variance, int64_t n, const FitOptions& options,
                     FitResult* results)
    Result check_fit_options(const FitOptions& options)


cdef extern from "spotcore/boxes.h" namespace "spotcore" nogil:
    # Pixels of a box outside the image: NaN, or the value of the nearest edge pixel.
    enum class BoxBorder(int32_t):
        nan
        edge

    const int32_t kMaxBoxSize       # 63

    cppclass BoxOptions:
        int32_t size              # odd, 1..63
        BoxBorder border
        bool mask_neighbours      # NaN (inside 0) on pixels nearer to another centre of the same frame

    Result check_box_options(const BoxOptions& options)
    # n boxes of size*size photons centred on (rows[k], cols[k]) of frame frames[k] (0-based), in input order;
    # centres inside the image, any order. variance (NULL, or photons^2; 0 without a variance map) and
    # inside (NULL, or 1 = in the image and not masked) have the same layout. Same output for any threads.
    Result cut_boxes(const ImageStack& stack, const Camera& camera, const int64_t* frames, const int32_t* rows,
                     const int32_t* cols, int64_t n, const BoxOptions& options, int32_t threads, float* boxes,
                     float* variance, uint8_t* inside)


cdef extern from "spotcore/localize.h" namespace "spotcore" nogil:
    cppclass Localization:
        int64_t frame
        int32_t peak_row, peak_col
        FitResult fit             # x, y in image pixels; centre of pixel (0, 0) is (0, 0)

    cppclass LocalizeOptions:
        DetectOptions detect
        FitOptions fit
        bint mask_neighbours
        BoxOptions screen          # detect_boxes only: extra boxes per detection; screen.size == 0: none

    cppclass Detections:
        vector[int64_t] frame
        vector[int32_t] peak_row, peak_col
        vector[float] boxes        # size() * box * box photons, NaN outside the image / masked
        vector[float] variance     # same layout when the camera has a variance map, else empty
        vector[float] screen_boxes # size() * screen.size^2 photons when screen.size > 0, else empty
        size_t size()

    # The detection half of localize (boxes ready for fit_boxes); appended in localize's order.
    Result detect_boxes(const ImageStack& stack, const Camera& camera, const LocalizeOptions& options,
                        int64_t first_frame, Detections& out)
    # Localize every frame of stack; output appended to out ordered by frame, then peak raster order.
    Result localize(const ImageStack& stack, const Camera& camera, const LocalizeOptions& options,
                    int64_t first_frame, vector[Localization]& out)
    # One frame to photons (rows*cols float32).
    Result frame_to_photons(const ImageStack& stack, int64_t frame, const Camera& camera, float* photons)
    # Every frame to photons (frames*rows*cols float32), as frame_to_photons; threads 0 = OpenMP default.
    Result to_photons(const ImageStack& stack, const Camera& camera, int32_t threads, float* out)


cdef extern from "spotcore/multi.h" namespace "spotcore" nogil:
    const int32_t kMaxEmitters
    const int64_t kGroupsPerFrame
    cppclass MultiOptions:
        int32_t max_emitters       # 1..kMaxEmitters
        double p_value             # LR test level to keep a larger model
        int32_t cycles             # residual re-detection cycles, 0..10
        float redetect_factor      # residual threshold / first threshold
        float merge_distance       # x psf_sigma: the dimmer of two closer emitters is dropped

    cppclass Emitter:
        float x, y, photons        # region coordinates

    cppclass EmitterFit:
        float x, y, photons, crlb_x, crlb_y, crlb_photons
        FitStatus status

    cppclass RegionFit:
        vector[EmitterFit] emitters
        float background, crlb_background
        double loglik, chi2
        int32_t iterations
        bint converged

    cppclass MultiLocalization:
        Localization loc
        int64_t group              # frame * kGroupsPerFrame + region index in the frame
        int32_t n_in_group

    Result check_multi_options(const MultiOptions& multi)
    # Joint fit of count emitters + one background to a size*size region (NaN ignored; offset may be NULL).
    Result fit_emitters(const float* region, const float* offset, int32_t size, const FitOptions& fit,
                        const Emitter* start, int32_t count, RegionFit& out)
    # Model selection from count starts: add emitters at the residual's maximum while the LR test says so.
    Result fit_region(const float* region, const float* offset, int32_t size, const FitOptions& fit,
                      const MultiOptions& multi, const Emitter* start, int32_t count, RegionFit& out)
    Result localize_multi(const ImageStack& stack, const Camera& camera, const LocalizeOptions& options,
                          const MultiOptions& multi, int64_t first_frame, vector[MultiLocalization]& out)

cdef extern from "spotcore/frame_fit.h" namespace "spotcore" nogil:
    cppclass StartsOptions:
        int32_t max_iterations     # Levenberg-Marquardt iterations, 1..1000
        double tolerance           # converged when the cost falls by less than this fraction, (0, 1)
        int32_t window             # px each side of an emitter's pixel in its model, 1..16
        int32_t cg_iterations      # conjugate-gradient steps per iteration, 1..200
        int32_t warmup             # first iterations with positions held, 0..100
        double max_shift           # px an emitter may move from its start in x and in y, 0..16
        double prior_sigma         # px, width of the Gaussian prior around each start (0: none), 0..16
        float crlb_radius          # px: neighbours this close enter an emitter's bound, 0..16
        double min_photons         # an emitter fitted below this gives no row (fit_starts)

    cppclass FrameEmitterFit:
        float x, y, photons
        float crlb_x, crlb_y, crlb_photons, crlb_background
        bint empty                 # photons below min_photons

    cppclass FrameFit:
        vector[FrameEmitterFit] emitters
        float background
        double chi2
        int32_t iterations
        bint converged

    Result check_starts_options(const StartsOptions& o)
    # One frame (photons, finite) and n starts: every emitter and one flat background fitted jointly.
    Result fit_frame(const float* photons, int64_t rows, int64_t cols, double psf_sigma, const float* x,
                     const float* y, int64_t n, const StartsOptions& o, FrameFit& out)
    # Every frame of a stack (frame absolute, non-decreasing; x, y in image pixels), one joint fit per frame;
    # output as localize_multi (group = frame * kGroupsPerFrame).
    Result fit_starts(const ImageStack& stack, const Camera& camera, const LocalizeOptions& options,
                      const int64_t* start_frame, const float* start_x, const float* start_y, int64_t n_starts,
                      const StartsOptions& starts, int64_t first_frame, vector[MultiLocalization]& out)

cdef extern from "spotcore/link.h" namespace "spotcore" nogil:
    cppclass LinkOptions:
        double radius              # px, > 0
        double gate                # > 0: also dx^2/(vx+vx_e) + dy^2/(vy+vy_e) <= gate^2 (v = sd^2); 0: radius only
        int32_t max_dark_frames
        int32_t threads            # 0: OpenMP default; the output does not depend on it

    # The rows to link, sorted by frame; sd_x/sd_y: uncertainties (standard deviations, px) or NULL.
    cppclass LinkRows:
        const int64_t* frame
        const double* x
        const double* y
        const double* sd_x
        const double* sd_y
        int64_t n
        const double* const* sum_of    # n_sums columns summed per event into LinkEvents.sums
        int n_sums

    # The allocator of LinkEvents' columns (resize leaves new elements uninitialized).
    cppclass EventAllocator[T]:
        pass

    cppclass LinkEvents:
        vector[int64_t, EventAllocator[int64_t]] first_frame, last_frame, count
        vector[double, EventAllocator[double]] x, y, sd_x, sd_y
        vector[vector[double, EventAllocator[double]]] sums

    Result check_link_options(const LinkOptions& options)
    # Event index per row (numbered by first row; event may be NULL) and the number of events.
    Result link(const LinkRows& rows, const LinkOptions& options, int64_t* event, int64_t* n_events,
                LinkEvents* events)


cdef extern from "spotcore/drift.h" namespace "spotcore" nogil:
    # Bin (i, j) of a drift density image is centred on (x0 + j * bin, y0 + i * bin), px.
    cppclass DriftGrid:
        double x0, y0, bin
        int64_t nx, ny
    cppclass DriftTrackOptions:
        double radius, coarse_step, step
        int32_t iterations
        double drop
    const int64_t kMaxDriftBins
    Result check_drift_grid(const DriftGrid& grid)
    Result check_drift_track_options(const DriftTrackOptions& options)
    # Cloud-in-cell histogram of (x, y) with weights w (null = 1) added to image (ny * nx float32).
    Result drift_histogram(const double* x, const double* y, const double* w, int64_t n, const DriftGrid& grid,
                           float* image)
    # Per segment [starts[k], ends[k]): 3x3 stencil of scores around centres[2k..], gradient moments, count (13).
    Result drift_stencil(const float* image, const DriftGrid& grid, const double* x, const double* y,
                         const int64_t* starts, const int64_t* ends, int64_t n_segments, const double* centres,
                         double step, int32_t threads, double* out)
    # AIM round 1: segments tracked in time order against image; shifts (2 per segment) and score per point.
    Result drift_track(const float* image, const DriftGrid& grid, const double* x, const double* y,
                       const int64_t* starts, const int64_t* ends, int64_t n_segments,
                       const DriftTrackOptions& options, double* shifts, double* score)

cdef extern from "spotcore/spotcore.h" namespace "spotcore" nogil:
    const char* version()
