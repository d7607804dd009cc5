// ADU -> photons: the one camera conversion of the core (detection, cut_boxes, to_photons).
#include <cmath>
#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"
#include "simd.h"
#include "spotcore/fit.h"
#include "spotcore/localize.h"

namespace spotcore {
namespace {

template <typename T>
SPOTCORE_CLONES void convert_scalar(const char* base, const ImageStack& s, float scale, float offset, float* out) {
    // photons = (ADU - baseline) * scale, written as ADU * scale + offset with offset = -baseline * scale.
    for (int64_t r = 0; r < s.rows; ++r) {
        const char* row = base + r * s.stride_row;
        float* o = out + r * s.cols;
        if (s.stride_col == int64_t(sizeof(T))) {
            const T* px = reinterpret_cast<const T*>(row);
            for (int64_t c = 0; c < s.cols; ++c) o[c] = float(px[c]) * scale + offset;
        } else {
            for (int64_t c = 0; c < s.cols; ++c)
                o[c] = float(*reinterpret_cast<const T*>(row + c * s.stride_col)) * scale + offset;
        }
    }
}

template <typename T>
void convert_maps(const char* base, const ImageStack& s, const Camera& cam, float* out) {
    const float inv_qe = float(1.0 / cam.qe);
    for (int64_t r = 0; r < s.rows; ++r)
        for (int64_t c = 0; c < s.cols; ++c) {
            const int64_t p = r * s.cols + c;
            const float adu = float(*reinterpret_cast<const T*>(base + r * s.stride_row + c * s.stride_col));
            const float off = cam.offset_map ? cam.offset_map[p] : float(cam.baseline);
            const float gain = cam.gain_map ? cam.gain_map[p] : float(1.0 / cam.sensitivity);
            out[p] = (adu - off) / gain * inv_qe;
        }
}

template <typename T>
void convert_typed(const char* base, const ImageStack& s, const Camera& cam, float* out) {
    if (cam.offset_map || cam.gain_map) return convert_maps<T>(base, s, cam, out);
    const double scale = cam.sensitivity / (cam.em_gain * cam.qe);
    convert_scalar<T>(base, s, float(scale), float(-cam.baseline * scale), out);
}

bool known_type(PixelType t) { return pixel_bytes(t) != 0; }

}  // namespace

namespace detail {

Result check_stack(const ImageStack& s) {
    if (!s.data) return Result::invalid("image data is null");
    if (s.frames < 0 || s.rows < 1 || s.cols < 1)
        return Result::invalid("image must have at least one row and one column");
    if (!known_type(s.type)) return Result::invalid("unsupported pixel type");
    return Result::success();
}

Result check_camera(const Camera& c) {
    if (!std::isfinite(c.baseline)) return Result::invalid("camera baseline must be finite");
    if (!(c.sensitivity > 0) || !std::isfinite(c.sensitivity)) return Result::invalid("camera sensitivity must be > 0");
    if (!(c.em_gain > 0) || !std::isfinite(c.em_gain)) return Result::invalid("camera em_gain must be > 0");
    if (!(c.qe > 0) || !(c.qe <= 1.0)) return Result::invalid("camera qe must be in (0, 1]");
    return Result::success();
}

void convert_frame(const ImageStack& s, int64_t frame, const Camera& cam, float* out) {
    const char* base = static_cast<const char*>(s.data) + frame * s.stride_frame;
    switch (s.type) {
        case PixelType::u8: return convert_typed<uint8_t>(base, s, cam, out);
        case PixelType::u16: return convert_typed<uint16_t>(base, s, cam, out);
        case PixelType::i16: return convert_typed<int16_t>(base, s, cam, out);
        case PixelType::u32: return convert_typed<uint32_t>(base, s, cam, out);
        case PixelType::i32: return convert_typed<int32_t>(base, s, cam, out);
        case PixelType::f32: return convert_typed<float>(base, s, cam, out);
        case PixelType::f64: return convert_typed<double>(base, s, cam, out);
    }
}

void pixel_variance(const Camera& cam, int64_t rows, int64_t cols, float* out) {
    const float qe2 = float(cam.qe * cam.qe);
    for (int64_t p = 0; p < rows * cols; ++p) {
        const float g = cam.gain_map ? cam.gain_map[p] : float(1.0 / cam.sensitivity);
        out[p] = cam.variance_map[p] / (g * g) / qe2;
    }
}

}  // namespace detail

Result frame_to_photons(const ImageStack& s, int64_t frame, const Camera& cam, float* out) {
    Result r = detail::check_stack(s);
    if (!r.ok()) return r;
    r = detail::check_camera(cam);
    if (!r.ok()) return r;
    if (frame < 0 || frame >= s.frames) return Result::invalid("frame index out of range");
    if (!out) return Result::invalid("frame_to_photons: output is null");
    detail::convert_frame(s, frame, cam, out);
    return Result::success();
}

Result to_photons(const ImageStack& s, const Camera& cam, int32_t threads, float* out) {
    Result r = detail::check_stack(s);
    if (!r.ok()) return r;
    r = detail::check_camera(cam);
    if (!r.ok()) return r;
    if (s.frames == 0) return Result::success();
    if (!out) return Result::invalid("to_photons: output is null");
    const int64_t npix = s.rows * s.cols;
#ifdef _OPENMP
#pragma omp parallel for num_threads(thread_count(threads)) schedule(dynamic, 1) if (s.frames > 1)
#endif
    for (int64_t f = 0; f < s.frames; ++f) detail::convert_frame(s, f, cam, out + f * npix);
    (void)threads;
    return Result::success();
}

}  // namespace spotcore
