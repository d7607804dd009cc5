#include "spotcore/localize.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <new>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "spotcore/filter.h"
#include "simd.h"

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
void convert_frame(const char* base, const ImageStack& s, const Camera& cam, float* out) {
    if (cam.offset_map || cam.gain_map) return convert_maps<T>(base, s, cam, out);
    const double scale = cam.sensitivity / (cam.em_gain * cam.qe);
    convert_scalar<T>(base, s, float(scale), float(-cam.baseline * scale), out);
}

// Pixels of box k closer to another detected peak than to peak k are marked outside (NaN), so a
// close neighbour does not pull the single-emitter fit (peaks are in raster order).
void mask_nearer_peaks(const std::vector<Peak>& peaks, size_t k, int K, float* box, float* var) {
    const int half = K / 2;
    const Peak& own = peaks[k];
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (size_t m = 0; m < peaks.size(); ++m) {
        if (m == k) continue;
        const int dr = peaks[m].row - own.row, dc = peaks[m].col - own.col;
        if (dr >= K) break;
        if (dr <= -K || dc >= K || dc <= -K) continue;
        for (int i = 0; i < K; ++i)
            for (int j = 0; j < K; ++j) {
                const int y = i - half, x = j - half;  // pixel relative to the own peak
                const int d_own = y * y + x * x, d_other = (y - dr) * (y - dr) + (x - dc) * (x - dc);
                if (d_other < d_own) {
                    box[i * K + j] = nan;
                    if (var) var[i * K + j] = nan;
                }
            }
    }
}

Result check_stack(const ImageStack& s) {
    if (!s.data) return Result::invalid("image data is null");
    if (s.frames < 0 || s.rows < 1 || s.cols < 1)
        return Result::invalid("image must have at least one row and one column");
    return Result::success();
}

Result check_camera(const Camera& c) {
    if (!std::isfinite(c.baseline)) return Result::invalid("camera baseline must be finite");
    if (!(c.sensitivity > 0) || !std::isfinite(c.sensitivity)) return Result::invalid("camera sensitivity must be > 0");
    if (!(c.em_gain > 0) || !std::isfinite(c.em_gain)) return Result::invalid("camera em_gain must be > 0");
    if (!(c.qe > 0) || !(c.qe <= 1.0)) return Result::invalid("camera qe must be in (0, 1]");
    return Result::success();
}

}  // namespace

Result frame_to_photons(const ImageStack& s, int64_t frame, const Camera& cam, float* out) {
    Result r = check_stack(s);
    if (!r.ok()) return r;
    r = check_camera(cam);
    if (!r.ok()) return r;
    if (frame < 0 || frame >= s.frames) return Result::invalid("frame index out of range");
    const char* base = static_cast<const char*>(s.data) + frame * s.stride_frame;
    switch (s.type) {
        case PixelType::u8: convert_frame<uint8_t>(base, s, cam, out); break;
        case PixelType::u16: convert_frame<uint16_t>(base, s, cam, out); break;
        case PixelType::i16: convert_frame<int16_t>(base, s, cam, out); break;
        case PixelType::u32: convert_frame<uint32_t>(base, s, cam, out); break;
        case PixelType::i32: convert_frame<int32_t>(base, s, cam, out); break;
        case PixelType::f32: convert_frame<float>(base, s, cam, out); break;
        case PixelType::f64: convert_frame<double>(base, s, cam, out); break;
        default: return Result::invalid("unsupported pixel type");
    }
    return Result::success();
}

