// À trous B-spline wavelet filter (Izeddin et al. 2012, Opt. Express 20:2081; ThunderSTORM's
// "Wavelet filter (B-Spline)", order 3, scale 2).
#pragma once
#include "spotcore/types.h"

namespace spotcore {

// Kernel of the first level [1,4,6,4,1]/16; the second level inserts one hole between taps.
// Borders use mirror extension (d c b | a b c d | c b a), as scipy.ndimage mode="mirror".
//   V1 = I * k1 (rows and columns), V2 = V1 * k2,  W1 = I - V1,  W2 = V1 - V2.
// image, w1, w2: rows*cols float32, row-major contiguous. w1 may be null (not wanted).
// scratch: at least 2*rows*cols floats (caller-owned, so no allocation per frame).
Result wavelet_filter(const float* image, int64_t rows, int64_t cols, float* w1, float* w2, float* scratch);

// Sample standard deviation (ddof=0) of n values, accumulated in double: ThunderSTORM's std(Wave.F1).
double standard_deviation(const float* values, int64_t n);

}  // namespace spotcore
