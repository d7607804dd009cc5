// Private: portable multiversioning. The wheel targets baseline x86-64; hot kernels get an extra
// AVX2+FMA clone chosen at load time (GCC/Clang target_clones, glibc ifunc).
#pragma once
#include <cstdint>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(SPOTCORE_NO_CLONES) && \
    defined(__linux__)
#define SPOTCORE_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define SPOTCORE_CLONES
#endif
#if defined(__GNUC__) || defined(__clang__)
#define SPOTCORE_INLINE inline __attribute__((always_inline))
#else
#define SPOTCORE_INLINE inline
#endif

#include <cstring>

namespace spotcore {
// Four floats as one value (GCC/Clang vector extension, one SSE register): explicit lanes, so sums
// are reproducible and the baseline build vectorizes what auto-vectorization misses.
typedef float f32x4 __attribute__((vector_size(16)));
typedef int32_t i32x4 __attribute__((vector_size(16)));
SPOTCORE_INLINE f32x4 load4(const float* p) { f32x4 v; std::memcpy(&v, p, sizeof v); return v; }
}  // namespace spotcore
