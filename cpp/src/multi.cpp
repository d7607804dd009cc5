#include "spotcore/multi.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <new>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "internal.h"
#include "simd.h"
#include "spotcore/filter.h"

namespace spotcore {
namespace {

constexpr int kMaxParams = 3 * kMaxEmitters + 1;
constexpr double kMinBackground = 1e-3;
constexpr double kMinPhotons = 1.0;
constexpr double kMaxCrlbInSigma = 0.3;   // largest Cramer-Rao bound (x or y) of a converged emitter, x psf_sigma
constexpr double kLoglikTolerance = 1e-3;

// erf by cubic Hermite interpolation of a table of erf and its derivative at steps of 1/128 on [0, 6]:
// error < 1e-10 (h^4 / 384 times the fourth derivative's maximum), a few flops instead of libm's erf
// (which calls exp twice).
struct ErfTable {
    static constexpr int kPerUnit = 128, kSize = 6 * kPerUnit + 2;
    double f[kSize], d[kSize];  // d: the derivative times the step
    ErfTable() {
        for (int k = 0; k < kSize; ++k) {
            const double x = double(k) / kPerUnit;
            f[k] = std::erf(x);
            d[k] = 2.0 / std::sqrt(M_PI) * std::exp(-x * x) / kPerUnit;
        }
    }
};
const ErfTable kErfTable;

double erf_table(double x) {
    const double ax = std::fabs(x);
    if (!(ax < 6.0)) return std::isnan(x) ? x : std::copysign(1.0, x);
    const double u = ax * ErfTable::kPerUnit;
    const int k = int(u);
    const double s = u - k, t = 1.0 - s;
    const double v = (1.0 + 2.0 * s) * t * t * kErfTable.f[k] + s * t * t * kErfTable.d[k] +
                     s * s * (3.0 - 2.0 * s) * kErfTable.f[k + 1] - s * s * t * kErfTable.d[k + 1];
    return std::copysign(v, x);
}

// Pixel-integrated 1D Gaussian of unit mass and its derivative in the centre, pixels 0..n-1.
void integrated(double c, double sigma, int n, double* e, double* de) {
    const double is2 = 1.0 / (std::sqrt(2.0) * sigma), norm = 1.0 / (std::sqrt(2.0 * M_PI) * sigma);
    const double i2s2 = 1.0 / (2.0 * sigma * sigma);
    double lo = -0.5 - c;
    double erf_lo = erf_table(lo * is2), exp_lo = std::exp(-lo * lo * i2s2);
    // exp(-(h+1)^2 k) = exp(-h^2 k) q with q = exp(-(2h+1) k), and q itself steps by exp(-2k): two exp
    // calls per row instead of one per edge; exact again every 8 edges (rounding) and near under/overflow.
    thread_local double last_sigma = -1, step = 0;  // exp(-2k) depends on sigma only
    if (sigma != last_sigma) {
        step = std::exp(-2.0 * i2s2);
        last_sigma = sigma;
    }
    double q = 0;
    for (int j = 0; j < n; ++j) {
        const double hi = j + 0.5 - c;
        const double erf_hi = erf_table(hi * is2);
        if (j % 8 == 0) q = std::exp(-(2.0 * lo + 1.0) * i2s2);
        const bool exact = j % 8 == 7 || !(exp_lo > 1e-200) || !(q < 1e200);  // no 0 * q, no overflow
        const double exp_hi = exact ? std::exp(-hi * hi * i2s2) : exp_lo * q;
        q *= step;
        e[j] = 0.5 * (erf_hi - erf_lo);
        de[j] = norm * (exp_lo - exp_hi);
        erf_lo = erf_hi;
        exp_lo = exp_hi;
        lo = hi;
    }
}

// Upper tail of chi^2 with 3 degrees of freedom.
double chi2_3_sf(double x) {
    if (x <= 0) return 1.0;
    return std::erfc(std::sqrt(x / 2)) + std::sqrt(2 * x / M_PI) * std::exp(-x / 2);
}
// The chi^2(3) value whose upper tail is p (bisection; remembered per thread for the last p).
double chi2_3_critical(double p) {
    thread_local double last_p = -1, last_x = 0;
    if (p == last_p) return last_x;
    double lo = 0, hi = 1000;
    for (int i = 0; i < 200; ++i) {
        const double mid = 0.5 * (lo + hi);
        (chi2_3_sf(mid) > p ? lo : hi) = mid;
    }
    last_p = p;
    last_x = 0.5 * (lo + hi);
    return last_x;
}

// In-place Cholesky of a P x P symmetric matrix (lower triangle); false if not positive definite.
bool cholesky(double* a, int P) {
    for (int j = 0; j < P; ++j) {
        double s = a[j * P + j];
        for (int k = 0; k < j; ++k) s -= a[j * P + k] * a[j * P + k];
        if (!(s > 0) || !std::isfinite(s)) return false;
        const double d = std::sqrt(s);
        a[j * P + j] = d;
        for (int i = j + 1; i < P; ++i) {
            double t = a[i * P + j];
            for (int k = 0; k < j; ++k) t -= a[i * P + k] * a[j * P + k];
            a[i * P + j] = t / d;
        }
    }
    return true;
}
void cholesky_solve(const double* l, int P, double* x) {
    for (int i = 0; i < P; ++i) {
        double t = x[i];
        for (int k = 0; k < i; ++k) t -= l[i * P + k] * x[k];
        x[i] = t / l[i * P + i];
    }
    for (int i = P - 1; i >= 0; --i) {
        double t = x[i];
        for (int k = i + 1; k < P; ++k) t -= l[k * P + i] * x[k];
        x[i] = t / l[i * P + i];
    }
}

typedef double f64x4 __attribute__((vector_size(32)));

// Sums over the region's pixels (np, a multiple of 4; padding and NaN pixels have w = r = 0) for the
// scoring step: g[a] = sum r J_a, F[a][b] = sum w J_a J_b (upper triangle). J is P rows of np; wj is
// scratch of the same size. Explicit 4-lane sums in a fixed order: the same answer in both clones.
SPOTCORE_CLONES void normal_sums(const double* jac, const double* w, const double* r, int P, int np, double* wj,
                                 double* g, double* fisher) {
    for (int a = 0; a < P; ++a) {
        const double* ja = jac + size_t(a) * np;
        double* wa = wj + size_t(a) * np;
        f64x4 acc = {0, 0, 0, 0};
        for (int p = 0; p < np; p += 4) {
            f64x4 x, y, z;
            std::memcpy(&x, ja + p, sizeof x);
            std::memcpy(&y, w + p, sizeof y);
            std::memcpy(&z, r + p, sizeof z);
            const f64x4 v = x * y;
            std::memcpy(wa + p, &v, sizeof v);
            acc += z * x;
        }
        g[a] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    }
    for (int a = 0; a < P; ++a) {
        const double* wa = wj + size_t(a) * np;
        int b = a;
        for (; b + 4 <= P; b += 4) {  // four entries per pass over w J_a
            const double* jb = jac + size_t(b) * np;
            f64x4 acc0 = {0, 0, 0, 0}, acc1 = acc0, acc2 = acc0, acc3 = acc0;
            for (int p = 0; p < np; p += 4) {
                f64x4 x, y0, y1, y2, y3;
                std::memcpy(&x, wa + p, sizeof x);
                std::memcpy(&y0, jb + p, sizeof y0);
                std::memcpy(&y1, jb + np + p, sizeof y1);
                std::memcpy(&y2, jb + 2 * size_t(np) + p, sizeof y2);
                std::memcpy(&y3, jb + 3 * size_t(np) + p, sizeof y3);
                acc0 += x * y0;
                acc1 += x * y1;
                acc2 += x * y2;
                acc3 += x * y3;
            }
            fisher[a * P + b] = (acc0[0] + acc0[1]) + (acc0[2] + acc0[3]);
            fisher[a * P + b + 1] = (acc1[0] + acc1[1]) + (acc1[2] + acc1[3]);
            fisher[a * P + b + 2] = (acc2[0] + acc2[1]) + (acc2[2] + acc2[3]);
            fisher[a * P + b + 3] = (acc3[0] + acc3[1]) + (acc3[2] + acc3[3]);
        }
        for (; b < P; ++b) {
            const double* jb = jac + size_t(b) * np;
            f64x4 acc = {0, 0, 0, 0};
            for (int p = 0; p < np; p += 4) {
                f64x4 x, y;
                std::memcpy(&x, wa + p, sizeof x);
                std::memcpy(&y, jb + p, sizeof y);
                acc += x * y;
            }
            fisher[a * P + b] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
        }
    }
}

// The joint model of one region: parameters (x, y, N) per emitter, then the background.
struct JointModel {
    int S = 0, K = 0, P = 0, np = 0;
    double sigma = 1;
    const float* data = nullptr;
    const float* offset = nullptr;
    // Per-thread scratch, grown once: no allocation per fit.
    double *ex, *dex, *ey, *dey;  // K * S each
    double *jac, *wj, *w, *r;     // P * np, P * np, np, np

