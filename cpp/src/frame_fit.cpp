// Whole-frame joint fit of many emitters from given starts (spotcore/frame_fit.h).
#include "spotcore/frame_fit.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <new>
#include <string>

#include "internal.h"
#include "spotcore/fit.h"

namespace spotcore {
namespace {

// One emitter's window and its separable profiles: ex[j] is the fraction of its photons in column c0 + j,
// dex[j] that fraction's derivative in x; likewise rows.
struct Profile {
    int64_t c0, r0;
    int wc, wr;
};

struct Work {
    int64_t rows, cols, n;
    int W;   // window side 2*window+1 (clipped to the frame)
    double sigma;
    std::vector<Profile> prof;
    std::vector<double> ex, dex, ey, dey;   // n * W each
    std::vector<double> weight;             // per pixel: 1 / max(data, 1)
    std::vector<double> model, u;           // per pixel

    void profiles(int64_t k, const double*& x, const double*& dx, const double*& y, const double*& dy) const {
        const size_t at = size_t(k * W);
        x = &ex[at];
        dx = &dex[at];
        y = &ey[at];
        dy = &dey[at];
    }
};

void profile_1d(double c, double sigma, int64_t first, int w, double* e, double* de) {
    const double is2 = 1.0 / (std::sqrt(2.0) * sigma), norm = 1.0 / (std::sqrt(2.0 * M_PI) * sigma);
    double lo = double(first) - 0.5 - c;
    double erf_lo = std::erf(lo * is2), g_lo = std::exp(-lo * lo * 0.5 / (sigma * sigma));
    for (int j = 0; j < w; ++j) {
        const double hi = lo + 1.0;
        const double erf_hi = std::erf(hi * is2), g_hi = std::exp(-hi * hi * 0.5 / (sigma * sigma));
        e[j] = 0.5 * (erf_hi - erf_lo);
        de[j] = norm * (g_lo - g_hi);
        lo = hi;
        erf_lo = erf_hi;
        g_lo = g_hi;
    }
}

int64_t window_start(double c, int window, int64_t size, int W) {
    const int64_t s = int64_t(std::lround(c)) - window;
    return std::clamp<int64_t>(s, 0, size - W);
}

// Profiles and model at theta = (x, y, N) per emitter, then background last.
void evaluate(Work& w, const std::vector<double>& th, int window) {
    std::fill(w.model.begin(), w.model.end(), th[3 * w.n]);
    for (int64_t k = 0; k < w.n; ++k) {
        Profile& p = w.prof[size_t(k)];
        p.wc = int(std::min<int64_t>(w.W, w.cols));
        p.wr = int(std::min<int64_t>(w.W, w.rows));
        p.c0 = window_start(th[3 * k], window, w.cols, p.wc);
        p.r0 = window_start(th[3 * k + 1], window, w.rows, p.wr);
        double* ex = &w.ex[size_t(k * w.W)];
        double* ey = &w.ey[size_t(k * w.W)];
        profile_1d(th[3 * k], w.sigma, p.c0, p.wc, ex, &w.dex[size_t(k * w.W)]);
        profile_1d(th[3 * k + 1], w.sigma, p.r0, p.wr, ey, &w.dey[size_t(k * w.W)]);
        const double N = th[3 * k + 2];
        for (int a = 0; a < p.wr; ++a) {
            double* m = &w.model[size_t((p.r0 + a) * w.cols + p.c0)];
            const double s = N * ey[a];
            for (int b = 0; b < p.wc; ++b) m[b] += s * ex[b];
        }
    }
}

double chi2(const Work& w, const float* data, const std::vector<double>& th, const float* x0, const float* y0,
            double kappa) {
    double s = 0;
    for (int64_t k = 0; k < w.n; ++k) {
        const double dx = th[size_t(3 * k)] - x0[k], dy = th[size_t(3 * k + 1)] - y0[k];
        s += kappa * (dx * dx + dy * dy);
    }
    for (size_t i = 0; i < w.model.size(); ++i) {
        const double r = w.model[i] - data[i];
        s += w.weight[i] * r * r;
    }
    return s;
}

// u = J v (per pixel), for v = (dx, dy, dN) per emitter then background.
void jac_times(Work& w, const std::vector<double>& th, const double* v) {
    std::fill(w.u.begin(), w.u.end(), v[3 * w.n]);
    for (int64_t k = 0; k < w.n; ++k) {
        const Profile& p = w.prof[size_t(k)];
        const double *ex, *dex, *ey, *dey;
        w.profiles(k, ex, dex, ey, dey);
        const double N = th[3 * k + 2], vx = v[3 * k] * N, vy = v[3 * k + 1] * N, vn = v[3 * k + 2];
        for (int a = 0; a < p.wr; ++a) {
            double* u = &w.u[size_t((p.r0 + a) * w.cols + p.c0)];
            const double cy = vx * ey[a], cdy = vy * dey[a] + vn * ey[a];
            for (int b = 0; b < p.wc; ++b) u[b] += cy * dex[b] + cdy * ex[b];
        }
    }
}

// out = J^T (weight * u): the per-parameter sums over each emitter's window, background last.
void jac_t_times(const Work& w, const std::vector<double>& th, const std::vector<double>& pix, double* out) {
    double sb = 0;
    for (size_t i = 0; i < pix.size(); ++i) sb += pix[i];
    out[3 * w.n] = sb;
    for (int64_t k = 0; k < w.n; ++k) {
        const Profile& p = w.prof[size_t(k)];
        const double *ex, *dex, *ey, *dey;
        w.profiles(k, ex, dex, ey, dey);
        double sx = 0, sy = 0, sn = 0;
        for (int a = 0; a < p.wr; ++a) {
            const double* q = &pix[size_t((p.r0 + a) * w.cols + p.c0)];
            double qx = 0, qe = 0;
            for (int b = 0; b < p.wc; ++b) {
                qx += q[b] * dex[b];
                qe += q[b] * ex[b];
            }
            sx += ey[a] * qx;
            sy += dey[a] * qe;
            sn += ey[a] * qe;
        }
        const double N = th[3 * k + 2];
        out[3 * k] = N * sx;
        out[3 * k + 1] = N * sy;
        out[3 * k + 2] = sn;
    }
}

// Each emitter's 3x3 block of J^T W J (upper triangle: xx, xy, xn, yy, yn, nn) and the background's diagonal.
void blocks(const Work& w, const std::vector<double>& th, std::vector<double>& blk, double& bb) {
    bb = 0;
    for (double x : w.weight) bb += x;
    for (int64_t k = 0; k < w.n; ++k) {
        const Profile& p = w.prof[size_t(k)];
        const double *ex, *dex, *ey, *dey;
        w.profiles(k, ex, dex, ey, dey);
        const double N = th[3 * k + 2];
        double s[6] = {0, 0, 0, 0, 0, 0};
        for (int a = 0; a < p.wr; ++a) {
            const double* wt = &w.weight[size_t((p.r0 + a) * w.cols + p.c0)];
            for (int b = 0; b < p.wc; ++b) {
                const double jx = N * ey[a] * dex[b], jy = N * dey[a] * ex[b], jn = ey[a] * ex[b];
                s[0] += wt[b] * jx * jx;
                s[1] += wt[b] * jx * jy;
                s[2] += wt[b] * jx * jn;
                s[3] += wt[b] * jy * jy;
                s[4] += wt[b] * jy * jn;
                s[5] += wt[b] * jn * jn;
            }
        }
        std::copy(s, s + 6, &blk[size_t(6 * k)]);
    }
}

// Inverse of a symmetric 3x3 (upper triangle a) into full 9; false if not positive definite.
bool invert3(const double* a, double* inv) {
    const double m00 = a[0], m01 = a[1], m02 = a[2], m11 = a[3], m12 = a[4], m22 = a[5];
    const double c00 = m11 * m22 - m12 * m12, c01 = m02 * m12 - m01 * m22, c02 = m01 * m12 - m02 * m11;
    const double det = m00 * c00 + m01 * c01 + m02 * c02;
    if (!(det > 0) || !(m00 > 0)) return false;
    const double id = 1.0 / det;
    inv[0] = c00 * id;
    inv[1] = inv[3] = c01 * id;
    inv[2] = inv[6] = c02 * id;
    inv[4] = (m00 * m22 - m02 * m02) * id;
    inv[5] = inv[7] = (m02 * m01 - m00 * m12) * id;
    inv[8] = (m00 * m11 - m01 * m01) * id;
    return true;
}

// Gauss-Jordan inverse of a small dense SPD matrix (P x P, row-major) in place; false if singular.
bool invert_small(std::vector<double>& a, int P) {
    std::vector<double> inv(size_t(P * P), 0.0);
    for (int i = 0; i < P; ++i) inv[size_t(i * P + i)] = 1.0;
    for (int c = 0; c < P; ++c) {
        int piv = c;
        for (int r = c + 1; r < P; ++r)
            if (std::fabs(a[size_t(r * P + c)]) > std::fabs(a[size_t(piv * P + c)])) piv = r;
        const double d = a[size_t(piv * P + c)];
        if (!(std::fabs(d) > 1e-300)) return false;
        if (piv != c)
            for (int j = 0; j < P; ++j) {
                std::swap(a[size_t(c * P + j)], a[size_t(piv * P + j)]);
                std::swap(inv[size_t(c * P + j)], inv[size_t(piv * P + j)]);
            }
        const double id = 1.0 / a[size_t(c * P + c)];
        for (int j = 0; j < P; ++j) {
            a[size_t(c * P + j)] *= id;
            inv[size_t(c * P + j)] *= id;
        }
        for (int r = 0; r < P; ++r) {
            if (r == c) continue;
            const double f = a[size_t(r * P + c)];
            if (f == 0) continue;
            for (int j = 0; j < P; ++j) {
                a[size_t(r * P + j)] -= f * a[size_t(c * P + j)];
                inv[size_t(r * P + j)] -= f * inv[size_t(c * P + j)];
            }
        }
    }
    a.swap(inv);
    return true;
}

}  // namespace

Result check_starts_options(const StartsOptions& o) {
    if (o.max_iterations < 1 || o.max_iterations > 1000) return Result::invalid("max_iterations must be in 1..1000");
    if (!(o.tolerance > 0 && o.tolerance < 1)) return Result::invalid("tolerance must be in (0, 1)");
    if (o.window < 1 || o.window > 16) return Result::invalid("window must be in 1..16 px");
    if (o.cg_iterations < 1 || o.cg_iterations > 200) return Result::invalid("cg_iterations must be in 1..200");
    if (o.warmup < 0 || o.warmup > 100) return Result::invalid("warmup must be in 0..100");
    if (!(o.max_shift >= 0 && o.max_shift <= 16)) return Result::invalid("max_shift must be in [0, 16] px");
    if (!(o.prior_sigma >= 0 && o.prior_sigma <= 16)) return Result::invalid("prior_sigma must be in [0, 16] px");
    if (!(o.crlb_radius >= 0 && o.crlb_radius <= 16)) return Result::invalid("crlb_radius must be in [0, 16] px");
    if (!(o.min_photons >= 0 && o.min_photons <= 1e9)) return Result::invalid("min_photons must be in [0, 1e9]");
    return Result::success();
}

Result fit_frame(const float* data, int64_t rows, int64_t cols, double psf_sigma, const float* x, const float* y,
                 int64_t n, const StartsOptions& o, FrameFit& out) {
    Result r = check_starts_options(o);
    if (!r.ok()) return r;
    if (!(psf_sigma >= 0.3 && psf_sigma <= 10)) return Result::invalid("psf_sigma must be in [0.3, 10] px");
    if (rows < 1 || cols < 1 || rows * cols > (int64_t(1) << 28)) return Result::invalid("frame size out of range");
    if (n < 0) return Result::invalid("negative number of starts");
    for (int64_t k = 0; k < n; ++k)
        if (!(x[k] >= -0.5f && x[k] < float(cols) - 0.5f && y[k] >= -0.5f && y[k] < float(rows) - 0.5f))
            return Result::invalid("start " + std::to_string(k) + " is outside the frame or not finite");
    out = FrameFit{};
    out.emitters.resize(size_t(n));
    const size_t npix = size_t(rows * cols);
    // Checked before nth_element: NaN breaks its ordering (undefined behaviour, reads past the end).
    for (size_t i = 0; i < npix; ++i)
        if (!std::isfinite(data[i])) return Result::invalid("the frame holds non-finite pixels");
    // Flat background: the 20th percentile of the frame (below the spots' tails even when crowded).
    std::vector<float> sorted(data, data + npix);
    std::nth_element(sorted.begin(), sorted.begin() + npix / 5, sorted.end());
    double b0 = std::max(0.0f, sorted[npix / 5]);

    Work w;
    w.rows = rows;
    w.cols = cols;
    w.n = n;
    w.W = 2 * o.window + 1;
    w.sigma = psf_sigma;
    w.prof.resize(size_t(n));
    w.ex.assign(size_t(n * w.W), 0.0);
    w.dex = w.ey = w.dey = w.ex;
    w.weight.resize(npix);
    for (size_t i = 0; i < npix; ++i) w.weight[i] = 1.0 / std::max(1.0, double(data[i]));
    w.model.assign(npix, 0.0);
    w.u.assign(npix, 0.0);
    const int64_t P = 3 * n + 1;
    const size_t NP = static_cast<size_t>(P), N6 = static_cast<size_t>(6 * n), N9 = static_cast<size_t>(9 * n);
    std::vector<double> th(NP), trial(NP), g(NP), d(NP), z(NP), q(NP), res(NP), step(NP), blk(N6), pre(N9), pix(npix);
    // Starts sorted by x: neighbour queries scan an x range (no n^2 loop over a frame's starts).
    std::vector<int64_t> by_x(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) by_x[size_t(k)] = k;
    std::sort(by_x.begin(), by_x.end(), [&](int64_t a, int64_t b) { return x[a] < x[b] || (x[a] == x[b] && a < b); });
    auto neighbours = [&](double cx, double cy, double radius, const std::vector<double>* pos, auto&& visit) {
        auto px = [&](int64_t j) { return pos ? (*pos)[size_t(3 * j)] : double(x[j]); };
        auto py = [&](int64_t j) { return pos ? (*pos)[size_t(3 * j + 1)] : double(y[j]); };
        // positions move by at most max_shift from the starts, which are what by_x sorts
        const double reach = radius + (pos ? o.max_shift : 0.0);
        auto lo = std::lower_bound(by_x.begin(), by_x.end(), cx - reach,
                                   [&](int64_t j, double v) { return double(x[j]) < v; });
        for (auto itj = lo; itj != by_x.end() && double(x[*itj]) <= cx + reach; ++itj)
            if (std::hypot(px(*itj) - cx, py(*itj) - cy) < radius) visit(*itj);
    };
    // Start photons: the start pixel's excess over the background spread as a PSF peak (2 pi sigma^2),
    // shared among starts closer than 1 sigma; the fit corrects it (photons enter linearly).
    const double peak_area = 2.0 * M_PI * psf_sigma * psf_sigma;
    for (int64_t k = 0; k < n; ++k) {
        const int64_t c = std::clamp<int64_t>(std::lround(x[k]), 0, cols - 1);
        const int64_t rr = std::clamp<int64_t>(std::lround(y[k]), 0, rows - 1);
        int near = 0;
        neighbours(x[k], y[k], psf_sigma, nullptr, [&](int64_t) { ++near; });
        th[size_t(3 * k)] = x[k];
        th[size_t(3 * k + 1)] = y[k];
        th[size_t(3 * k + 2)] = std::max(10.0, (double(data[rr * cols + c]) - b0) * peak_area / std::max(1, near));
    }
    th[size_t(3 * n)] = b0;
    auto clamp_theta = [&](std::vector<double>& t) {
        for (int64_t k = 0; k < n; ++k) {
            // within max_shift of the start: a detector's proposal says where an emitter is to a fraction of
            // a pixel; a joint fit left free pulls two close emitters onto one spot
            const double s = o.max_shift;
            t[size_t(3 * k)] = std::clamp(t[size_t(3 * k)], std::max(-0.5, x[k] - s), std::min(double(cols) - 0.5, x[k] + s));
            t[size_t(3 * k + 1)] = std::clamp(t[size_t(3 * k + 1)], std::max(-0.5, y[k] - s),
                                              std::min(double(rows) - 0.5, y[k] + s));
            t[size_t(3 * k + 2)] = std::max(t[size_t(3 * k + 2)], 1.0);
        }
        t[size_t(3 * n)] = std::max(t[size_t(3 * n)], 0.0);
    };
    // A Gaussian prior of width prior_sigma around each start (MAP): where the data pin an emitter down
    // they win; where two emitters are not told apart they stay where the detector put them.
    const double kappa = o.prior_sigma > 0 ? 1.0 / (o.prior_sigma * o.prior_sigma) : 0.0;
    evaluate(w, th, o.window);
    double cost = chi2(w, data, th, x, y, kappa);
    double lambda = 1e-3;
    int it = 0, warmup = o.warmup;
    for (; it < o.max_iterations; ++it) {
        // gradient g = J^T W (model - data); blocks of J^T W J for the preconditioner
        for (size_t i = 0; i < npix; ++i) pix[i] = w.weight[i] * (w.model[i] - data[i]);
        jac_t_times(w, th, pix, g.data());
        double bb;
        blocks(w, th, blk, bb);
        for (int64_t k = 0; k < n; ++k) {
            g[size_t(3 * k)] += kappa * (th[size_t(3 * k)] - x[k]);
            g[size_t(3 * k + 1)] += kappa * (th[size_t(3 * k + 1)] - y[k]);
            blk[size_t(6 * k)] += kappa;
            blk[size_t(6 * k + 3)] += kappa;
        }
        const double lambda_before = lambda;
        bool accepted = false;
        for (int tries = 0; tries < 8 && !accepted; ++tries) {
            // (A + lambda diag(A)) step = -g by preconditioned conjugate gradients
            for (int64_t k = 0; k < n; ++k) {
                double a[6];
                std::copy(&blk[size_t(6 * k)], &blk[size_t(6 * k)] + 6, a);
                a[0] *= 1 + lambda;
                a[3] *= 1 + lambda;
                a[5] *= 1 + lambda;
                if (!invert3(a, &pre[size_t(9 * k)])) {   // an emitter with no photons: diagonal only
                    std::fill(&pre[size_t(9 * k)], &pre[size_t(9 * k)] + 9, 0.0);
                    for (int j = 0; j < 3; ++j)
                        pre[size_t(9 * k + 4 * j)] = 1.0 / std::max(a[j == 0 ? 0 : j == 1 ? 3 : 5], 1e-30);
                }
            }
            const double pb = 1.0 / std::max(bb * (1 + lambda), 1e-30);
            auto apply = [&](const std::vector<double>& v, std::vector<double>& av) {
                jac_times(w, th, v.data());
                for (size_t i = 0; i < npix; ++i) pix[i] = w.weight[i] * w.u[i];
                jac_t_times(w, th, pix, av.data());
                for (int64_t k = 0; k < n; ++k) {
                    const double* a = &blk[size_t(6 * k)];
                    av[size_t(3 * k)] += (lambda * a[0] + kappa) * v[size_t(3 * k)];
                    av[size_t(3 * k + 1)] += (lambda * a[3] + kappa) * v[size_t(3 * k + 1)];
                    av[size_t(3 * k + 2)] += lambda * a[5] * v[size_t(3 * k + 2)];
                }
                av[size_t(3 * n)] += lambda * bb * v[size_t(3 * n)];
            };
            const bool photons_only = it < warmup;
            auto precondition = [&](const std::vector<double>& v, std::vector<double>& out_v) {
                if (photons_only) {   // positions held: photons and background only (they enter linearly)
                    for (int64_t k = 0; k < n; ++k) {
                        out_v[size_t(3 * k)] = out_v[size_t(3 * k + 1)] = 0;
                        out_v[size_t(3 * k + 2)] = v[size_t(3 * k + 2)] / std::max(blk[size_t(6 * k + 5)] * (1 + lambda), 1e-30);
                    }
                    out_v[size_t(3 * n)] = pb * v[size_t(3 * n)];
                    return;
                }
                for (int64_t k = 0; k < n; ++k) {
                    const double* m = &pre[size_t(9 * k)];
                    const double* a = &v[size_t(3 * k)];
                    for (int j = 0; j < 3; ++j) out_v[size_t(3 * k + j)] = m[3 * j] * a[0] + m[3 * j + 1] * a[1] + m[3 * j + 2] * a[2];
                }
                out_v[size_t(3 * n)] = pb * v[size_t(3 * n)];
            };
            std::fill(step.begin(), step.end(), 0.0);
            for (int64_t i = 0; i < P; ++i) res[size_t(i)] = -g[size_t(i)];
            if (photons_only)
                for (int64_t k = 0; k < n; ++k) res[size_t(3 * k)] = res[size_t(3 * k + 1)] = 0;
            precondition(res, z);
            d = z;
            double rz = 0, r0 = 0;
            for (int64_t i = 0; i < P; ++i) rz += res[size_t(i)] * z[size_t(i)];
            r0 = rz;
            for (int cg = 0; cg < o.cg_iterations && rz > 1e-8 * r0; ++cg) {
                apply(d, q);
                double dq = 0;
                for (int64_t i = 0; i < P; ++i) dq += d[size_t(i)] * q[size_t(i)];
                if (!(dq > 0)) break;
                const double alpha = rz / dq;
                for (int64_t i = 0; i < P; ++i) {
                    step[size_t(i)] += alpha * d[size_t(i)];
                    res[size_t(i)] -= alpha * q[size_t(i)];
                }
                precondition(res, z);
                double rz_new = 0;
                for (int64_t i = 0; i < P; ++i) rz_new += res[size_t(i)] * z[size_t(i)];
                const double beta = rz_new / rz;
                rz = rz_new;
                for (int64_t i = 0; i < P; ++i) d[size_t(i)] = z[size_t(i)] + beta * d[size_t(i)];
            }
            // no emitter moves more than 1 px in one iteration
            for (int64_t k = 0; k < n; ++k)
                for (int j = 0; j < 2; ++j) step[size_t(3 * k + j)] = std::clamp(step[size_t(3 * k + j)], -1.0, 1.0);
            for (int64_t i = 0; i < P; ++i) trial[size_t(i)] = th[size_t(i)] + step[size_t(i)];
            clamp_theta(trial);
            evaluate(w, trial, o.window);
            const double c_new = chi2(w, data, trial, x, y, kappa);
            if (c_new < cost) {
                const double fall = (cost - c_new) / std::max(cost, 1e-300);
                th.swap(trial);
                cost = c_new;
                lambda = std::max(lambda / 3.0, 1e-7);
                accepted = true;
                if (fall < o.tolerance && it >= warmup) {
                    out.converged = true;
                }
            } else {
                lambda *= 4.0;
                evaluate(w, th, o.window);
            }
        }
        if (!accepted && it < warmup) {   // photons settled: free the positions now
            warmup = it + 1;
            // the failed tries inflated lambda 4^8-fold: the first position step would be tiny and its small
            // fall taken for convergence, leaving every emitter at its start
            lambda = lambda_before;
            continue;
        }
        if (!accepted) {   // no step lowers chi^2: at a minimum to working precision
            out.converged = true;
            ++it;
            break;
        }
        if (out.converged) {
            ++it;
            break;
        }
    }
    out.iterations = it;
    out.chi2 = chi2(w, data, th, x, y, 0.0);
    out.background = float(th[size_t(3 * n)]);
    // Bounds: Poisson Fisher (weights 1 / model) of each emitter jointly with its neighbours within
    // crlb_radius (the rest of the frame held fixed), at the estimate.
    evaluate(w, th, o.window);
    std::vector<int64_t> group;
    std::vector<double> F;
    for (int64_t k = 0; k < n; ++k) {
        group.clear();
        group.push_back(k);
        neighbours(th[size_t(3 * k)], th[size_t(3 * k + 1)], o.crlb_radius, &th, [&](int64_t j) {
            // a neighbour at the photon floor carries no information (and would make the matrix singular)
            if (j != k && group.size() < 8 && th[size_t(3 * j + 2)] >= 2.0) group.push_back(j);
        });
        const int G = int(group.size()), Pg = 3 * G + 1;
        F.assign(size_t(Pg * Pg), 0.0);
        const Profile& pk = w.prof[size_t(k)];
        // pixels: the window of emitter k (its bound is dominated by them)
        for (int a = 0; a < pk.wr; ++a)
            for (int b = 0; b < pk.wc; ++b) {
                const int64_t rr = pk.r0 + a, cc = pk.c0 + b;
                const double m = std::max(w.model[size_t(rr * cols + cc)], 1e-9);
                double jv[3 * 8 + 1];
                for (int gi = 0; gi < G; ++gi) {
                    const int64_t e = group[size_t(gi)];
                    const Profile& pe = w.prof[size_t(e)];
                    const int64_t ai = rr - pe.r0, bi = cc - pe.c0;
                    if (ai < 0 || ai >= pe.wr || bi < 0 || bi >= pe.wc) {
                        jv[3 * gi] = jv[3 * gi + 1] = jv[3 * gi + 2] = 0;
                        continue;
                    }
                    const double N = th[size_t(3 * e + 2)];
                    const double eyv = w.ey[size_t(e * w.W + ai)], deyv = w.dey[size_t(e * w.W + ai)];
                    const double exv = w.ex[size_t(e * w.W + bi)], dexv = w.dex[size_t(e * w.W + bi)];
                    jv[3 * gi] = N * eyv * dexv;
                    jv[3 * gi + 1] = N * deyv * exv;
                    jv[3 * gi + 2] = eyv * exv;
                }
                jv[3 * G] = 1.0;
                for (int i = 0; i < Pg; ++i)
                    for (int j = 0; j < Pg; ++j) F[size_t(i * Pg + j)] += jv[i] * jv[j] / m;
            }
        FrameEmitterFit& e = out.emitters[size_t(k)];
        e.empty = th[size_t(3 * k + 2)] < o.min_photons;
        e.x = float(th[size_t(3 * k)]);
        e.y = float(th[size_t(3 * k + 1)]);
        e.photons = float(th[size_t(3 * k + 2)]);
        if (invert_small(F, Pg)) {
            e.crlb_x = float(std::sqrt(std::max(F[0], 0.0)));
            e.crlb_y = float(std::sqrt(std::max(F[size_t(Pg + 1)], 0.0)));
            e.crlb_photons = float(std::sqrt(std::max(F[size_t(2 * Pg + 2)], 0.0)));
            e.crlb_background = float(std::sqrt(std::max(F[size_t(3 * G * Pg + 3 * G)], 0.0)));
        } else {
            e.crlb_x = e.crlb_y = e.crlb_photons = e.crlb_background = std::numeric_limits<float>::infinity();
        }
    }
    return Result::success();
}


Result fit_starts(const ImageStack& s, const Camera& cam, const LocalizeOptions& opt, const int64_t* start_frame,
                  const float* start_x, const float* start_y, int64_t n, const StartsOptions& so, int64_t first_frame,
                  std::vector<MultiLocalization>& out) {
    Result r = detail::check_stack(s);
    if (!r.ok()) return r;
    r = detail::check_camera(cam);
    if (!r.ok()) return r;
    r = check_starts_options(so);
    if (!r.ok()) return r;
    const double sigma = opt.fit.psf_sigma;
    if (!(sigma >= 0.3 && sigma <= 10)) return Result::invalid("fit_starts: psf_sigma must be in [0.3, 10] px");
    if (n < 0) return Result::invalid("fit_starts: negative number of starts");
    if (n > 0 && (!start_frame || !start_x || !start_y)) return Result::invalid("fit_starts: null start arrays");
    const int64_t max_frame = std::numeric_limits<int64_t>::max() / kGroupsPerFrame;   // group must fit int64
    if (first_frame < 0 || first_frame > max_frame - s.frames)
        return Result::invalid("first_frame must be in 0.." + std::to_string(max_frame) + " - frames");
    const int64_t rows = s.rows, cols = s.cols;
    for (int64_t k = 0; k < n; ++k) {
        const int64_t f = start_frame[k];
        if (f < first_frame || f >= first_frame + s.frames)
            return Result::invalid("start " + std::to_string(k) + ": frame " + std::to_string(f) + " is not in " +
                                   std::to_string(first_frame) + ".." + std::to_string(first_frame + s.frames - 1));
        if (k > 0 && f < start_frame[k - 1])
            return Result::invalid("start " + std::to_string(k) + ": frames must be non-decreasing");
        if (!(start_x[k] >= -0.5f && start_x[k] < float(cols) - 0.5f))
            return Result::invalid("start " + std::to_string(k) + ": x must be finite and in [-0.5, cols - 0.5)");
        if (!(start_y[k] >= -0.5f && start_y[k] < float(rows) - 0.5f))
            return Result::invalid("start " + std::to_string(k) + ": y must be finite and in [-0.5, rows - 0.5)");
    }
    if (n == 0) return Result::success();
    std::vector<int64_t> begin;   // starts of frame f: begin[f] .. begin[f + 1]
    std::vector<FrameFit> fits;
    std::vector<Result> failures;
    try {
        begin.assign(size_t(s.frames + 1), 0);
        fits.resize(size_t(s.frames));
        failures.resize(size_t(s.frames));
    } catch (const std::bad_alloc&) {
        return {Status::out_of_memory, "out of memory in fit_starts"};
    }
    for (int64_t k = 0; k < n; ++k) ++begin[size_t(start_frame[k] - first_frame + 1)];
    for (int64_t f = 0; f < s.frames; ++f) begin[size_t(f + 1)] += begin[size_t(f)];
#ifdef _OPENMP
    const int threads = thread_count(opt.fit.threads);
#pragma omp parallel num_threads(threads) if (s.frames > 1)
#endif
    {
        std::vector<float> photons;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t f = 0; f < s.frames; ++f) {
            const int64_t b = begin[size_t(f)], e = begin[size_t(f + 1)];
            if (b == e) continue;
            try {
                photons.resize(size_t(rows * cols));
                detail::convert_frame(s, f, cam, photons.data());
                failures[size_t(f)] = fit_frame(photons.data(), rows, cols, sigma, start_x + b, start_y + b, e - b, so,
                                                fits[size_t(f)]);
            } catch (const std::bad_alloc&) {
                failures[size_t(f)] = {Status::out_of_memory, "out of memory in fit_starts"};
            }
        }
    }
    for (int64_t f = 0; f < s.frames; ++f)
        if (!failures[size_t(f)].ok())
            return {failures[size_t(f)].status,
                    "frame " + std::to_string(first_frame + f) + ": " + failures[size_t(f)].message};
    try {
        out.reserve(out.size() + size_t(n));
        const float sg = float(sigma), nan = std::numeric_limits<float>::quiet_NaN();
        for (int64_t f = 0; f < s.frames; ++f) {
            const FrameFit& ff = fits[size_t(f)];
            const int64_t b = begin[size_t(f)];
            int32_t kept = 0;
            for (const FrameEmitterFit& e : ff.emitters) kept += !e.empty;
            for (size_t k = 0; k < ff.emitters.size(); ++k) {
                const FrameEmitterFit& e = ff.emitters[k];
                if (e.empty) continue;
                MultiLocalization m;
                m.loc.frame = first_frame + f;
                m.loc.peak_row = int32_t(std::lround(start_y[b + int64_t(k)]));
                m.loc.peak_col = int32_t(std::lround(start_x[b + int64_t(k)]));
                const FitStatus st = ff.converged ? FitStatus::converged : FitStatus::max_iterations;
                m.loc.fit = FitResult{e.x, e.y, e.photons, ff.background, sg, sg, e.crlb_x, e.crlb_y, e.crlb_photons,
                                      e.crlb_background, 0.0f, 0.0f, nan, float(ff.chi2), ff.iterations, st, nan, nan};
                m.group = (first_frame + f) * kGroupsPerFrame;
                m.n_in_group = kept;
                out.push_back(m);
            }
        }
    } catch (const std::bad_alloc&) {
        return {Status::out_of_memory, "out of memory in fit_starts"};
    }
    return Result::success();
}

}  // namespace spotcore
