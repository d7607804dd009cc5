#include "spotcore/filter.h"

#include <cmath>
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

// Correlate rows (along columns) with the 5-tap B3 kernel whose taps sit `step` apart.
SPOTCORE_CLONES
void smooth_rows(const float* in, float* out, int64_t rows, int64_t cols, int64_t step) {
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
    // Columns first, then rows (the reference in tests uses the same order).
    smooth_cols(image, tmp, rows, cols, 1);
    smooth_rows(tmp, v1, rows, cols, 1);
    smooth_cols(v1, tmp, rows, cols, 2);
    smooth_rows(tmp, w2, rows, cols, 2);  // w2 holds V2 for now
    for (int64_t i = 0; i < n; ++i) w2[i] = v1[i] - w2[i];
    if (w1)
        for (int64_t i = 0; i < n; ++i) w1[i] = image[i] - v1[i];
    return Result::success();
}

double standard_deviation(const float* values, int64_t n) {
    if (n <= 0) return 0.0;
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) sum += values[i];
    const double mean = sum / double(n);
    double ss = 0.0;
    for (int64_t i = 0; i < n; ++i) {
        const double d = values[i] - mean;
        ss += d * d;
    }
    return std::sqrt(ss / double(n));
}

}  // namespace spotcore
