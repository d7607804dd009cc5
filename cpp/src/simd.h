// Private: portable multiversioning. The wheel targets baseline x86-64; hot kernels get an extra
// AVX2+FMA clone chosen at load time (GCC/Clang target_clones, glibc ifunc), and the fit has explicit
// AVX2 versions (SPOTCORE_V3) chosen by cpu_is_v3(), where the code itself differs per target.
#pragma once
#include <cstdint>
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && defined(__linux__)
// Explicit AVX2+FMA version of a function, for code that differs per target (chosen with cpu_is_v3()).
#define SPOTCORE_V3 __attribute__((target("arch=x86-64-v3")))
#define SPOTCORE_HAVE_V3 1
#if !defined(SPOTCORE_NO_CLONES)
#define SPOTCORE_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#endif
#else
#define SPOTCORE_V3
#define SPOTCORE_HAVE_V3 0
#endif
#ifndef SPOTCORE_CLONES
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
// Eight floats: one AVX register. Only for SPOTCORE_V3 code: GCC lowers it poorly without AVX.
typedef float f32x8 __attribute__((vector_size(32)));
SPOTCORE_INLINE f32x8 load8(const float* p) { f32x8 v; std::memcpy(&v, p, sizeof v); return v; }
SPOTCORE_INLINE void store8(float* p, f32x8 v) { std::memcpy(p, &v, sizeof v); }

// True when the CPU runs x86-64-v3 code (AVX2, FMA, BMI2, ...) and the build has such versions.
inline bool cpu_is_v3() {
#if SPOTCORE_HAVE_V3 && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
    static const bool v3 = __builtin_cpu_supports("x86-64-v3");
    return v3;
#elif SPOTCORE_HAVE_V3
    static const bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                           __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("f16c") &&
                           __builtin_cpu_supports("movbe");
    return v3;
#else
    return false;
#endif
}
}  // namespace spotcore
