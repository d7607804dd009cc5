// Batched Levenberg–Marquardt: W fits advance in lockstep, one per SIMD lane (structure of arrays),
// so every loop below runs across lanes and vectorizes. Lanes never interact: a fit's result does
// not depend on its neighbours, hence not on the thread count or batch composition.
#include "spotcore/fit.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <new>
#include <string>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "fastmath.h"
#include "internal.h"
#include "simd.h"

namespace spotcore {
namespace {

constexpr int W = 8;        // lanes per batch (one f32x8 in the explicit-vector loops)
constexpr int kMaxBox = 31;
constexpr int kMaxPix = kMaxBox * kMaxBox;
constexpr int kMaxEdge = kMaxBox + 1;
constexpr float kInvSqrt2 = 0.70710678f;
constexpr float kInvSqrt2Pi = 0.39894228f;
constexpr float kInvSqrtPi = 0.56418958f;
constexpr float kMinModel = 1e-6f;  // floor of the Poisson expectation (photons)

template <Model M> constexpr int num_params() { return M == Model::fixed_sigma ? 4 : (M == Model::elliptical ? 6 : 5); }

// Per-thread scratch, allocated once per call (no allocation per fit).
struct alignas(64) Batch {
    float d[kMaxPix][W];     // data in photons (MLE: + read-noise variance, clipped >= 0); 0 if invalid
    float w[kMaxPix][W];     // 1 for valid pixels, 0 outside the image
    float v[kMaxPix][W];     // read-noise variance in photons^2 (sCMOS), else 0
    float inv_d[kMaxPix][W]; // 1 / max(d, tiny), for the deviance
    // Per-axis tables: edge values and per-pixel profiles with derivatives.
    float erf_x[kMaxEdge][W], g_x[kMaxEdge][W], ug_x[kMaxEdge][W];
    float erf_y[kMaxEdge][W], g_y[kMaxEdge][W], ug_y[kMaxEdge][W];
    float ex[kMaxBox][W], dex[kMaxBox][W], dexs[kMaxBox][W];
    float ey[kMaxBox][W], dey[kMaxBox][W], deys[kMaxBox][W];
    float dsdz_x[W], dsdz_y[W];  // astigmatic: d sigma / d z of each axis
};

template <Model M>
struct Params {
    static constexpr int P = num_params<M>();
    static constexpr int H = P * (P + 1) / 2;
    float th[P][W];
};

// The start-value loops run on explicit 8-lane vectors (GCC's SLP left them mostly scalar). Each helper is
// the lane-wise form of the scalar expression it replaces, operation for operation: the same values.
typedef int32_t i32x8 __attribute__((vector_size(32)));
SPOTCORE_INLINE i32x8 finite8(f32x8 x) {
    i32x8 bits;
    std::memcpy(&bits, &x, sizeof bits);
    return (bits & 0x7fffffff) < 0x7f800000;
}
// std::max(x, lo) lane by lane: (x < lo) ? lo : x (NaN stays NaN, as in std::max(NaN, lo)).
SPOTCORE_INLINE f32x8 max8(f32x8 x, float lo) {
    const f32x8 l = f32x8{} + lo;
    return x < l ? l : x;
}

// Per-axis tables for centre c and sigma s of each lane.
SPOTCORE_INLINE void axis_tables(int K, const float* c, const float* s, float (*erf_e)[W], float (*g_e)[W],
                                 float (*ug_e)[W], float (*e)[W], float (*de)[W], float (*des)[W]) {
    float inv_sqrt2s[W], cpos[W], csig[W];
    for (int l = 0; l < W; ++l) {
        inv_sqrt2s[l] = kInvSqrt2 / s[l];
        cpos[l] = kInvSqrt2Pi / s[l];
        csig[l] = kInvSqrtPi / s[l];
    }
    for (int k = 0; k <= K; ++k) {
        const float edge = float(k) - 0.5f;
        for (int l = 0; l < W; ++l) {
            const float u = (edge - c[l]) * inv_sqrt2s[l];
            const float g = fastmath::exp_nonpositive(-u * u);
            erf_e[k][l] = fastmath::erf_with_gauss(u, g);
            g_e[k][l] = g;
            ug_e[k][l] = u * g;
        }
    }
    for (int j = 0; j < K; ++j)
        for (int l = 0; l < W; ++l) {
            e[j][l] = 0.5f * (erf_e[j + 1][l] - erf_e[j][l]);
            de[j][l] = -(g_e[j + 1][l] - g_e[j][l]) * cpos[l];
            des[j][l] = -(ug_e[j + 1][l] - ug_e[j][l]) * csig[l];
        }
}

// Width s(z) of one axis and ds/dz (Huang et al. 2008, Science 319:810). check_fit_options keeps the
// polynomial q positive over the calibrated range; the floor only guards the arithmetic.
SPOTCORE_INLINE void astig_width(float z, float s0, float c, float d, float a, float b, float& s, float& dsdz) {
    const float inv_d = 1.0f / d;
    const float u = (z - c) * inv_d, u2 = u * u;
    const float q = std::max(1.0f + u2 + a * u2 * u + b * u2 * u2, 1e-3f);
    const float r = std::sqrt(q);
    s = s0 * r;
    dsdz = s0 * (2.0f * u + 3.0f * a * u2 + 4.0f * b * u2 * u) * inv_d * (0.5f / r);
}

template <Model M>
SPOTCORE_INLINE void sigmas(Batch& b, const Params<M>& p, const FitOptions& o, float* sx, float* sy) {
    for (int l = 0; l < W; ++l) {
        if constexpr (M == Model::fixed_sigma) { sx[l] = o.psf_sigma; sy[l] = o.psf_sigma; }
        else if constexpr (M == Model::gauss) { sx[l] = p.th[4][l]; sy[l] = p.th[4][l]; }
        else if constexpr (M == Model::elliptical) { sx[l] = p.th[4][l]; sy[l] = p.th[5][l]; }
        else {
            const Astigmatism& a = o.astigmatism;
            astig_width(p.th[4][l], a.s0_x, a.c_x, a.d_x, a.a_x, a.b_x, sx[l], b.dsdz_x[l]);
            astig_width(p.th[4][l], a.s0_y, a.c_y, a.d_y, a.a_y, a.b_y, sy[l], b.dsdz_y[l]);
        }
    }
}

// Jacobian of mu at pixel (i, j) for every lane: J[a][l]; psf[l] = Ex(j) Ey(i).
template <Model M>
SPOTCORE_INLINE void jacobian(const Batch& b, const Params<M>& p, int i, int j, float (*J)[W], float* psf) {
    for (int l = 0; l < W; ++l) {
        const float ex = b.ex[j][l], ey = b.ey[i][l], n = p.th[2][l];
        psf[l] = ex * ey;
        J[0][l] = n * b.dex[j][l] * ey;
        J[1][l] = n * ex * b.dey[i][l];
        J[2][l] = ex * ey;
        J[3][l] = 1.0f;
        if constexpr (M == Model::gauss) J[4][l] = n * (b.dexs[j][l] * ey + ex * b.deys[i][l]);
        if constexpr (M == Model::elliptical) {
            J[4][l] = n * b.dexs[j][l] * ey;
            J[5][l] = n * ex * b.deys[i][l];
        }
        // Chain rule through the widths: dmu/dz = n (dEx/dsx dsx/dz Ey + Ex dEy/dsy dsy/dz).
        if constexpr (M == Model::astigmatic)
            J[4][l] = n * (b.dexs[j][l] * ey * b.dsdz_x[l] + ex * b.deys[i][l] * b.dsdz_y[l]);
    }
}

// acc_g += gf J, acc_h += hf J J^T (packed lower triangle) over the W = 8 lanes as explicit vectors
// (GCC's SLP missed this loop in some instantiations): one f32x8 per row in the AVX2 version (Wide),
// two f32x4 in the baseline one. Same per-lane arithmetic (multiply, then add): same results.
static_assert(W == 8, "accumulate works on 8 lanes");
template <int P, bool Wide>
SPOTCORE_INLINE void accumulate(const float (*J)[W], const float* gf, const float* hf, float (*acc_g)[W],
                                float (*acc_h)[W]) {
    if constexpr (Wide) {
        const f32x8 g = load8(gf), hw = load8(hf);
#pragma GCC unroll 6
        for (int a = 0; a < P; ++a) {
            const f32x8 ja = load8(J[a]);
            store8(acc_g[a], load8(acc_g[a]) + g * ja);
            const f32x8 hj = hw * ja;
            const int t0 = a * (a + 1) / 2;
#pragma GCC unroll 6
            for (int c = 0; c <= a; ++c) store8(acc_h[t0 + c], load8(acc_h[t0 + c]) + hj * load8(J[c]));
        }
    } else {
#pragma GCC unroll 6
        for (int a = 0; a < P; ++a) {
            const f32x4 j0 = load4(J[a]), j1 = load4(J[a] + 4);
            const f32x4 g0 = load4(acc_g[a]) + load4(gf) * j0, g1 = load4(acc_g[a] + 4) + load4(gf + 4) * j1;
            std::memcpy(acc_g[a], &g0, sizeof g0);
            std::memcpy(acc_g[a] + 4, &g1, sizeof g1);
            float hj[W];
            const f32x4 hj0 = load4(hf) * j0, hj1 = load4(hf + 4) * j1;
            std::memcpy(hj, &hj0, sizeof hj0);
            std::memcpy(hj + 4, &hj1, sizeof hj1);
            const int t0 = a * (a + 1) / 2;
#pragma GCC unroll 6
            for (int c = 0; c <= a; ++c) {
                const f32x4 h0 = load4(hj), h1 = load4(hj + 4);
                f32x4 s0 = load4(acc_h[t0 + c]) + h0 * load4(J[c]);
                f32x4 s1 = load4(acc_h[t0 + c] + 4) + h1 * load4(J[c] + 4);
                std::memcpy(acc_h[t0 + c], &s0, sizeof s0);
                std::memcpy(acc_h[t0 + c] + 4, &s1, sizeof s1);
            }
        }
    }
}

template <Model M>
SPOTCORE_INLINE void build_tables(Batch& b, const Params<M>& p, int K, const FitOptions& o, float* sx, float* sy) {
    float cx[W], cy[W];
    sigmas(b, p, o, sx, sy);
    for (int l = 0; l < W; ++l) { cx[l] = p.th[0][l]; cy[l] = p.th[1][l]; }
    axis_tables(K, cx, sx, b.erf_x, b.g_x, b.ug_x, b.ex, b.dex, b.dexs);
    axis_tables(K, cy, sy, b.erf_y, b.g_y, b.ug_y, b.ey, b.dey, b.deys);
}

// The astigmatic MLE saves the final pass: near the optimum (a step within kNear x the tolerance) it steps with
// the Fisher information sum J J^T / mu as its Hessian (Fisher scoring), and it sums the Pearson chi^2 as it
// goes, so the matrix, cost and chi^2 of the last accepted point are the results'. A lane stops when its next
// step is below the tolerance, without evaluating it: its results are those of the last accepted point
// (< tolerance from the next). Far from the optimum it keeps sum d/mu^2 J J^T: Fisher scoring's longer first
// steps sent 1 fit in 12,000 to the other z basin (tests/test_astigmatism.py). A batch still runs the final
// pass when a lane stopped with no Fisher-scoring evaluation. The 2D fits keep their path (their rows stay).
template <Model M, Estimator E>
constexpr bool fisher_scoring() { return M == Model::astigmatic && E == Estimator::mle; }
constexpr float kNear = 100.0f;

// Cost (MLE: Poisson deviance / 2; LSQ: sum of squares), gradient and approximate Hessian
// (MLE: sum d/mu^2 J J^T, Laurence & Chromy 2010, or the Fisher information, see fisher_scoring; LSQ: J^T J).
// With fisher_scoring: chi2 is Pearson's, and lanes with fisher_lane[l] accumulate the Fisher information.
template <Model M, Estimator E, bool Wide>
SPOTCORE_INLINE void evaluate(Batch& b, const Params<M>& p, int K, const FitOptions& o, float* cost,
                              float (*g)[W], float (*h)[W], float* chi2, const int* fisher_lane) {
    constexpr int P = Params<M>::P, H = Params<M>::H;
    float sx[W], sy[W];
    build_tables(b, p, K, o, sx, sy);
    float acc_c[W] = {}, acc_g[P][W] = {}, acc_h[H][W] = {}, acc_chi2[W] = {};
    for (int i = 0; i < K; ++i)
        for (int j = 0; j < K; ++j) {
            const int q = i * K + j;
            float J[P][W], psf[W], gf[W], hf[W];
            jacobian<M>(b, p, i, j, J, psf);
            for (int l = 0; l < W; ++l) {
                const float mu = p.th[3][l] + p.th[2][l] * psf[l];
                const float wt = b.w[q][l], d = b.d[q][l];
                if constexpr (E == Estimator::mle) {
                    float m = mu + b.v[q][l];
                    m = m > kMinModel ? m : kMinModel;
                    const float inv_m = 1.0f / m;
                    const float r = d * inv_m;
                    acc_c[l] += wt * ((m - d) - d * fastmath::log_positive(m * b.inv_d[q][l]));
                    gf[l] = wt * (1.0f - r);
                    if constexpr (fisher_scoring<M, E>()) {
                        hf[l] = fisher_lane[l] ? wt * inv_m : wt * r * inv_m;
                        acc_chi2[l] += wt * (d - m) * (d - m) * inv_m;
                    } else {
                        hf[l] = wt * r * inv_m;
                    }
                } else {
                    const float res = d - mu;
                    acc_c[l] += wt * res * res;
                    gf[l] = -wt * res;
                    hf[l] = wt;
                }
            }
            accumulate<P, Wide>(J, gf, hf, acc_g, acc_h);
        }
    for (int l = 0; l < W; ++l) cost[l] = acc_c[l];
    if constexpr (fisher_scoring<M, E>())
        for (int l = 0; l < W; ++l) chi2[l] = acc_chi2[l];
    for (int a = 0; a < P; ++a)
        for (int l = 0; l < W; ++l) g[a][l] = acc_g[a][l];
    for (int t = 0; t < H; ++t)
        for (int l = 0; l < W; ++l) h[t][l] = acc_h[t][l];
}

// The cost of evaluate() alone (no derivatives): scores the start values of z.
template <Model M, Estimator E>
SPOTCORE_INLINE void cost_only(Batch& b, const Params<M>& p, int K, const FitOptions& o, float* cost) {
    float sx[W], sy[W];
    build_tables(b, p, K, o, sx, sy);
    float acc_c[W] = {};
    for (int i = 0; i < K; ++i)
        for (int j = 0; j < K; ++j) {
            const int q = i * K + j;
            for (int l = 0; l < W; ++l) {
                const float mu = p.th[3][l] + p.th[2][l] * b.ex[j][l] * b.ey[i][l];
                const float wt = b.w[q][l], d = b.d[q][l];
                if constexpr (E == Estimator::mle) {
                    float m = mu + b.v[q][l];
                    m = m > kMinModel ? m : kMinModel;
                    acc_c[l] += wt * ((m - d) - d * fastmath::log_positive(m * b.inv_d[q][l]));
                } else {
                    const float res = d - mu;
                    acc_c[l] += wt * res * res;
                }
            }
        }
    for (int l = 0; l < W; ++l) cost[l] = acc_c[l];
}

// Start values of z. The data's second moments give an ellipticity m; the calibrated ellipticity
// e(z) = (vx - vy) / (vx + vy) is tabulated once per batch (it is the same for every lane). Each local minimum
// of |e(z) - m| is a candidate start: where e(z) = m has one solution (e is monotonic between the foci) that is
// the one basin, but e is not monotonic beyond the foci and comes nearest m at a range end, and there the
// likelihood can have a second basin (near the focus the widths are nearly equal on both sides; the box and
// the background pull m towards 0 for a wide PSF). Candidates, nearest first, at most kCand, are scored by cost
// and each lane keeps its lowest; a batch whose lanes all have one candidate skips the scoring. In practice
// nearly every lane has 3 (the crossing and both range ends): 2 cost passes per batch, the crossing's cost
// coming from the first full evaluation (docs/3d.md: instructions per fit before and after).
template <Model M, Estimator E>
SPOTCORE_INLINE void astig_start(Batch& b, Params<M>& p, int K, const FitOptions& o, const float* moment_e,
                                 float* alt_z, float* alt_cost) {
    const Astigmatism& a = o.astigmatism;
    constexpr int kGrid = 48, kCand = 3;
    float ge[kGrid + 1], gz[kGrid + 1];
    for (int k = 0; k <= kGrid; ++k) {
        const float z = a.z_min + (a.z_max - a.z_min) * float(k) / float(kGrid);
        float sx, sy, unused;
        astig_width(z, a.s0_x, a.c_x, a.d_x, a.a_x, a.b_x, sx, unused);
        astig_width(z, a.s0_y, a.c_y, a.d_y, a.a_y, a.b_y, sy, unused);
        // Pixel integration adds 1/12 px^2 to each second moment.
        const float vx = sx * sx + 1.0f / 12.0f, vy = sy * sy + 1.0f / 12.0f;
        gz[k] = z;
        ge[k] = (vx - vy) / (vx + vy);
    }
    float cand[kCand][W];
    int ncand[W], passes = 1;
    for (int l = 0; l < W; ++l) {
        const float m = moment_e[l];
        float cd[kCand];
        int n = 0;
        for (int k = 0; k <= kGrid; ++k) {
            const float dk = std::fabs(ge[k] - m);
            // Local minimum (a plateau counts once: strict on the left).
            if (!((k == 0 || dk < std::fabs(ge[k - 1] - m)) && (k == kGrid || dk <= std::fabs(ge[k + 1] - m))))
                continue;
            // Where e - m changes sign next to k, the crossing by linear interpolation (a start nearer the
            // optimum than the grid's 25 nm).
            float z = gz[k];
            if (k < kGrid && (ge[k] - m) * (ge[k + 1] - m) < 0.0f)
                z += (gz[k + 1] - gz[k]) * (m - ge[k]) / (ge[k + 1] - ge[k]);
            else if (k > 0 && (ge[k] - m) * (ge[k - 1] - m) < 0.0f)
                z += (gz[k - 1] - gz[k]) * (m - ge[k]) / (ge[k - 1] - ge[k]);
            // Insert by distance (nearest first), keeping the kCand nearest.
            int at = n < kCand ? n : kCand;
            while (at > 0 && dk < cd[at - 1]) --at;
            if (at >= kCand) continue;
            for (int c = std::min(n, kCand - 1); c > at; --c) { cd[c] = cd[c - 1]; cand[c][l] = cand[c - 1][l]; }
            cd[at] = dk;
            cand[at][l] = z;
            n = std::min(n + 1, kCand);
        }
        if (n == 0) { cand[0][l] = 0.5f * (a.z_min + a.z_max); n = 1; }  // NaN moments: the middle
        ncand[l] = n;
        passes = std::max(passes, n);
    }
    // Least squares also scores 4 z spread over the range, as the first version did: its unweighted cost at
    // the start's photons and background favours a wide PSF (a low peak), and with the candidates alone a
    // spot now and then went to the wrong basin (1 in 2,350 in tests/test_astigmatism.py::test_lsq_fits_z_too).
    // The MLE's cost did not (36,000 fits, tests above); the speed target is the MLE's.
    // The nearest candidate is the start; the others are scored here, and the caller switches a lane to its best
    // other one where that scores lower than the start (whose cost the first full evaluation gives).
    constexpr int kSpread = E == Estimator::lsq ? 4 : 0;
    float cost[W];
    for (int l = 0; l < W; ++l) {
        p.th[4][l] = cand[0][l];
        alt_z[l] = cand[0][l];
        alt_cost[l] = 3.0e38f;
    }
    for (int c = 1; c < passes + kSpread; ++c) {
        for (int l = 0; l < W; ++l)
            p.th[4][l] = c >= passes ? a.z_min + (a.z_max - a.z_min) * (float(c - passes) + 0.5f) / float(kSpread > 0 ? kSpread : 1)
                                     : (c < ncand[l] ? cand[c][l] : cand[0][l]);
        cost_only<M, E>(b, p, K, o, cost);
        for (int l = 0; l < W; ++l)
            if (cost[l] < alt_cost[l]) { alt_cost[l] = cost[l]; alt_z[l] = p.th[4][l]; }
    }
    for (int l = 0; l < W; ++l) p.th[4][l] = cand[0][l];
}

// Solve A x = rhs per lane by Cholesky; A packed lower-triangular (row a, col c <= a).
// ok[l] = 0 where A is not positive definite. inv_diag: if non-null, the diagonal of A^-1.
template <int P>
SPOTCORE_INLINE void cholesky_solve(const float (*a)[W], const float (*rhs)[W], float (*x)[W], int* ok,
                                    float (*inv_diag)[W]) {
    constexpr int H = P * (P + 1) / 2;
    float L[H][W], inv_ll[P][W];
    auto idx = [](int r, int c) { return r * (r + 1) / 2 + c; };
    for (int l = 0; l < W; ++l) ok[l] = 1;
    for (int r = 0; r < P; ++r)
        for (int c = 0; c <= r; ++c) {
            float s[W];
            for (int l = 0; l < W; ++l) s[l] = a[idx(r, c)][l];
            for (int k = 0; k < c; ++k)
                for (int l = 0; l < W; ++l) s[l] -= L[idx(r, k)][l] * L[idx(c, k)][l];
            if (r == c) {
                for (int l = 0; l < W; ++l) {
                    const bool good = s[l] > 0.0f && s[l] < 3.0e38f;  // false for NaN
                    ok[l] &= good;
                    L[idx(r, r)][l] = good ? std::sqrt(s[l]) : 1.0f;
                    inv_ll[r][l] = 1.0f / L[idx(r, r)][l];
                }
            } else {
                for (int l = 0; l < W; ++l) L[idx(r, c)][l] = s[l] * inv_ll[c][l];
            }
        }
    if (x) {
        float y[P][W];
        for (int r = 0; r < P; ++r) {
            float s[W];
            for (int l = 0; l < W; ++l) s[l] = rhs[r][l];
            for (int k = 0; k < r; ++k)
                for (int l = 0; l < W; ++l) s[l] -= L[idx(r, k)][l] * y[k][l];
            for (int l = 0; l < W; ++l) y[r][l] = s[l] * inv_ll[r][l];
        }
        for (int r = P - 1; r >= 0; --r) {
            float s[W];
            for (int l = 0; l < W; ++l) s[l] = y[r][l];
            for (int k = r + 1; k < P; ++k)
                for (int l = 0; l < W; ++l) s[l] -= L[idx(k, r)][l] * x[k][l];
            for (int l = 0; l < W; ++l) x[r][l] = s[l] * inv_ll[r][l];
        }
    }
    if (inv_diag) {
        // diag(A^-1)_col = sum_r (L^-1)_{r col}^2: forward-substitute each unit vector.
        for (int col = 0; col < P; ++col) {
            float z[P][W], acc[W] = {};
            for (int r = 0; r < P; ++r) {
                float s[W];
                for (int l = 0; l < W; ++l) s[l] = (r == col) ? 1.0f : 0.0f;
                for (int k = 0; k < r; ++k)
                    for (int l = 0; l < W; ++l) s[l] -= L[idx(r, k)][l] * z[k][l];
                for (int l = 0; l < W; ++l) {
                    z[r][l] = s[l] * inv_ll[r][l];
                    acc[l] += z[r][l] * z[r][l];
                }
            }
            for (int l = 0; l < W; ++l) inv_diag[col][l] = acc[l];
        }
    }
}

template <Model M, Estimator E, bool Wide>
SPOTCORE_INLINE void fit_batch_impl(Batch& b, const float* boxes, const float* variance, int64_t first,
                                    int64_t n, const FitOptions& o, FitResult* out) {
    constexpr int P = Params<M>::P, H = Params<M>::H;
    const int K = o.box, KK = K * K;
    const float psf_sigma = o.psf_sigma;
    int valid_count[W];
    float moment_e[W];  // astigmatic start: ellipticity of the excess's second moments
    float alt_z[W], alt_cost[W];  // astigmatic start: the best other z candidate and its cost
    // Load: lanes past the end repeat the last fit; their results are discarded. The copy is per lane (each
    // box is contiguous); everything after it runs with the lanes innermost, so that it vectorizes, and each
    // lane still sums its pixels in the same order (the same values as per-lane loops, bit for bit).
    for (int l = 0; l < W; ++l) {
        const int64_t f = std::min(first + l, n - 1);
        const float* src = boxes + f * KK;
        const float* var = variance ? variance + f * KK : nullptr;
        for (int q = 0; q < KK; ++q) {
            b.d[q][l] = src[q];
            b.v[q][l] = var ? var[q] : 0.0f;
        }
    }
    static_assert(W == 8, "the start-value loops work on 8 lanes");
    const f32x8 zero8 = {}, one8 = zero8 + 1.0f;
    i32x8 count8 = {};
    for (int q = 0; q < KK; ++q) {
        const f32x8 raw = load8(b.d[q]), var = load8(b.v[q]);
        const i32x8 ok = finite8(raw) & finite8(var);  // -1 where valid
        const f32x8 vq = ok ? max8(var, 0.0f) : zero8;
        f32x8 dq = ok ? raw : zero8;
        if constexpr (E == Estimator::mle) dq = max8(dq + vq, 0.0f);
        store8(b.d[q], dq);
        store8(b.w[q], ok ? one8 : zero8);
        store8(b.v[q], vq);
        store8(b.inv_d[q], one8 / max8(dq, 1e-20f));
        count8 -= ok;
    }
    for (int l = 0; l < W; ++l) valid_count[l] = count8[l];
    // Start values: background = mean of valid border pixels, photons = sum above it, centre =
    // centroid of the excess (PERFORMANCE.md: good starts cut iterations).
    Params<M> p;
    {
        f32x8 bsum = {}, bn = {};
        for (int q = 0; q < KK; ++q) {
            const int i = q / K, j = q % K;
            if (!(i == 0 || j == 0 || i == K - 1 || j == K - 1)) continue;
            const f32x8 w = load8(b.w[q]);
            bsum += w * (load8(b.d[q]) - load8(b.v[q]));
            bn += w;
        }
        f32x8 bg;
        for (int l = 0; l < W; ++l) bg[l] = bn[l] > 0.0f ? bsum[l] / bn[l] : 0.0f;
        f32x8 sum = {}, sx = {}, sy = {};
        for (int q = 0; q < KK; ++q) {
            const float qx = float(q % K), qy = float(q / K);
            const f32x8 e = load8(b.w[q]) * max8(load8(b.d[q]) - load8(b.v[q]) - bg, 0.0f);
            sum += e;
            sx += e * qx;
            sy += e * qy;
        }
        const float c = 0.5f * float(K - 1);
        for (int l = 0; l < W; ++l) {
            p.th[0][l] = sum[l] > 0.0f ? sx[l] / sum[l] : c;
            p.th[1][l] = sum[l] > 0.0f ? sy[l] / sum[l] : c;
            p.th[2][l] = std::max(sum[l], 1.0f);
            p.th[3][l] = (E == Estimator::mle) ? std::max(bg[l], 1e-3f) : bg[l];
            if constexpr (M != Model::astigmatic) {
                moment_e[l] = 0.0f;
                if constexpr (P >= 5) p.th[4][l] = psf_sigma;
                if constexpr (P >= 6) p.th[5][l] = psf_sigma;
            }
        }
    }
    if constexpr (M == Model::astigmatic) {
        // Second moments of the excess over the background.
        f32x8 mxx = {}, myy = {};
        const f32x8 cx = load8(p.th[0]), cy = load8(p.th[1]), bg = load8(p.th[3]);
        for (int q = 0; q < KK; ++q) {
            const float qx = float(q % K), qy = float(q / K);
            const f32x8 e = load8(b.w[q]) * max8(load8(b.d[q]) - load8(b.v[q]) - bg, 0.0f);
            const f32x8 dxq = qx - cx, dyq = qy - cy;
            mxx += e * dxq * dxq;
            myy += e * dyq * dyq;
        }
        for (int l = 0; l < W; ++l)
            moment_e[l] = (mxx[l] + myy[l]) > 0.0f ? (mxx[l] - myy[l]) / (mxx[l] + myy[l]) : 0.0f;
        astig_start<M, E>(b, p, K, o, moment_e, alt_z, alt_cost);
    }

    constexpr bool scoring = fisher_scoring<M, E>();
    float cost[W], g[P][W], h[H][W], cost_chi2[W];
    int h_fisher[W] = {};  // h is the Fisher information (fisher_scoring)
    evaluate<M, E, Wide>(b, p, K, o, cost, g, h, cost_chi2, h_fisher);
    if constexpr (M == Model::astigmatic) {
        int any_switch = 0;
        for (int l = 0; l < W; ++l) {
            const bool better = alt_cost[l] < cost[l];
            p.th[4][l] = better ? alt_z[l] : p.th[4][l];
            any_switch |= better;
        }
        if (any_switch) evaluate<M, E, Wide>(b, p, K, o, cost, g, h, cost_chi2, h_fisher);
    }
    float lambda[W];
    int active[W], iters[W];
    FitStatus status[W];
    for (int l = 0; l < W; ++l) {
        lambda[l] = 1e-3f;
        iters[l] = 0;
        const bool enough = valid_count[l] > P;
        active[l] = enough;
        status[l] = enough ? FitStatus::max_iterations : FitStatus::not_fitted;
    }
    const float lo_xy = -1.0f, hi_xy = float(K);
    const float lo_sigma = 0.2f, hi_sigma = float(K);
    const float z_lo = o.astigmatism.z_min, z_hi = o.astigmatism.z_max;
    // z converges when a step moves it by less than tolerance x the defocus scale d (nm).
    const float z_scale = 0.5f * (std::fabs(o.astigmatism.d_x) + std::fabs(o.astigmatism.d_y));
    Params<M> trial;
    float tcost[W], tg[P][W], th_[H][W], tchi2[W], a[H][W], rhs[P][W], delta[P][W];
    int solved[W];
    for (int it = 0; it < o.max_iterations; ++it) {
        int any = 0;
        for (int l = 0; l < W; ++l) any |= active[l];
        if (!any) break;
        // Marquardt damping: scale the diagonal by (1 + lambda).
        for (int t = 0; t < H; ++t)
            for (int l = 0; l < W; ++l) a[t][l] = h[t][l];
        for (int r = 0; r < P; ++r) {
            const int t = r * (r + 1) / 2 + r;
            for (int l = 0; l < W; ++l) a[t][l] = h[t][l] * (1.0f + lambda[l]) + 1e-12f;
            for (int l = 0; l < W; ++l) rhs[r][l] = -g[r][l];
        }
        cholesky_solve<P>(a, rhs, delta, solved, nullptr);
        for (int l = 0; l < W; ++l) {
            float x = p.th[0][l] + delta[0][l], y = p.th[1][l] + delta[1][l];
            trial.th[0][l] = std::min(std::max(x, lo_xy), hi_xy);
            trial.th[1][l] = std::min(std::max(y, lo_xy), hi_xy);
            trial.th[2][l] = std::max(p.th[2][l] + delta[2][l], 1.0f);
            const float bg = p.th[3][l] + delta[3][l];
            trial.th[3][l] = (E == Estimator::mle) ? std::max(bg, 1e-4f) : bg;
            if constexpr (M == Model::astigmatic)
                trial.th[4][l] = std::min(std::max(p.th[4][l] + delta[4][l], z_lo), z_hi);
            else
                for (int s = 4; s < P; ++s)
                    trial.th[s][l] = std::min(std::max(p.th[s][l] + delta[s][l], lo_sigma), hi_sigma);
        }
        int small[W], near[W];
        for (int l = 0; l < W; ++l) {
            const float dx = std::fabs(trial.th[0][l] - p.th[0][l]), dy = std::fabs(trial.th[1][l] - p.th[1][l]);
            const float dn = std::fabs(trial.th[2][l] - p.th[2][l]), db = std::fabs(trial.th[3][l] - p.th[3][l]);
            float ds = 0.0f;
            if constexpr (M == Model::astigmatic) ds = std::fabs(trial.th[4][l] - p.th[4][l]) / z_scale;
            else
                for (int s = 4; s < P; ++s) ds = std::max(ds, std::fabs(trial.th[s][l] - p.th[s][l]));
            const float tol = o.tolerance;
            small[l] = dx < tol && dy < tol && ds < tol && dn < tol * p.th[2][l] &&
                       db < tol * std::max(std::fabs(p.th[3][l]), 1.0f);
            const float tn = kNear * tol;
            near[l] = dx < tn && dy < tn && ds < tn && dn < tn * p.th[2][l] &&
                      db < tn * std::max(std::fabs(p.th[3][l]), 1.0f);
        }
        if constexpr (scoring) {
            any = 0;
            for (int l = 0; l < W; ++l) {
                if (active[l] && solved[l] && small[l]) {
                    ++iters[l];
                    active[l] = 0;
                    status[l] = FitStatus::converged;
                }
                any |= active[l];
            }
            if (!any) break;
        }
        evaluate<M, E, Wide>(b, trial, K, o, tcost, tg, th_, tchi2, near);
        int accept[W];
        for (int l = 0; l < W; ++l) {
            accept[l] = 0;
            if (!active[l]) continue;
            ++iters[l];
            const bool better = solved[l] && std::isfinite(tcost[l]) && tcost[l] <= cost[l];
            if (better) {
                accept[l] = 1;
                lambda[l] = std::max(lambda[l] * 0.1f, 1e-7f);
                cost[l] = tcost[l];
            } else {
                lambda[l] *= 10.0f;
            }
            if ((solved[l] && small[l]) || lambda[l] > 1e7f) {
                active[l] = 0;
                status[l] = FitStatus::converged;
            }
        }
        for (int s = 0; s < P; ++s)
            for (int l = 0; l < W; ++l) {
                p.th[s][l] = accept[l] ? trial.th[s][l] : p.th[s][l];
                g[s][l] = accept[l] ? tg[s][l] : g[s][l];
            }
        for (int t = 0; t < H; ++t)
            for (int l = 0; l < W; ++l) h[t][l] = accept[l] ? th_[t][l] : h[t][l];
        if constexpr (scoring)
            for (int l = 0; l < W; ++l) {
                cost_chi2[l] = accept[l] ? tchi2[l] : cost_chi2[l];
                h_fisher[l] = accept[l] ? near[l] : h_fisher[l];
            }
    }

    // Final pass: Fisher information sum J J^T / mu (Poisson), log-likelihood ratio, Pearson chi^2. With
    // fisher_scoring only where a lane's h is not the Fisher information, and for its matrix only.
    float sx[W], sy[W];
    float fisher[H][W] = {}, loglik[W] = {}, chi2[W] = {};
    int any_pass = !scoring;
    for (int l = 0; l < W; ++l) any_pass |= !h_fisher[l];
    if (any_pass) {
        float unused_g[P][W] = {};
        build_tables(b, p, K, o, sx, sy);
        for (int i = 0; i < K; ++i)
            for (int j = 0; j < K; ++j) {
                const int q = i * K + j;
                float J[P][W], psf[W], zero[W], hf[W];
                jacobian<M>(b, p, i, j, J, psf);
                for (int l = 0; l < W; ++l) {
                    float m = p.th[3][l] + p.th[2][l] * psf[l] + b.v[q][l];
                    m = m > kMinModel ? m : kMinModel;
                    const float wt = b.w[q][l];
                    // Data with read-noise variance added (for LSQ b.d has no variance and may be < 0).
                    float d = b.d[q][l];
                    if constexpr (E == Estimator::lsq) d = std::max(d + b.v[q][l], 0.0f);
                    const float inv_m = 1.0f / m;
                    const float dev = d > 0.0f ? d * fastmath::log_positive(m / std::max(d, 1e-20f)) : 0.0f;
                    loglik[l] -= wt * ((m - d) - dev);
                    chi2[l] += wt * (d - m) * (d - m) * inv_m;
                    zero[l] = 0.0f;
                    hf[l] = wt * inv_m;
                }
                accumulate<P, Wide>(J, zero, hf, unused_g, fisher);
            }
    } else {
        sigmas(b, p, o, sx, sy);
    }
    if constexpr (scoring)
        for (int l = 0; l < W; ++l) {
            loglik[l] = -cost[l];
            chi2[l] = cost_chi2[l];
            if (h_fisher[l])
                for (int t = 0; t < H; ++t) fisher[t][l] = h[t][l];
        }
    float inv_diag[P][W];
    int pd[W];
    cholesky_solve<P>(fisher, nullptr, nullptr, pd, inv_diag);

    const float half = 0.5f * float(K - 1);
    for (int l = 0; l < W && first + l < n; ++l) {
        FitResult& r = out[first + l];
        r.x = p.th[0][l];
        r.y = p.th[1][l];
        r.photons = p.th[2][l];
        r.background = p.th[3][l];
        r.sigma_x = sx[l];
        r.sigma_y = sy[l];
        const float nan = std::numeric_limits<float>::quiet_NaN();
        auto bound = [&](int s) { return pd[l] ? std::sqrt(std::max(inv_diag[s][l], 0.0f)) : nan; };
        r.crlb_x = bound(0);
        r.crlb_y = bound(1);
        r.crlb_photons = bound(2);
        r.crlb_background = bound(3);
        r.crlb_sigma_x = P >= 5 ? bound(4) : 0.0f;
        r.crlb_sigma_y = P == 6 ? bound(5) : (P == 5 ? bound(4) : 0.0f);
        r.z = nan;
        r.crlb_z = nan;
        if constexpr (M == Model::astigmatic) {
            r.z = p.th[4][l];
            r.crlb_z = bound(4);
            r.crlb_sigma_x = std::fabs(b.dsdz_x[l]) * r.crlb_z;
            r.crlb_sigma_y = std::fabs(b.dsdz_y[l]) * r.crlb_z;
        }
        r.loglik = loglik[l];
        r.chi2 = chi2[l];
        r.iterations = iters[l];
        FitStatus st = status[l];
        if (st != FitStatus::not_fitted) {
            bool finite = std::isfinite(r.x) && std::isfinite(r.y) && std::isfinite(r.photons) &&
                          std::isfinite(r.background) && std::isfinite(r.sigma_x) && std::isfinite(r.sigma_y);
            finite = finite && std::isfinite(r.loglik) && std::isfinite(r.chi2);  // float32 overflow on absurd data
            // Fisher entries underflow on absurd data (e.g. 1e34 photons/px): an infinite bound is no bound.
            for (int s = 0; s < P; ++s) finite = finite && std::isfinite(bound(s));
            if (!finite || !pd[l]) st = FitStatus::singular;
            else if (std::fabs(r.x - half) > half + 0.5f || std::fabs(r.y - half) > half + 0.5f) st = FitStatus::out_of_box;
            // A sigma clamped at its bound did not find its optimum, and an uncertainty wider than the box is
            // no position: neither is a fit one can use, even where the iteration stopped cleanly.
            else if constexpr (M == Model::astigmatic) {
                if (r.z <= z_lo || r.z >= z_hi) st = FitStatus::z_out_of_range;
                else if (st == FitStatus::converged && (r.crlb_x > float(K) || r.crlb_y > float(K)))
                    st = FitStatus::unreliable;
            }
            else if (st == FitStatus::converged &&
                     ((P >= 5 && (r.sigma_x <= lo_sigma || r.sigma_x >= hi_sigma || r.sigma_y <= lo_sigma ||
                                  r.sigma_y >= hi_sigma)) ||
                      r.crlb_x > float(K) || r.crlb_y > float(K)))
                st = FitStatus::unreliable;
        }
        if (st == FitStatus::not_fitted || st == FitStatus::singular) {
            r.crlb_x = r.crlb_y = r.crlb_photons = r.crlb_background = nan;
            r.crlb_sigma_x = r.crlb_sigma_y = nan;
            r.crlb_z = nan;
        }
        r.status = st;
    }
}

using BatchFn = void (*)(Batch&, const float*, const float*, int64_t, int64_t, const FitOptions&, FitResult*);

// Each model/estimator twice: an AVX2+FMA version (8-wide accumulation) and a baseline x86-64 one,
// chosen at run time (cpu_is_v3). FMA contraction stays off in both (-ffp-contract=off).
#define SPOTCORE_BATCH(NAME, MODEL, EST)                                                                     \
    SPOTCORE_V3 void NAME##_v3(Batch& b, const float* boxes, const float* var, int64_t first, int64_t n,  \
                               const FitOptions& o, FitResult* out) {                                        \
        fit_batch_impl<MODEL, EST, SPOTCORE_HAVE_V3 == 1>(b, boxes, var, first, n, o, out);                   \
    }                                                                                                        \
    void NAME(Batch& b, const float* boxes, const float* var, int64_t first, int64_t n, const FitOptions& o, \
              FitResult* out) {                                                                              \
        fit_batch_impl<MODEL, EST, false>(b, boxes, var, first, n, o, out);                                  \
    }
SPOTCORE_BATCH(batch_fixed_lsq, Model::fixed_sigma, Estimator::lsq)
SPOTCORE_BATCH(batch_fixed_mle, Model::fixed_sigma, Estimator::mle)
SPOTCORE_BATCH(batch_gauss_lsq, Model::gauss, Estimator::lsq)
SPOTCORE_BATCH(batch_gauss_mle, Model::gauss, Estimator::mle)
SPOTCORE_BATCH(batch_ellip_lsq, Model::elliptical, Estimator::lsq)
SPOTCORE_BATCH(batch_ellip_mle, Model::elliptical, Estimator::mle)
SPOTCORE_BATCH(batch_astig_lsq, Model::astigmatic, Estimator::lsq)
SPOTCORE_BATCH(batch_astig_mle, Model::astigmatic, Estimator::mle)
#undef SPOTCORE_BATCH

BatchFn select_batch(const FitOptions& o) {
    const bool mle = o.estimator == Estimator::mle, v3 = cpu_is_v3();
    switch (o.model) {
        case Model::fixed_sigma:
            return mle ? (v3 ? batch_fixed_mle_v3 : batch_fixed_mle) : (v3 ? batch_fixed_lsq_v3 : batch_fixed_lsq);
        case Model::gauss:
            return mle ? (v3 ? batch_gauss_mle_v3 : batch_gauss_mle) : (v3 ? batch_gauss_lsq_v3 : batch_gauss_lsq);
        case Model::elliptical:
            return mle ? (v3 ? batch_ellip_mle_v3 : batch_ellip_mle) : (v3 ? batch_ellip_lsq_v3 : batch_ellip_lsq);
        case Model::astigmatic:
            return mle ? (v3 ? batch_astig_mle_v3 : batch_astig_mle) : (v3 ? batch_astig_lsq_v3 : batch_astig_lsq);
    }
    return nullptr;
}

}  // namespace

