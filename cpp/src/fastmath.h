// Private: branch-free float32 exp/log/erf that GCC vectorizes across fit lanes (the libm calls
// would not vectorize in the baseline x86-64 build). Accuracy is ~1e-7, at float32 rounding.
#pragma once
#include <cstdint>
#include <cstring>

#include "simd.h"

namespace spotcore {
namespace fastmath {

SPOTCORE_INLINE float bits_to_float(int32_t b) { float f; std::memcpy(&f, &b, 4); return f; }
SPOTCORE_INLINE int32_t float_to_bits(float f) { int32_t b; std::memcpy(&b, &f, 4); return b; }

// exp(x) for x <= 0: Cody–Waite reduction x = k ln2 + r, |r| <= ln2/2, degree-7 Taylor polynomial.
SPOTCORE_INLINE float exp_nonpositive(float x) {
    x = x < -87.0f ? -87.0f : (x > 0.0f ? 0.0f : x);
    const float t = x * 1.44269504f;
    const int32_t k = int32_t(t - 0.5f);  // round to nearest for t <= 0 (truncation toward zero)
    const float kf = float(k);
    const float r = (x - kf * 0.693145752f) - kf * 1.42860677e-6f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return bits_to_float(float_to_bits(p) + k * (1 << 23));  // k >= -126: no overflow, no UB shift
}

// log(x) for normal x > 0: x = m 2^e with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s),
// s = (m-1)/(m+1), odd series to s^9 (|s| <= 0.172, truncation < 1e-9).
SPOTCORE_INLINE float log_positive(float x) {
    const int32_t bits = float_to_bits(x);
    int32_t e = ((bits >> 23) & 0xff) - 127;
    float m = bits_to_float((bits & 0x007fffff) | 0x3f800000);
    const bool high = m > 1.41421356f;
    m = high ? 0.5f * m : m;
    e = high ? e + 1 : e;
    const float f = m - 1.0f;
    const float s = f / (2.0f + f);
    const float s2 = s * s;
    float p = 2.0f / 9.0f;
    p = p * s2 + 2.0f / 7.0f;
    p = p * s2 + 2.0f / 5.0f;
    p = p * s2 + 2.0f / 3.0f;
    p = p * s2 + 2.0f;
    return s * p + float(e) * 0.693147181f;
}

// erf(u) given g = exp(-u^2): Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7).
SPOTCORE_INLINE float erf_with_gauss(float u, float g) {
    const float a = u < 0.0f ? -u : u;
    const float t = 1.0f / (1.0f + 0.3275911f * a);
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    const float y = 1.0f - p * t * g;
    return u < 0.0f ? -y : y;
}

}  // namespace fastmath
}  // namespace spotcore