Result detect_boxes(const ImageStack& s, const Camera& cam, const LocalizeOptions& opt, int64_t first_frame,
                    Detections& out) {
    Result r = check_stack(s);
    if (!r.ok()) return r;
    r = check_camera(cam);
    if (!r.ok()) return r;
    r = check_fit_options(opt.fit);
    if (!r.ok()) return r;
    if (!std::isfinite(opt.detect.threshold)) return Result::invalid("threshold must be finite");
    if (opt.detect.mode != ThresholdMode::std_w1 && opt.detect.mode != ThresholdMode::absolute)
        return Result::invalid("unknown threshold mode");
    if (s.frames == 0) return Result::success();

    const int K = opt.fit.box, KK = K * K, half = K / 2;
    const int64_t rows = s.rows, cols = s.cols, npix = rows * cols;
    const bool sensor_variance = cam.variance_map != nullptr;
    std::vector<std::vector<Peak>> peaks(size_t(s.frames));
    std::vector<std::vector<float>> frame_boxes(size_t(s.frames)), frame_vars(size_t(s.frames));
    bool failed = false;
    std::string failure;

    // Phase 1, per frame: convert, filter, detect, cut boxes (NaN outside the image).
#ifdef _OPENMP
    const int threads = thread_count(opt.fit.threads);
#pragma omp parallel num_threads(threads) if (s.frames > 1)
#endif
    {
        std::vector<float> photons, w1, w2, scratch;
        bool ok_alloc = true;
        try {
            photons.resize(size_t(npix));
            w1.resize(size_t(npix));
            w2.resize(size_t(npix));
            scratch.resize(size_t(2 * npix));
        } catch (const std::bad_alloc&) {
            ok_alloc = false;
        }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t f = 0; f < s.frames; ++f) {
            if (!ok_alloc) {
#ifdef _OPENMP
#pragma omp critical(spotcore_fail)
#endif
                { failed = true; failure = "out of memory in localize"; }
                continue;
            }
            frame_to_photons(s, f, cam, photons.data());
            wavelet_filter(photons.data(), rows, cols, w1.data(), w2.data(), scratch.data());
            float thr = opt.detect.threshold;
            if (opt.detect.mode == ThresholdMode::std_w1) thr = float(opt.detect.threshold * standard_deviation(w1.data(), npix));
            std::vector<Peak>& pk = peaks[size_t(f)];
            find_local_maxima(w2.data(), rows, cols, thr, opt.detect.min_distance, opt.detect.border, pk);
            std::vector<float>& bx = frame_boxes[size_t(f)];
            bx.resize(pk.size() * size_t(KK));
            if (sensor_variance) frame_vars[size_t(f)].resize(pk.size() * size_t(KK));
            const float nan = std::numeric_limits<float>::quiet_NaN();
            for (size_t k = 0; k < pk.size(); ++k) {
                float* dst = bx.data() + k * size_t(KK);
                float* vdst = sensor_variance ? frame_vars[size_t(f)].data() + k * size_t(KK) : nullptr;
                for (int i = 0; i < K; ++i) {
                    const int64_t rr = int64_t(pk[k].row) - half + i;
                    for (int j = 0; j < K; ++j) {
                        const int64_t cc = int64_t(pk[k].col) - half + j;
                        const bool inside = rr >= 0 && rr < rows && cc >= 0 && cc < cols;
                        dst[i * K + j] = inside ? photons[size_t(rr * cols + cc)] : nan;
                        if (vdst) {
                            float v = nan;
                            if (inside) {
                                const int64_t p = rr * cols + cc;
                                const float g = cam.gain_map ? cam.gain_map[p] : float(1.0 / cam.sensitivity);
                                v = cam.variance_map[p] / (g * g) / float(cam.qe * cam.qe);
                            }
                            vdst[i * K + j] = v;
                        }
                    }
                }
                if (opt.mask_neighbours) mask_nearer_peaks(pk, k, K, dst, vdst);
            }
        }
    }
    if (failed) return {Status::out_of_memory, failure};

    // Gather in frame order (per-frame vectors freed as they are copied).
    size_t total = 0;
    for (const auto& pk : peaks) total += pk.size();
    try {
        const size_t n0 = out.size();
        out.frame.reserve(n0 + total);
        out.peak_row.reserve(n0 + total);
        out.peak_col.reserve(n0 + total);
        out.boxes.reserve((n0 + total) * size_t(KK));
        if (sensor_variance) out.variance.reserve((n0 + total) * size_t(KK));
        for (int64_t f = 0; f < s.frames; ++f) {
            for (const Peak& pk : peaks[size_t(f)]) {
                out.frame.push_back(first_frame + f);
                out.peak_row.push_back(pk.row);
                out.peak_col.push_back(pk.col);
            }
            out.boxes.insert(out.boxes.end(), frame_boxes[size_t(f)].begin(), frame_boxes[size_t(f)].end());
            std::vector<float>().swap(frame_boxes[size_t(f)]);
            if (sensor_variance) {
                out.variance.insert(out.variance.end(), frame_vars[size_t(f)].begin(), frame_vars[size_t(f)].end());
                std::vector<float>().swap(frame_vars[size_t(f)]);
            }
        }
    } catch (const std::bad_alloc&) {
        return {Status::out_of_memory, "out of memory in localize"};
    }
    return Result::success();
}

Result localize(const ImageStack& s, const Camera& cam, const LocalizeOptions& opt, int64_t first_frame,
                std::vector<Localization>& out) {
    Detections det;
    Result r = detect_boxes(s, cam, opt, first_frame, det);
    if (!r.ok()) return r;
    const size_t total = det.size();
    if (total == 0) return Result::success();
    std::vector<FitResult> fits;
    try {
        fits.resize(total);
        out.reserve(out.size() + total);
    } catch (const std::bad_alloc&) {
        return {Status::out_of_memory, "out of memory in localize"};
    }
    // One batch of boxes for the whole chunk, fitted in parallel.
    r = fit_boxes(det.boxes.data(), det.variance.empty() ? nullptr : det.variance.data(), int64_t(total), opt.fit,
                  fits.data());
    if (!r.ok()) return r;
    const int half = opt.fit.box / 2;
    for (size_t k = 0; k < total; ++k) {
        Localization loc;
        loc.frame = det.frame[k];
        loc.peak_row = det.peak_row[k];
        loc.peak_col = det.peak_col[k];
        loc.fit = fits[k];
        loc.fit.x += float(det.peak_col[k] - half);
        loc.fit.y += float(det.peak_row[k] - half);
        out.push_back(loc);
    }
    return Result::success();
}

}  // namespace spotcore