    void attach(std::vector<double>& ws) {
        np = (S * S + 3) & ~3;
        const size_t need = size_t(4 * K * S + 2 * P * np + 2 * np);
        if (ws.size() < need) ws.resize(need);
        ex = ws.data();
        dex = ex + K * S;
        ey = dex + K * S;
        dey = ey + K * S;
        jac = dey + K * S;
        wj = jac + size_t(P) * np;
        w = wj + size_t(P) * np;
        r = w + np;
    }

    double last[kMaxParams];
    bool have_last = false;
    void setup(const double* th) {
        // normal() follows loglik() at the accepted point: the edge values are already there.
        if (have_last && std::equal(th, th + P, last)) return;
        std::copy(th, th + P, last);
        have_last = true;
        for (int k = 0; k < K; ++k) {
            integrated(th[3 * k], sigma, S, &ex[k * S], &dex[k * S]);
            integrated(th[3 * k + 1], sigma, S, &ey[k * S], &dey[k * S]);
        }
    }
    // Expected photons per pixel into w[] (the weights' slot; normal() overwrites it), built row by row
    // from the separable emitter profiles.
    void model(const double* th) {
        for (int i = 0; i < S; ++i) {
            double* row = w + i * S;
            for (int j = 0; j < S; ++j) row[j] = th[3 * K] + (offset ? double(offset[i * S + j]) : 0.0);
            for (int k = 0; k < K; ++k) {
                const double c = th[3 * k + 2] * ey[k * S + i];
                const double* exk = ex + k * S;
                for (int j = 0; j < S; ++j) row[j] += c * exk[j];
            }
        }
    }
    // Poisson log-likelihood ratio to the saturated model (data clipped at 0).
    double loglik(const double* th) {
        setup(th);
        model(th);
        double ll = 0;
        for (int p = 0; p < S * S; ++p) {
            const float d0 = data[p];
            if (std::isnan(d0)) continue;
            const double d = std::max(0.0, double(d0)), m = std::max(w[p], 1e-9);
            ll += (d > 0 ? d * std::log(m / d) : 0.0) - (m - d);
        }
        return ll;
    }
    // Gradient of the log-likelihood and the Fisher matrix (upper+lower filled) at th.
    void normal(const double* th, double* g, double* fisher, double* chi2) {
        setup(th);
        model(th);
        for (int k = 0; k < K; ++k) {
            const double n = th[3 * k + 2];
            const double *exk = ex + k * S, *dexk = dex + k * S;
            double *jx = jac + size_t(3 * k) * np, *jy = jx + np, *jn = jy + np;
            for (int i = 0; i < S; ++i) {
                const double cx = n * ey[k * S + i], cy = n * dey[k * S + i], cn = ey[k * S + i];
                for (int j = 0; j < S; ++j) {
                    jx[i * S + j] = cx * dexk[j];
                    jy[i * S + j] = cy * exk[j];
                    jn[i * S + j] = cn * exk[j];
                }
            }
        }
        std::fill(jac + size_t(3 * K) * np, jac + size_t(3 * K) * np + S * S, 1.0);
        double c2 = 0;
        for (int p = 0; p < S * S; ++p) {
            const float d0 = data[p];
            if (std::isnan(d0)) {
                w[p] = r[p] = 0.0;
                continue;
            }
            const double d = std::max(0.0, double(d0)), m = std::max(w[p], 1e-9);
            w[p] = 1.0 / m;
            r[p] = d * w[p] - 1.0;
            c2 += (d - m) * (d - m) * w[p];
        }
        for (int p = S * S; p < np; ++p) {
            w[p] = r[p] = 0.0;
            for (int a = 0; a < P; ++a) jac[size_t(a) * np + p] = 0.0;
        }
        normal_sums(jac, w, r, P, np, wj, g, fisher);
        for (int a = 0; a < P; ++a)
            for (int b = 0; b < a; ++b) fisher[a * P + b] = fisher[b * P + a];
        if (chi2) *chi2 = c2;
    }
};

// Keeps parameters physical: photons and background positive, centres within a pixel of the region.
void constrain(double* th, const double* prev, int K, int S) {
    for (int k = 0; k < K; ++k) {
        th[3 * k] = std::min(std::max(th[3 * k], -1.5), S + 0.5);
        th[3 * k + 1] = std::min(std::max(th[3 * k + 1], -1.5), S + 0.5);
        if (!(th[3 * k + 2] >= kMinPhotons)) th[3 * k + 2] = std::max(kMinPhotons, 0.3 * prev[3 * k + 2]);
    }
    if (!(th[3 * K] >= kMinBackground)) th[3 * K] = std::max(kMinBackground, 0.3 * prev[3 * K]);
}

}  // namespace

Result check_multi_options(const MultiOptions& m) {
    if (m.max_emitters < 1 || m.max_emitters > kMaxEmitters)
        return Result::invalid("max_emitters must be in 1.." + std::to_string(kMaxEmitters) + ", got " +
                               std::to_string(m.max_emitters));
    if (!(m.p_value > 0 && m.p_value < 1)) return Result::invalid("p_value must be in (0, 1)");
    if (m.cycles < 0 || m.cycles > 10) return Result::invalid("cycles must be in 0..10");
    if (!(m.redetect_factor > 0) || !std::isfinite(m.redetect_factor))
        return Result::invalid("redetect_factor must be positive");
    if (!(m.merge_distance >= 0) || !std::isfinite(m.merge_distance))
        return Result::invalid("merge_distance must be >= 0");
    return Result::success();
}

Result fit_emitters(const float* region, const float* offset, int32_t S, const FitOptions& fit, const Emitter* start,
                    int32_t K, RegionFit& out) {
    if (!region || !start || K < 1 || K > kMaxEmitters || S < 3 || S > 31 || !(fit.psf_sigma > 0))
        return Result::invalid("fit_emitters: bad arguments");
    const int P = 3 * K + 1;
    out.emitters.assign(size_t(K), EmitterFit{});
    JointModel mdl;
    mdl.S = S;
    mdl.K = K;
    mdl.P = P;
    mdl.sigma = fit.psf_sigma;
    mdl.data = region;
    mdl.offset = offset;
    thread_local std::vector<double> workspace;
    try {
        mdl.attach(workspace);
    } catch (const std::bad_alloc&) {
        return {Status::out_of_memory, "out of memory in fit_emitters"};
    }
    // Start: background = lower quartile of the region minus the offset; the starts' photons as given.
    thread_local std::vector<float> vals;  // no allocation per fit once grown
    vals.clear();
    for (int p = 0; p < S * S; ++p)
        if (!std::isnan(region[p])) vals.push_back(region[p] - (offset ? offset[p] : 0.0f));
    const float nan = std::numeric_limits<float>::quiet_NaN();
    if (int(vals.size()) < P + 1) {
        for (auto& e : out.emitters) e = EmitterFit{nan, nan, nan, nan, nan, nan, FitStatus::not_fitted};
        out.background = out.crlb_background = nan;
        out.loglik = out.chi2 = nan;
        out.iterations = 0;
        out.converged = false;
        return Result::success();
    }
    std::nth_element(vals.begin(), vals.begin() + vals.size() / 4, vals.end());
    double th[kMaxParams], trial[kMaxParams], g[kMaxParams], fisher[kMaxParams * kMaxParams],
        a[kMaxParams * kMaxParams];
    for (int k = 0; k < K; ++k) {
        th[3 * k] = start[k].x;
        th[3 * k + 1] = start[k].y;
        th[3 * k + 2] = std::max(double(start[k].photons), 10.0);
    }
    th[3 * K] = std::max(double(vals[vals.size() / 4]), 1.0);
    constrain(th, th, K, S);

    double ll = mdl.loglik(th), lambda = 1e-3;
    bool converged = false;
    int it = 0;
    for (; it < fit.max_iterations && !converged; ++it) {
        mdl.normal(th, g, fisher, nullptr);
        bool accepted = false;
        for (int tries = 0; tries < 12 && !accepted; ++tries) {
            std::copy(fisher, fisher + P * P, a);
            for (int p = 0; p < P; ++p) a[p * P + p] *= 1.0 + lambda;
            std::copy(g, g + P, trial);
            if (!cholesky(a, P)) {
                lambda *= 10;
                continue;
            }
            cholesky_solve(a, P, trial);
            double step[kMaxParams];
            std::copy(trial, trial + P, step);
            for (int p = 0; p < P; ++p) trial[p] = th[p] + step[p];
            constrain(trial, th, K, S);
            const double ll_new = mdl.loglik(trial);
            if (std::isfinite(ll_new) && ll_new >= ll - 1e-9 * std::fabs(ll)) {
                double move = 0;
                for (int k = 0; k < K; ++k) {
                    move = std::max(move, std::fabs(trial[3 * k] - th[3 * k]));
                    move = std::max(move, std::fabs(trial[3 * k + 1] - th[3 * k + 1]));
                    move = std::max(move, std::fabs(trial[3 * k + 2] - th[3 * k + 2]) / th[3 * k + 2]);
                }
                move = std::max(move, std::fabs(trial[3 * K] - th[3 * K]) / th[3 * K]);
                std::copy(trial, trial + P, th);
                // A gain far below the LR test's scale (chi^2/2 ~ 15 at p = 1e-6) changes no decision.
                converged = move < fit.tolerance || ll_new - ll < kLoglikTolerance;
                ll = ll_new;
                lambda = std::max(lambda * 0.1, 1e-7);
                accepted = true;
            } else {
                lambda *= 10;
            }
        }
        if (!accepted) {  // no step improves: at a (possibly constrained) optimum
            converged = true;
            ++it;
            break;
        }
    }
    // Cramer-Rao bounds: diagonal of the inverse joint Fisher matrix at the estimate.
    double chi2 = 0;
    mdl.normal(th, g, fisher, &chi2);
    std::copy(fisher, fisher + P * P, a);
    const bool pd = cholesky(a, P);
    // F = L L^T: diag(F^-1)_p = sum_i (L^-1)_ip^2, from the columns of L^-1 (forward substitution).
    double var[kMaxParams];
    std::fill(var, var + P, pd ? 0.0 : nan);
    for (int c = 0; pd && c < P; ++c) {
        double col[kMaxParams];  // column c of L^-1: zero above row c
        for (int i = c; i < P; ++i) {
            double t = i == c ? 1.0 : 0.0;
            for (int k = c; k < i; ++k) t -= a[i * P + k] * col[k];
            col[i] = t / a[i * P + i];
            var[c] += col[i] * col[i];
        }
    }
    out.background = float(th[3 * K]);
    out.crlb_background = float(std::sqrt(var[3 * K]));
    out.loglik = ll;
    out.chi2 = chi2;
    out.iterations = it;
    out.converged = converged;
    // A bound over 0.3 of the PSF width: the emitter is not told apart from its neighbours (on EPFL HD
    // these sit between truths and lift the RMSE; an isolated spot needs only ~20-100 photons to be under it).
    const float crlb_max = std::min(float(S), float(kMaxCrlbInSigma * fit.psf_sigma));
    for (int k = 0; k < K; ++k) {
        EmitterFit& e = out.emitters[size_t(k)];
        e.x = float(th[3 * k]);
        e.y = float(th[3 * k + 1]);
        e.photons = float(th[3 * k + 2]);
        e.crlb_x = float(std::sqrt(var[3 * k]));
        e.crlb_y = float(std::sqrt(var[3 * k + 1]));
        e.crlb_photons = float(std::sqrt(var[3 * k + 2]));
        const bool inside = e.x >= -0.5f && e.x <= S - 0.5f && e.y >= -0.5f && e.y <= S - 0.5f;
        // Pixels near FLT_MAX fit to photons or a background beyond float: non-physical, never "converged".
        const bool finite = std::isfinite(e.photons) && std::isfinite(out.background);
        if (!pd || !std::isfinite(e.crlb_x) || !std::isfinite(e.crlb_y) || !std::isfinite(e.crlb_photons))
            e.status = FitStatus::singular;
        else if (!inside || !finite || !(e.photons > float(kMinPhotons)))
            e.status = FitStatus::out_of_box;
        else if (!converged)
            e.status = FitStatus::max_iterations;
        else if (e.crlb_x > crlb_max || e.crlb_y > crlb_max)
            e.status = FitStatus::unreliable;
        else
            e.status = FitStatus::converged;
    }
    return Result::success();
}

Result fit_region(const float* region, const float* offset, int32_t S, const FitOptions& fit,
                  const MultiOptions& multi, const Emitter* start, int32_t count, RegionFit& out) {
    Result r = check_multi_options(multi);
    if (!r.ok()) return r;
    if (count < 1 || count > multi.max_emitters) return Result::invalid("fit_region: 1..max_emitters starts");
    r = fit_emitters(region, offset, S, fit, start, count, out);
    if (!r.ok() || !std::isfinite(out.loglik)) return r;
    const double critical = chi2_3_critical(multi.p_value);
    Emitter next[kMaxEmitters];
    std::copy(start, start + count, next);
    RegionFit bigger, trial;
    std::vector<double> resid(size_t(S * S));
    for (int K = count; K < multi.max_emitters; ++K) {
        // The new emitter starts at the maximum of the residual, smoothed over 3x3 against single-pixel noise.
        std::vector<double> ex(size_t(K * S)), dex(size_t(K * S)), ey(size_t(K * S)), dey(size_t(K * S));
        for (int k = 0; k < K; ++k) {
            const EmitterFit& e = out.emitters[size_t(k)];
            next[k] = Emitter{e.x, e.y, e.photons};
            integrated(e.x, fit.psf_sigma, S, &ex[size_t(k * S)], &dex[size_t(k * S)]);
            integrated(e.y, fit.psf_sigma, S, &ey[size_t(k * S)], &dey[size_t(k * S)]);
        }
        for (int i = 0; i < S; ++i)
            for (int j = 0; j < S; ++j) {
                const float d = region[i * S + j];
                double m = out.background + (offset ? offset[i * S + j] : 0.0f);
                for (int k = 0; k < K; ++k)
                    m += out.emitters[size_t(k)].photons * ex[size_t(k * S + j)] * ey[size_t(k * S + i)];
                resid[size_t(i * S + j)] = std::isnan(d) ? 0.0 : d - m;
            }
        double best = -std::numeric_limits<double>::infinity();
        int bi = -1, bj = -1;
        for (int i = 0; i < S; ++i)
            for (int j = 0; j < S; ++j) {
                if (std::isnan(region[i * S + j])) continue;
                double s = 0;
                for (int di = -1; di <= 1; ++di)
                    for (int dj = -1; dj <= 1; ++dj) {
                        const int ii = i + di, jj = j + dj;
                        if (ii >= 0 && ii < S && jj >= 0 && jj < S) s += resid[size_t(ii * S + jj)];
                    }
                if (s > best) {
                    best = s;
                    bi = i;
                    bj = j;
                }
            }
        if (bi < 0 || !(best > 0)) break;
        // 3x3 sum of a Gaussian of N photons ~ N * (erf(1.5/(sqrt2 sigma)))^2.
        const double f = std::erf(1.5 / (std::sqrt(2.0) * fit.psf_sigma));
        next[K] = Emitter{float(bj), float(bi), float(best / (f * f))};
        r = fit_emitters(region, offset, S, fit, next, K + 1, bigger);
        if (!r.ok()) return r;
        int near = 0;
        double dmin = std::numeric_limits<double>::infinity();
        for (int k = 0; k < K; ++k) {
            const double d2 = (next[k].x - bj) * (next[k].x - bj) + (next[k].y - bi) * (next[k].y - bi);
            if (d2 < dmin) {
                dmin = d2;
                near = k;
            }
        }
        if (K == 1 && !(std::isfinite(bigger.loglik) && 2.0 * (bigger.loglik - out.loglik) > critical)) {
            // Two emitters closer than ~1.5 sigma look like one: its fit sits between them and the residual's
            // maximum on one side, a start from which the pair rarely separates. Second start: split the
            // emitter into two mirrored about its centre, half the photons each. Only for 1 -> 2: it costs
            // a fit, and on EPFL HD it found nothing more from larger models.
            double vx = bj - next[near].x, vy = bi - next[near].y;
            // Half the separation within 0.25..0.75 sigma, towards the maximum (along x if on the emitter).
            const double len = std::sqrt(vx * vx + vy * vy);
            const double half = std::min(std::max(len, 0.25 * fit.psf_sigma), 0.75 * fit.psf_sigma);
            vx = len > 0 ? vx * half / len : half;
            vy = len > 0 ? vy * half / len : 0.0;
            Emitter split[kMaxEmitters];
            std::copy(next, next + K, split);
            const Emitter e = next[near];
            split[near] = Emitter{float(e.x - vx), float(e.y - vy), 0.5f * e.photons};
            split[K] = Emitter{float(e.x + vx), float(e.y + vy), 0.5f * e.photons};
            r = fit_emitters(region, offset, S, fit, split, K + 1, trial);
            if (!r.ok()) return r;
            if (std::isfinite(trial.loglik) && !(trial.loglik <= bigger.loglik)) std::swap(bigger, trial);
        }
        if (!std::isfinite(bigger.loglik) || 2.0 * (bigger.loglik - out.loglik) <= critical) break;
        std::swap(out, bigger);
    }
    return Result::success();
}

namespace {

struct FrameEmitter {
    double x, y;  // image pixels
    EmitterFit fit;
    float background, crlb_background, loglik, chi2;
    int32_t iterations, region, n_in_group, peak_row, peak_col;
};

// Adds the emitters' expected photons (no background) to `img` (rows x cols, or a window of it at
// (r0, c0) of size h x w), each within 4 sigma + 1 px of its centre.
void render(const std::vector<FrameEmitter>& em, const std::vector<char>* skip, double sigma, int64_t r0, int64_t c0,
            int64_t h, int64_t w, float* img) {
    const int R = int(std::ceil(4 * sigma)) + 1, n = 2 * R + 1;
    std::vector<double> exv(size_t(4 * n));
    double *ex = exv.data(), *dex = ex + n, *ey = dex + n, *dey = ey + n;
    for (size_t k = 0; k < em.size(); ++k) {
        if (skip && (*skip)[k]) continue;
        const FrameEmitter& e = em[k];
        const int64_t ci = int64_t(std::lround(e.y)) - R, cj = int64_t(std::lround(e.x)) - R;
        if (ci + n <= r0 || ci >= r0 + h || cj + n <= c0 || cj >= c0 + w) continue;
        integrated(e.x - double(cj), sigma, n, ex, dex);
        integrated(e.y - double(ci), sigma, n, ey, dey);
        for (int i = 0; i < n; ++i) {
            const int64_t ii = ci + i - r0;
            if (ii < 0 || ii >= h) continue;
            for (int j = 0; j < n; ++j) {
                const int64_t jj = cj + j - c0;
                if (jj < 0 || jj >= w) continue;
                img[ii * w + jj] += float(e.fit.photons * ex[j] * ey[i]);
            }
        }
    }
}

// Log-likelihood ratio of the best flat background (plus offset) in a region: Newton steps on b.
double background_loglik(const float* region, const float* offset, int S) {
    double b = 0;
    int n = 0;
    for (int p = 0; p < S * S; ++p)
        if (!std::isnan(region[p])) {
            b += std::max(0.0f, region[p]) - offset[p];
            ++n;
        }
    b = std::max(n ? b / n : 1.0, kMinBackground);
    for (int it = 0; it < 30; ++it) {
        double g = 0, c = 0;
        for (int p = 0; p < S * S; ++p) {
            if (std::isnan(region[p])) continue;
            const double d = std::max(0.0f, region[p]), m = b + offset[p];
            g += d / m - 1;
            c += d / (m * m);
        }
        if (!(c > 0)) break;
        const double nb = std::max(kMinBackground, b + g / c);
        if (std::fabs(nb - b) < 1e-6 * b) {
            b = nb;
            break;
        }
        b = nb;
    }
    double ll = 0;
    for (int p = 0; p < S * S; ++p) {
        if (std::isnan(region[p])) continue;
        const double d = std::max(0.0f, region[p]), m = b + offset[p];
        ll += (d > 0 ? d * std::log(m / d) : 0.0) - (m - d);
    }
    return ll;
}

// Cuts an S x S region centred on (row, col): NaN outside the image.
void cut(const float* photons, int64_t rows, int64_t cols, int row, int col, int S, float* out) {
    const int h = S / 2;
    for (int i = 0; i < S; ++i)
        for (int j = 0; j < S; ++j) {
            const int64_t r = row - h + i, c = col - h + j;
            out[i * S + j] = (r < 0 || r >= rows || c < 0 || c >= cols) ? std::numeric_limits<float>::quiet_NaN()
                                                                        : photons[r * cols + c];
        }
}

// Drops the dimmer of any two usable emitters closer than `dist` px (in list order: deterministic).
void merge(std::vector<FrameEmitter>& em, double dist) {
    if (dist <= 0) return;
    std::vector<char> gone(em.size(), 0);
    const double d2 = dist * dist;
    for (size_t a = 0; a < em.size(); ++a) {
        if (gone[a]) continue;
        for (size_t b = a + 1; b < em.size(); ++b) {
            if (gone[b]) continue;
            const double dx = em[a].x - em[b].x, dy = em[a].y - em[b].y;
            if (dx * dx + dy * dy >= d2) continue;
            if (em[b].fit.photons > em[a].fit.photons) {
                gone[a] = 1;
                break;
            }
            gone[b] = 1;
        }
    }
    size_t w = 0;
    for (size_t k = 0; k < em.size(); ++k)
        if (!gone[k]) em[w++] = em[k];
    em.resize(w);
}

FrameEmitter frame_emitter(const RegionFit& rf, size_t k, int row, int col, int S, int32_t region) {
    FrameEmitter e;
    e.fit = rf.emitters[k];
    e.x = double(e.fit.x) + col - S / 2;
    e.y = double(e.fit.y) + row - S / 2;
    e.background = rf.background;
    e.crlb_background = rf.crlb_background;
    e.loglik = float(rf.loglik);
    e.chi2 = float(rf.chi2);
    e.iterations = rf.iterations;
    e.region = region;
    e.n_in_group = int32_t(rf.emitters.size());
    e.peak_row = row;
    e.peak_col = col;
    return e;
}

// One frame: regions at the detected peaks with model selection, keeping in each region the emitters
// nearest to its own peak; then residual re-detection cycles; then merging of duplicates.
Result localize_frame(const float* photons, int64_t rows, int64_t cols, const LocalizeOptions& opt,
                      const MultiOptions& multi, std::vector<float>& w1, std::vector<float>& w2,
                      std::vector<float>& scratch, std::vector<FrameEmitter>& em) {
    const int S = opt.fit.box;
    const double sigma = opt.fit.psf_sigma;
    const int64_t npix = rows * cols;
    wavelet_filter(photons, rows, cols, w1.data(), w2.data(), scratch.data());
    float thr = opt.detect.threshold;
    if (opt.detect.mode == ThresholdMode::std_w1) thr = float(opt.detect.threshold * standard_deviation(w1.data(), npix));
    std::vector<Peak> peaks;
    Result r = find_local_maxima(w2.data(), rows, cols, thr, opt.detect.min_distance, opt.detect.border, peaks);
    if (!r.ok()) return r;
    std::vector<float> region(size_t(S * S)), offset(size_t(S * S));
    RegionFit rf;
    const int h = S / 2;
    for (size_t p = 0; p < peaks.size(); ++p) {
        cut(photons, rows, cols, peaks[p].row, peaks[p].col, S, region.data());
        const float c = region[size_t(h * S + h)];
        Emitter st{float(h), float(h), float(std::max(1.0f, c) * 2 * M_PI * sigma * sigma)};
        r = fit_region(region.data(), nullptr, S, opt.fit, multi, &st, 1, rf);
        if (!r.ok()) return r;
        for (size_t k = 0; k < rf.emitters.size(); ++k) {
            const FrameEmitter e = frame_emitter(rf, k, peaks[p].row, peaks[p].col, S, int32_t(p));
            // An emitter that left the region is better found on the residual (its own peak may be hidden).
            const FitStatus st_k = rf.emitters[k].status;
            if (st_k == FitStatus::not_fitted || st_k == FitStatus::out_of_box || st_k == FitStatus::singular) continue;
            // Owned by the nearest peak (ties: the first), so a spot fitted in several regions is kept once.
            double own = (e.x - peaks[p].col) * (e.x - peaks[p].col) + (e.y - peaks[p].row) * (e.y - peaks[p].row);
            bool mine = true;
            for (size_t q = 0; q < peaks.size() && mine; ++q) {
                if (q == p) continue;
                const double dq = (e.x - peaks[q].col) * (e.x - peaks[q].col) + (e.y - peaks[q].row) * (e.y - peaks[q].row);
                mine = dq > own || (dq == own && q > p);
            }
            if (mine) em.push_back(e);
        }
    }
    const double merge_px = multi.merge_distance * sigma;
    merge(em, merge_px);
    int32_t next_region = int32_t(peaks.size());
    std::vector<float> resid(static_cast<size_t>(npix));
    std::vector<char> inside;
    const double critical = chi2_3_critical(multi.p_value);
    for (int cycle = 0; cycle < multi.cycles; ++cycle) {
        std::copy(photons, photons + npix, resid.begin());
        std::vector<float> model(size_t(npix), 0.0f);
        render(em, nullptr, sigma, 0, 0, rows, cols, model.data());
        for (int64_t p = 0; p < npix; ++p) resid[size_t(p)] -= model[size_t(p)];
        wavelet_filter(resid.data(), rows, cols, w1.data(), w2.data(), scratch.data());
        std::vector<Peak> fresh;
        r = find_local_maxima(w2.data(), rows, cols, thr * multi.redetect_factor, opt.detect.min_distance,
                              opt.detect.border, fresh);
        if (!r.ok()) return r;
        const double near = std::max(1.0, merge_px);
        bool added = false;
        for (const Peak& q : fresh) {
            bool taken = false;
            for (const FrameEmitter& e : em)
                if ((e.x - q.col) * (e.x - q.col) + (e.y - q.row) * (e.y - q.row) < near * near) {
                    taken = true;
                    break;
                }
            if (taken) continue;
            // Refit jointly the emitters in the region nearest to the new peak (up to max_emitters - 1);
            // the others contribute as a fixed offset.
            const double r0 = q.row - h, c0 = q.col - h;
            std::vector<std::pair<double, size_t>> local;
            for (size_t k = 0; k < em.size(); ++k) {
                const double x = em[k].x - c0, y = em[k].y - r0;
                if (x >= -0.5 && x <= S - 0.5 && y >= -0.5 && y <= S - 0.5)
                    local.push_back({(em[k].x - q.col) * (em[k].x - q.col) + (em[k].y - q.row) * (em[k].y - q.row), k});
            }
            std::sort(local.begin(), local.end());
            if (int(local.size()) > multi.max_emitters - 1) local.resize(size_t(multi.max_emitters - 1));
            inside.assign(em.size(), 0);
            for (const auto& l : local) inside[l.second] = 1;
            std::fill(offset.begin(), offset.end(), 0.0f);
            // Emitters outside the refit add their photons; render skips those marked in `skip`.
            render(em, &inside, sigma, int64_t(r0), int64_t(c0), S, S, offset.data());
            cut(photons, rows, cols, q.row, q.col, S, region.data());
            Emitter st[kMaxEmitters];
            int K = 0;
            for (const auto& l : local) {
                const FrameEmitter& e = em[l.second];
                st[K++] = Emitter{float(e.x - c0), float(e.y - r0), e.fit.photons};
            }
            RegionFit without, with;
            double ll_without = 0;
            if (K > 0) {
                r = fit_emitters(region.data(), offset.data(), S, opt.fit, st, K, without);
                if (!r.ok()) return r;
                ll_without = without.loglik;
            } else {
                ll_without = background_loglik(region.data(), offset.data(), S);
            }
            const float res_c = resid[size_t(q.row * cols + q.col)];
            st[K] = Emitter{float(h), float(h), float(std::max(1.0f, res_c) * 2 * M_PI * sigma * sigma)};
            r = fit_emitters(region.data(), offset.data(), S, opt.fit, st, K + 1, with);
            if (!r.ok()) return r;
            if (!std::isfinite(with.loglik) || !std::isfinite(ll_without) ||
                2.0 * (with.loglik - ll_without) <= critical)
                continue;
            const int32_t reg = next_region++;
            for (int k = 0; k < K; ++k) {
                FrameEmitter& e = em[local[size_t(k)].second];
                e = frame_emitter(with, size_t(k), q.row, q.col, S, reg);
            }
            em.push_back(frame_emitter(with, size_t(K), q.row, q.col, S, reg));
            added = true;
        }
        merge(em, merge_px);
        if (!added) break;
    }
    // Frame order: by region, then position in it.
    std::stable_sort(em.begin(), em.end(), [](const FrameEmitter& a, const FrameEmitter& b) { return a.region < b.region; });
    return Result::success();
}

}  // namespace

Result localize_multi(const ImageStack& s, const Camera& cam, const LocalizeOptions& opt, const MultiOptions& multi,
                      int64_t first_frame, std::vector<MultiLocalization>& out) {
    Result r = detail::check_stack(s);
    if (!r.ok()) return r;
    r = detail::check_camera(cam);
    if (!r.ok()) return r;
    r = check_fit_options(opt.fit);
    if (!r.ok()) return r;
    r = check_multi_options(multi);
    if (!r.ok()) return r;
    if (!std::isfinite(opt.detect.threshold)) return Result::invalid("threshold must be finite");
    if (opt.detect.mode != ThresholdMode::std_w1 && opt.detect.mode != ThresholdMode::absolute)
        return Result::invalid("unknown threshold mode");
    if (s.frames == 0) return Result::success();
    const int64_t rows = s.rows, cols = s.cols, npix = rows * cols;
    std::vector<std::vector<FrameEmitter>> frames;
    std::vector<Result> failures;
    try {
        frames.resize(size_t(s.frames));
        failures.resize(size_t(s.frames));
    } catch (const std::bad_alloc&) {
        return {Status::out_of_memory, "out of memory in localize_multi"};
    }
#ifdef _OPENMP
    const int threads = thread_count(opt.fit.threads);
#pragma omp parallel num_threads(threads) if (s.frames > 1)
#endif
    {
        detail::FrameBuffers buf;
        const bool ok_alloc = buf.allocate(npix);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t f = 0; f < s.frames; ++f) {
            if (!ok_alloc) {
                failures[size_t(f)] = {Status::out_of_memory, "out of memory in localize_multi"};
                continue;
            }
            try {
                detail::convert_frame(s, f, cam, buf.photons.data());
                failures[size_t(f)] = localize_frame(buf.photons.data(), rows, cols, opt, multi, buf.w1, buf.w2,
                                                     buf.scratch, frames[size_t(f)]);
            } catch (const std::bad_alloc&) {
                failures[size_t(f)] = {Status::out_of_memory, "out of memory in localize_multi"};
            }
        }
    }
    for (const Result& f : failures)
        if (!f.ok()) return f;
    try {
        for (int64_t f = 0; f < s.frames; ++f) {
            for (const FrameEmitter& e : frames[size_t(f)]) {
                MultiLocalization m;
                m.loc.frame = first_frame + f;
                m.loc.peak_row = e.peak_row;
                m.loc.peak_col = e.peak_col;
                FitResult& fr = m.loc.fit;
                const float sg = opt.fit.psf_sigma, nan = std::numeric_limits<float>::quiet_NaN();
                fr = FitResult{float(e.x), float(e.y), e.fit.photons, e.background, sg, sg, e.fit.crlb_x, e.fit.crlb_y,
                               e.fit.crlb_photons, e.crlb_background, 0.0f, 0.0f, e.loglik, e.chi2, e.iterations,
                               e.fit.status, nan, nan};
                m.group = (first_frame + f) * kGroupsPerFrame + e.region;
                m.n_in_group = e.n_in_group;
                out.push_back(m);
            }
        }
    } catch (const std::bad_alloc&) {
        return {Status::out_of_memory, "out of memory in localize_multi"};
    }
    return Result::success();
}

}  // namespace spotcore
