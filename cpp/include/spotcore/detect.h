// Candidate detection: threshold + local maxima in an 8-neighbourhood.
#pragma once
#include <vector>
#include "spotcore/types.h"

namespace spotcore {

struct Peak {
    int32_t row = 0, col = 0;
    float value = 0.0f;  // filtered image value at the peak
};

enum class ThresholdMode : int32_t {
    std_w1 = 0,    // threshold = factor * std(W1) of each frame (ThunderSTORM's "std(Wave.F1)")
    absolute = 1,  // threshold = factor, in photons of the filtered image
};

struct DetectOptions {
    ThresholdMode mode = ThresholdMode::std_w1;
    float threshold = 1.5f;
    // Maxima closer than this (Euclidean, px) to a stronger maximum are dropped; <= 1 keeps all
    // 8-neighbourhood maxima.
    float min_distance = 0.0f;
    // Peaks closer than this to the image edge are dropped (0: keep all; fits then use a clipped box).
    int32_t border = 0;
};

// Local maxima of `filtered` (rows*cols row-major) strictly above `threshold`.
// A pixel is a maximum when it is > every 8-neighbour earlier in raster order and >= every later one,
// so a plateau yields exactly one peak (its first pixel). Neighbours outside the image are ignored.
// Peaks are appended to `out` in raster order.
Result find_local_maxima(const float* filtered, int64_t rows, int64_t cols, float threshold,
                         float min_distance, int32_t border, std::vector<Peak>& out);

}  // namespace spotcore
