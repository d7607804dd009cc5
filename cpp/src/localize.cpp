#include "spotcore/localize.h"

#include <cmath>
#include <new>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"
#include "spotcore/filter.h"

namespace spotcore {

Result detect_boxes(const ImageStack& s, const Camera& cam, const LocalizeOptions& opt, int64_t first_frame,
                    Detections& out) {
    Result r = detail::check_stack(s);
    if (!r.ok()) return r;
    r = detail::check_camera(cam);
    if (!r.ok()) return r;
    r = check_fit_options(opt.fit);
    if (!r.ok()) return r;
    if (!std::isfinite(opt.detect.threshold)) return Result::invalid("threshold must be finite");
    if (opt.detect.mode != ThresholdMode::std_w1 && opt.detect.mode != ThresholdMode::absolute)
        return Result::invalid("unknown threshold mode");
    const bool screen = opt.screen.size != 0;
    if (screen) {
        r = check_box_options(opt.screen);
        if (!r.ok()) return Result::invalid("screen: " + r.message + " (0 for no screening boxes)");
    }
    if (s.frames == 0) return Result::success();

    // The fit boxes: what cut_boxes gives for the peaks with these options.
    const BoxOptions fit_box{opt.fit.box, BoxBorder::nan, opt.mask_neighbours};
    const size_t KK = size_t(opt.fit.box) * size_t(opt.fit.box);
    const size_t SS = screen ? size_t(opt.screen.size) * size_t(opt.screen.size) : 0;
    const int64_t rows = s.rows, cols = s.cols, npix = rows * cols;
    const bool sensor_variance = cam.variance_map != nullptr;
    std::vector<std::vector<Peak>> peaks;
    std::vector<std::vector<float>> frame_boxes, frame_vars, frame_screen;
    std::vector<float> pix_var;
    try {
        peaks.resize(size_t(s.frames));
        frame_boxes.resize(size_t(s.frames));
        if (sensor_variance) {
            frame_vars.resize(size_t(s.frames));
            pix_var.resize(size_t(npix));
        }
        if (screen) frame_screen.resize(size_t(s.frames));
    } catch (const std::bad_alloc&) {
        return {Status::out_of_memory, "out of memory in localize"};
    }
    if (sensor_variance) detail::pixel_variance(cam, rows, cols, pix_var.data());
    const float* pv = sensor_variance ? pix_var.data() : nullptr;
    bool failed = false;

    // Phase 1, per frame: convert, filter, detect, cut boxes.
#ifdef _OPENMP
    const int threads = thread_count(opt.fit.threads);
#pragma omp parallel num_threads(threads) if (s.frames > 1)
#endif
    {
        detail::FrameBuffers buf;
        const bool ok_alloc = buf.allocate(npix);
        auto& photons = buf.photons;
        auto& w1 = buf.w1;
        auto& w2 = buf.w2;
        auto& scratch = buf.scratch;
        std::vector<detail::BoxCentre> centres;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t f = 0; f < s.frames; ++f) {
            if (!ok_alloc) {
                detail::raise_shared_flag(failed);
                continue;
            }
            detail::convert_frame(s, f, cam, photons.data());
            wavelet_filter(photons.data(), rows, cols, w1.data(), w2.data(), scratch.data());
            float thr = opt.detect.threshold;
            if (opt.detect.mode == ThresholdMode::std_w1) thr = float(opt.detect.threshold * standard_deviation(w1.data(), npix));
            const size_t fi = size_t(f);
            std::vector<Peak>& pk = peaks[fi];
            try {
                find_local_maxima(w2.data(), rows, cols, thr, opt.detect.min_distance, opt.detect.border, pk);
                centres.resize(pk.size());
                frame_boxes[fi].resize(pk.size() * KK);
                if (sensor_variance) frame_vars[fi].resize(pk.size() * KK);
                if (screen) frame_screen[fi].resize(pk.size() * SS);
            } catch (const std::bad_alloc&) {
                detail::raise_shared_flag(failed);
                continue;
            }
            // Peaks come in raster order, as cut_frame needs.
            for (size_t k = 0; k < pk.size(); ++k) centres[k] = detail::BoxCentre{pk[k].row, pk[k].col, int64_t(k)};
            detail::cut_frame(photons.data(), pv, rows, cols, centres.data(), pk.size(), fit_box, frame_boxes[fi].data(),
                              sensor_variance ? frame_vars[fi].data() : nullptr, nullptr);
            if (screen)
                detail::cut_frame(photons.data(), pv, rows, cols, centres.data(), pk.size(), opt.screen,
                                  frame_screen[fi].data(), nullptr, nullptr);
        }
    }
    if (failed) return {Status::out_of_memory, "out of memory in localize"};

    // Gather in frame order (per-frame vectors freed as they are copied).
    size_t total = 0;
    for (const auto& pk : peaks) total += pk.size();
    try {
        const size_t n0 = out.size();
        out.frame.reserve(n0 + total);
        out.peak_row.reserve(n0 + total);
        out.peak_col.reserve(n0 + total);
        out.boxes.reserve((n0 + total) * KK);
        if (sensor_variance) out.variance.reserve((n0 + total) * KK);
        if (screen) out.screen_boxes.reserve(out.screen_boxes.size() + total * SS);
        const auto move_to = [](std::vector<float>& from, std::vector<float>& to) {
            to.insert(to.end(), from.begin(), from.end());
            std::vector<float>().swap(from);
        };
        for (int64_t f = 0; f < s.frames; ++f) {
            const size_t fi = size_t(f);
            for (const Peak& pk : peaks[fi]) {
                out.frame.push_back(first_frame + f);
                out.peak_row.push_back(pk.row);
                out.peak_col.push_back(pk.col);
            }
            move_to(frame_boxes[fi], out.boxes);
            if (sensor_variance) move_to(frame_vars[fi], out.variance);
            if (screen) move_to(frame_screen[fi], out.screen_boxes);
        }
    } catch (const std::bad_alloc&) {
        return {Status::out_of_memory, "out of memory in localize"};
    }
    return Result::success();
}

Result localize(const ImageStack& s, const Camera& cam, const LocalizeOptions& opt, int64_t first_frame,
                std::vector<Localization>& out) {
    LocalizeOptions detect_only = opt;
    detect_only.screen.size = 0;  // nobody reads screening boxes here
    Detections det;
    Result r = detect_boxes(s, cam, detect_only, first_frame, det);
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