int thread_count(int requested) {
#ifdef _OPENMP
    const int n = requested > 0 ? requested : omp_get_max_threads();
#else
    const int n = requested;
#endif
    return std::max(1, std::min(n, kMaxThreads));
}

Result check_fit_options(const FitOptions& o) {
    if (o.box < 3 || o.box > kMaxBox || o.box % 2 == 0)
        return Result::invalid("box must be an odd number between 3 and 31, got " + std::to_string(o.box));
    if (!(o.psf_sigma > 0.0f) || !std::isfinite(o.psf_sigma))
        return Result::invalid("psf_sigma must be a positive finite number of pixels");
    if (o.max_iterations < 1) return Result::invalid("max_iterations must be >= 1");
    if (!(o.tolerance > 0.0f) || !std::isfinite(o.tolerance)) return Result::invalid("tolerance must be > 0");
    if (o.model != Model::fixed_sigma && o.model != Model::gauss && o.model != Model::elliptical &&
        o.model != Model::astigmatic)
        return Result::invalid("unknown model");
    if (o.model == Model::astigmatic) {
        const Astigmatism& a = o.astigmatism;
        const float v[] = {a.s0_x, a.c_x, a.d_x, a.a_x, a.b_x, a.s0_y, a.c_y, a.d_y, a.a_y, a.b_y, a.z_min, a.z_max};
        for (float x : v)
            if (!std::isfinite(x)) return Result::invalid("astigmatism: every coefficient must be finite");
        if (!(a.s0_x > 0.0f && a.s0_y > 0.0f && a.d_x > 0.0f && a.d_y > 0.0f))
            return Result::invalid("astigmatism: s0 and d must be > 0");
        if (!(a.z_min < a.z_max)) return Result::invalid("astigmatism: z_min must be < z_max");
        // The widths must be real and positive over the whole range (q > 0 in s = s0 sqrt(q)).
        for (int k = 0; k <= 256; ++k) {
            const float z = a.z_min + (a.z_max - a.z_min) * float(k) / 256.0f;
            const float ux = (z - a.c_x) / a.d_x, uy = (z - a.c_y) / a.d_y;
            const float qx = 1.0f + ux * ux + a.a_x * ux * ux * ux + a.b_x * ux * ux * ux * ux;
            const float qy = 1.0f + uy * uy + a.a_y * uy * uy * uy + a.b_y * uy * uy * uy * uy;
            if (!(qx > 1e-3f && qy > 1e-3f))
                return Result::invalid("astigmatism: the widths s(z) are not positive over [z_min, z_max]");
        }
    }
    if (o.estimator != Estimator::lsq && o.estimator != Estimator::mle) return Result::invalid("unknown estimator");
    return Result::success();
}

Result fit_boxes(const float* boxes, const float* variance, int64_t n, const FitOptions& o, FitResult* results) {
    Result check = check_fit_options(o);
    if (!check.ok()) return check;
    if (n < 0) return Result::invalid("number of boxes must be >= 0");
    if (n == 0) return Result::success();
    if (!boxes || !results) return Result::invalid("fit_boxes: null pointer");
    const BatchFn fn = select_batch(o);
    const int64_t batches = (n + W - 1) / W;
    bool alloc_failed = false;
#ifdef _OPENMP
    const int threads = thread_count(o.threads);
#pragma omp parallel num_threads(threads) if (batches > 1)
#endif
    {
        std::unique_ptr<Batch> scratch(new (std::nothrow) Batch);
        if (!scratch) {
            detail::raise_shared_flag(alloc_failed);
        }
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 8)
#endif
        for (int64_t k = 0; k < batches; ++k)
            if (scratch) fn(*scratch, boxes, variance, k * W, n, o, results);
    }
    if (alloc_failed) return {Status::out_of_memory, "fit_boxes: could not allocate scratch"};
    return Result::success();
}

}  // namespace spotcore
