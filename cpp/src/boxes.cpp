#include "spotcore/boxes.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <numeric>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"
#include "spotcore/fit.h"

namespace spotcore {
namespace detail {
namespace {

// Pixels of centre k's box closer to another centre than to centre k are marked outside (NaN, inside 0),
// so a close neighbour does not pull a single-emitter fit. Centres are sorted by (row, col): only those
// less than K rows away are visited.
void mask_nearer(const BoxCentre* cs, size_t count, size_t k, int K, float* box, float* var, uint8_t* ins) {
    const int half = K / 2;
    const BoxCentre& own = cs[k];
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const int64_t first_row = int64_t(own.row) - K;  // rows <= this are K or more away
    size_t m = size_t(std::partition_point(cs, cs + count, [&](const BoxCentre& c) { return c.row <= first_row; }) - cs);
    for (; m < count; ++m) {
        if (m == k) continue;
        const int64_t dr64 = int64_t(cs[m].row) - own.row, dc64 = int64_t(cs[m].col) - own.col;
        if (dr64 >= K) break;
        if (dc64 >= K || dc64 <= -K) continue;
        const int dr = int(dr64), dc = int(dc64);
        for (int i = 0; i < K; ++i)
            for (int j = 0; j < K; ++j) {
                const int y = i - half, x = j - half;  // pixel relative to the own centre
                const int d_own = y * y + x * x, d_other = (y - dr) * (y - dr) + (x - dc) * (x - dc);
                if (d_other < d_own) {
                    box[i * K + j] = nan;
                    if (var) var[i * K + j] = nan;
                    if (ins) ins[i * K + j] = 0;
                }
            }
    }
}

}  // namespace

void cut_frame(const float* photons, const float* variance, int64_t rows, int64_t cols, const BoxCentre* centres,
               size_t count, const BoxOptions& opt, float* boxes, float* variance_out, uint8_t* inside) {
    const int K = opt.size, half = K / 2;
    const size_t KK = size_t(K) * size_t(K);
    const bool edge = opt.border == BoxBorder::edge;
    const float nan = std::numeric_limits<float>::quiet_NaN();
    for (size_t k = 0; k < count; ++k) {
        const BoxCentre& c = centres[k];
        float* b = boxes + size_t(c.slot) * KK;
        float* v = variance_out ? variance_out + size_t(c.slot) * KK : nullptr;
        uint8_t* in = inside ? inside + size_t(c.slot) * KK : nullptr;
        const int64_t r0 = int64_t(c.row) - half, c0 = int64_t(c.col) - half;
        if (r0 >= 0 && c0 >= 0 && r0 + K <= rows && c0 + K <= cols) {
            // The common case: the whole box lies inside the image.
            for (int i = 0; i < K; ++i) {
                const int64_t p = (r0 + i) * cols + c0;
                std::memcpy(b + i * K, photons + p, size_t(K) * sizeof(float));
                if (v) {
                    if (variance) std::memcpy(v + i * K, variance + p, size_t(K) * sizeof(float));
                    else std::fill(v + i * K, v + (i + 1) * K, 0.0f);
                }
            }
            if (in) std::memset(in, 1, KK);
        } else {
            for (int i = 0; i < K; ++i) {
                const int64_t rr = r0 + i;
                const bool row_in = rr >= 0 && rr < rows;
                const int64_t rs = std::min(std::max(rr, int64_t(0)), rows - 1);
                for (int j = 0; j < K; ++j) {
                    const int64_t cc = c0 + j;
                    const bool pix_in = row_in && cc >= 0 && cc < cols;
                    const int64_t p = rs * cols + std::min(std::max(cc, int64_t(0)), cols - 1);
                    const bool take = pix_in || edge;
                    b[i * K + j] = take ? photons[p] : nan;
                    if (v) v[i * K + j] = take ? (variance ? variance[p] : 0.0f) : nan;
                    if (in) in[i * K + j] = uint8_t(pix_in);
                }
            }
        }
        if (opt.mask_neighbours) mask_nearer(centres, count, k, K, b, v, in);
    }
}

}  // namespace detail

Result check_box_options(const BoxOptions& o) {
    if (o.size < 1 || o.size > kMaxBoxSize || o.size % 2 == 0)
        return Result::invalid("box size must be an odd number between 1 and " + std::to_string(kMaxBoxSize) +
                               ", got " + std::to_string(o.size));
    if (o.border != BoxBorder::nan && o.border != BoxBorder::edge) return Result::invalid("unknown box border");
    return Result::success();
}

Result cut_boxes(const ImageStack& s, const Camera& cam, const int64_t* frames, const int32_t* rows,
                 const int32_t* cols, int64_t n, const BoxOptions& opt, int32_t threads, float* boxes,
                 float* variance, uint8_t* inside) {
    using detail::BoxCentre;
    Result r = detail::check_stack(s);
    if (!r.ok()) return r;
    r = detail::check_camera(cam);
    if (!r.ok()) return r;
    r = check_box_options(opt);
    if (!r.ok()) return r;
    if (n < 0) return Result::invalid("cut_boxes: number of centres must be >= 0");
    if (n == 0) return Result::success();
    if (!frames || !rows || !cols) return Result::invalid("cut_boxes: frames, rows and cols must not be null");
    if (!boxes) return Result::invalid("cut_boxes: boxes output must not be null");
    for (int64_t k = 0; k < n; ++k) {
        const bool frame_ok = frames[k] >= 0 && frames[k] < s.frames;
        const bool row_ok = rows[k] >= 0 && rows[k] < s.rows, col_ok = cols[k] >= 0 && cols[k] < s.cols;
        if (frame_ok && row_ok && col_ok) continue;
        const std::string at = "cut_boxes: centre " + std::to_string(k) + ": ";
        if (!frame_ok)
            return Result::invalid(at + "frame " + std::to_string(frames[k]) + " is out of range (the stack has " +
                                   std::to_string(s.frames) + " frames)");
        if (!row_ok)
            return Result::invalid(at + "row " + std::to_string(rows[k]) + " is outside the image (" +
                                   std::to_string(s.rows) + " rows)");
        return Result::invalid(at + "col " + std::to_string(cols[k]) + " is outside the image (" +
                               std::to_string(s.cols) + " cols)");
    }
    const int64_t npix = s.rows * s.cols;
    // Centres sorted by (frame, row, col, input index): one group per frame, in the raster order that the
    // neighbour mask needs; boxes still go to their input slots.
    std::vector<int64_t> order, group_start;
    std::vector<BoxCentre> centres;
    std::vector<float> pix_var;
    try {
        order.resize(size_t(n));
        centres.resize(size_t(n));
        if (variance && cam.variance_map) pix_var.resize(size_t(npix));
        std::iota(order.begin(), order.end(), int64_t(0));
        const auto before = [&](int64_t a, int64_t b) {
            if (frames[a] != frames[b]) return frames[a] < frames[b];
            if (rows[a] != rows[b]) return rows[a] < rows[b];
            if (cols[a] != cols[b]) return cols[a] < cols[b];
            return a < b;
        };
        if (!std::is_sorted(order.begin(), order.end(), before)) std::sort(order.begin(), order.end(), before);
        for (size_t i = 0; i < size_t(n); ++i) {
            const int64_t k = order[i];
            centres[i] = BoxCentre{rows[k], cols[k], k};
            if (i == 0 || frames[k] != frames[order[i - 1]]) group_start.push_back(int64_t(i));
        }
        group_start.push_back(n);
    } catch (const std::bad_alloc&) {
        return {Status::out_of_memory, "out of memory in cut_boxes"};
    }
    if (!pix_var.empty()) detail::pixel_variance(cam, s.rows, s.cols, pix_var.data());
    const float* pv = pix_var.empty() ? nullptr : pix_var.data();
    const int64_t groups = int64_t(group_start.size()) - 1;
    bool failed = false;
#ifdef _OPENMP
#pragma omp parallel num_threads(thread_count(threads)) if (groups > 1)
#endif
    {
        std::vector<float> photons;
        bool ok_alloc = true;
        try {
            photons.resize(size_t(npix));
        } catch (const std::bad_alloc&) {
            ok_alloc = false;
        }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t g = 0; g < groups; ++g) {
            if (!ok_alloc) {
                detail::raise_shared_flag(failed);
                continue;
            }
            const int64_t first = group_start[size_t(g)], count = group_start[size_t(g) + 1] - first;
            detail::convert_frame(s, frames[order[size_t(first)]], cam, photons.data());
            detail::cut_frame(photons.data(), pv, s.rows, s.cols, centres.data() + first, size_t(count), opt, boxes,
                              variance, inside);
        }
    }
    (void)threads;
    if (failed) return {Status::out_of_memory, "out of memory in cut_boxes"};
    return Result::success();
}

}  // namespace spotcore
