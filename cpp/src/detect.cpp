#include "spotcore/detect.h"

#include "simd.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace spotcore {

Result find_local_maxima(const float* f, int64_t rows, int64_t cols, float threshold, float min_distance,
                         int32_t border, std::vector<Peak>& out) {
    if (!f) return Result::invalid("find_local_maxima: null image");
    if (rows < 1 || cols < 1) return Result::invalid("find_local_maxima: image must be at least 1x1");
    if (std::isnan(threshold)) return Result::invalid("find_local_maxima: threshold is NaN");
    if (border < 0) return Result::invalid("find_local_maxima: border must be >= 0");
    const size_t first = out.size();
    const int64_t r0 = border, r1 = rows - border, c0 = border, c1 = cols - border;
    for (int64_t r = r0; r < r1; ++r) {
        const float* row = f + r * cols;
        const float* up = r > 0 ? row - cols : nullptr;
        const float* down = r + 1 < rows ? row + cols : nullptr;
        for (int64_t c8 = c0; c8 < c1; c8 += 8) {
            // Most blocks of 8 hold no pixel above threshold: skip them with one vector compare.
            if (c8 + 8 <= c1) {
                const i32x4 above = (load4(row + c8) > threshold) | (load4(row + c8 + 4) > threshold);
                uint64_t words[2];
                std::memcpy(words, &above, sizeof words);
                if ((words[0] | words[1]) == 0) continue;
            }
            const int64_t c_end = std::min(c8 + 8, c1);
            for (int64_t c = c8; c < c_end; ++c) {
                const float v = row[c];
                if (!(v > threshold)) continue;
                const bool has_l = c > 0, has_r = c + 1 < cols;
                // Earlier neighbours (row above, left): strictly greater; later ones: greater or equal.
                if (has_l && row[c - 1] >= v) continue;
                if (has_r && row[c + 1] > v) continue;
                if (up && (up[c] >= v || (has_l && up[c - 1] >= v) || (has_r && up[c + 1] >= v))) continue;
                if (down && (down[c] > v || (has_l && down[c - 1] > v) || (has_r && down[c + 1] > v))) continue;
                out.push_back(Peak{int32_t(r), int32_t(c), v});
            }
        }
    }
    if (min_distance > 1.0f && out.size() - first > 1) {
        // Greedy: keep the strongest, drop weaker ones within min_distance (ties: raster order).
        std::vector<Peak> cand(out.begin() + first, out.end());
        std::stable_sort(cand.begin(), cand.end(), [](const Peak& a, const Peak& b) { return a.value > b.value; });
        std::vector<Peak> kept;
        const float d2 = min_distance * min_distance;
        for (const Peak& p : cand) {
            bool near = false;
            for (const Peak& k : kept) {
                const float dr = float(p.row - k.row), dc = float(p.col - k.col);
                if (dr * dr + dc * dc < d2) { near = true; break; }
            }
            if (!near) kept.push_back(p);
        }
        std::sort(kept.begin(), kept.end(),
                  [](const Peak& a, const Peak& b) { return a.row != b.row ? a.row < b.row : a.col < b.col; });
        out.resize(first);
        out.insert(out.end(), kept.begin(), kept.end());
    }
    return Result::success();
}

}  // namespace spotcore
