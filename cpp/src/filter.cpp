#include "spotcore/filter.h"

#include <cmath>
#include <algorithm>
#include <cstdlib>

#include "simd.h"

namespace spotcore {
namespace {

// scipy.ndimage "mirror": reflect about the edge pixel centre, period 2(n-1).
inline int64_t mirror(int64_t i, int64_t n) {
    if (n == 1) return 0;
    const int64_t period = 2 * (n - 1);
    i = std::llabs(i) % period;
    return i < n ? i : period - i;
}

constexpr float k0 = 6.0f / 16.0f, k1 = 4.0f / 16.0f, k2 = 1.0f / 16.0f;

// Correlate rows (along columns) with the 5-tap B3 kernel whose taps sit `step` apart, and write
// minuend - smoothed (a wavelet plane) into `plane` when both are given.
SPOTCORE_CLONES
void smooth_rows(const float* in, float* out, int64_t rows, int64_t cols, int64_t step, const float* minuend,
                 float* plane) {
    const int64_t reach = 2 * step;
    for (int64_t r = 0; r < rows; ++r) {
        const float* a = in + r * cols;
        float* o = out + r * cols;
        const int64_t lo = std::min(reach, cols), hi = std::max(lo, cols - reach);
        for (int64_t c = 0; c < lo; ++c)
            o[c] = k2 * a[mirror(c - reach, cols)] + k1 * a[mirror(c - step, cols)] + k0 * a[c] +
                   k1 * a[mirror(c + step, cols)] + k2 * a[mirror(c + reach, cols)];
        for (int64_t c = lo; c < hi; ++c)
            o[c] = k2 * a[c - reach] + k1 * a[c - step] + k0 * a[c] + k1 * a[c + step] + k2 * a[c + reach];
        for (int64_t c = hi; c < cols; ++c)
            o[c] = k2 * a[mirror(c - reach, cols)] + k1 * a[mirror(c - step, cols)] + k0 * a[c] +
                   k1 * a[mirror(c + step, cols)] + k2 * a[mirror(c + reach, cols)];
        if (plane) {
            const float* m = minuend + r * cols;
            float* w = plane + r * cols;
            for (int64_t c = 0; c < cols; ++c) w[c] = m[c] - o[c];
        }
    }
}

// Correlate columns (along rows); vectorized across the columns of a row.
SPOTCORE_CLONES
void smooth_cols(const float* in, float* out, int64_t rows, int64_t cols, int64_t step) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* m2 = in + mirror(r - 2 * step, rows) * cols;
        const float* m1 = in + mirror(r - step, rows) * cols;
        const float* c0 = in + r * cols;
        const float* p1 = in + mirror(r + step, rows) * cols;
        const float* p2 = in + mirror(r + 2 * step, rows) * cols;
        float* o = out + r * cols;
        for (int64_t c = 0; c < cols; ++c)
            o[c] = k2 * m2[c] + k1 * m1[c] + k0 * c0[c] + k1 * p1[c] + k2 * p2[c];
    }
}

}  // namespace

Result wavelet_filter(const float* image, int64_t rows, int64_t cols, float* w1, float* w2, float* scratch) {
    if (!image || !w2 || !scratch) return Result::invalid("wavelet_filter: null pointer");
    if (rows < 1 || cols < 1) return Result::invalid("wavelet_filter: image must be at least 1x1");
    const int64_t n = rows * cols;
    float* tmp = scratch;
    float* v1 = scratch + n;
    // Columns first, then rows (the reference in tests uses the same order); the row pass also
    // writes the wavelet plane, W1 = I - V1 and W2 = V1 - V2 (V2 is written to w2, then replaced in place).
    smooth_cols(image, tmp, rows, cols, 1);
    smooth_rows(tmp, v1, rows, cols, 1, image, w1);
    smooth_cols(v1, tmp, rows, cols, 2);
    smooth_rows(tmp, w2, rows, cols, 2, v1, w2);
    return Result::success();
}

double standard_deviation(const float* values, int64_t n) {
    if (n <= 0) return 0.0;
    // Blocks of 256 summed in float over 8 fixed lanes, blocks folded into double: reproducible, and
    // accurate to ~1e-6 relative, ample for a detection threshold.
    constexpr int64_t kBlock = 256;
    double sum = 0.0, sum_sq = 0.0;
    for (int64_t start = 0; start < n; start += kBlock) {
        const int64_t len = std::min(kBlock, n - start);
        const float* v = values + start;
        f32x4 s0 = {}, s1 = {}, ss0 = {}, ss1 = {};
        int64_t i = 0;
        for (; i + 8 <= len; i += 8) {
            const f32x4 x0 = load4(v + i), x1 = load4(v + i + 4);
            s0 += x0;
            s1 += x1;
            ss0 += x0 * x0;
            ss1 += x1 * x1;
        }
        double bs = 0.0, bss = 0.0;
        for (; i < len; ++i) {
            bs += v[i];
            bss += double(v[i]) * v[i];
        }
        for (int l = 0; l < 4; ++l) {
            bs += double(s0[l]) + double(s1[l]);
            bss += double(ss0[l]) + double(ss1[l]);
        }
        sum += bs;
        sum_sq += bss;
    }
    const double mean = sum / double(n);
    return std::sqrt(std::max(sum_sq / double(n) - mean * mean, 0.0));
}

}  // namespace spotcore
