// spotcore: shared types of the embeddable C++ core (no Python, no exceptions across the API).
#pragma once
#include <cstdint>
#include <string>

namespace spotcore {

// Outcome of an API call. Functions never throw; they return this.
enum class Status : int32_t {
    ok = 0,
    invalid_argument = 1,
    out_of_memory = 2,
    internal_error = 3,
};

struct Result {
    Status status = Status::ok;
    std::string message;  // empty when ok
    bool ok() const { return status == Status::ok; }
    static Result success() { return {}; }
    static Result invalid(std::string msg) { return {Status::invalid_argument, std::move(msg)}; }
};

// Per-fit outcome: data, not an error (one bad box never aborts a batch).
// The single registry of fit states; the bindings export it as spotfit.FitStatus.
enum class FitStatus : int32_t {
    converged = 0,
    max_iterations = 1,
    singular = 2,      // Fisher / normal matrix not positive definite at the estimate
    out_of_box = 3,    // centre left the fit box or parameters went non-physical
    not_fitted = 4,    // box had too few valid pixels
    unreliable = 5,    // converged, but a sigma sits at its bound or an uncertainty exceeds the box
    z_out_of_range = 6,  // astigmatic: z reached the end of the calibrated range
};
inline const char* fit_status_name(FitStatus s) {
    switch (s) {
        case FitStatus::converged: return "converged";
        case FitStatus::max_iterations: return "max_iterations";
        case FitStatus::singular: return "singular";
        case FitStatus::out_of_box: return "out_of_box";
        case FitStatus::not_fitted: return "not_fitted";
        case FitStatus::unreliable: return "unreliable";
        case FitStatus::z_out_of_range: return "z_out_of_range";
    }
    return "unknown";
}

enum class Model : int32_t {
    fixed_sigma = 0,  // x, y, N, b            (sigma = psf_sigma)
    gauss = 1,        // x, y, N, b, sigma     (symmetric)
    elliptical = 2,   // x, y, N, b, sigma_x, sigma_y
    astigmatic = 3,   // x, y, N, b, z         (sigma_x(z), sigma_y(z) from FitOptions::astigmatism)
};
inline int model_parameter_count(Model m) {
    return m == Model::fixed_sigma ? 4 : (m == Model::elliptical ? 6 : 5);
}

enum class Estimator : int32_t {
    lsq = 0,  // unweighted least squares
    mle = 1,  // Poisson maximum likelihood (Laurence & Chromy 2010, Nat. Methods 7:338)
};

enum class PixelType : int32_t { u8, u16, i16, u32, i32, f32, f64 };

// A 3D stack (frames, rows, cols) of any supported pixel type; strides in BYTES, may be negative.
struct ImageStack {
    const void* data = nullptr;
    PixelType type = PixelType::u16;
    int64_t frames = 0, rows = 0, cols = 0;
    int64_t stride_frame = 0, stride_row = 0, stride_col = 0;
};

// Bytes per pixel of each PixelType.
inline int64_t pixel_bytes(PixelType t) {
    switch (t) {
        case PixelType::u8: return 1;
        case PixelType::u16: case PixelType::i16: return 2;
        case PixelType::u32: case PixelType::i32: case PixelType::f32: return 4;
        case PixelType::f64: return 8;
    }
    return 0;
}

// The ImageStack of a C-contiguous (frames, rows, cols) buffer.
inline ImageStack contiguous_stack(const void* data, PixelType type, int64_t frames, int64_t rows, int64_t cols) {
    ImageStack s;
    s.data = data;
    s.type = type;
    s.frames = frames;
    s.rows = rows;
    s.cols = cols;
    s.stride_col = pixel_bytes(type);
    s.stride_row = s.stride_col * cols;
    s.stride_frame = s.stride_row * rows;
    return s;
}

// ADU -> photons. Scalar EMCCD/CCD model (ThunderSTORM / Picasso convention):
//   photons = (ADU - baseline) * sensitivity / (em_gain * qe),  sensitivity in photoelectrons per ADU.
// sCMOS (Huang et al. 2013, Nat. Methods 10:653): optional per-pixel maps, each rows*cols row-major
// float32 in the frame's geometry; when offset_map/gain_map are set they replace baseline/sensitivity:
//   photons = (ADU - offset[p]) / (gain[p] * qe),  gain in ADU per photoelectron (storm-analysis calib).
// variance_map (ADU^2) adds variance/gain^2 photons to data and model in the MLE fit.
struct Camera {
    double baseline = 0.0;
    double sensitivity = 1.0;
    double em_gain = 1.0;
    double qe = 1.0;
    const float* offset_map = nullptr;
    const float* gain_map = nullptr;
    const float* variance_map = nullptr;
};

}  // namespace spotcore
