#include "spotcore/drift.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "spotcore/fit.h"

namespace spotcore {
namespace {

// Bilinear value of the image at (x, y) px; 0 outside the grid (the border bins fade to 0 over one bin).
inline double sample(const float* img, const DriftGrid& g, double x, double y) {
    const double fx = (x - g.x0) / g.bin, fy = (y - g.y0) / g.bin;
    if (!(fx > -1.0 && fy > -1.0 && fx < double(g.nx) && fy < double(g.ny))) return 0.0;  // NaN too
    const double jf = std::floor(fx), if_ = std::floor(fy);
    const int64_t j = int64_t(jf), i = int64_t(if_);
    const double tx = fx - jf, ty = fy - if_;
    const bool j0 = j >= 0, j1 = j + 1 < g.nx, i0 = i >= 0, i1 = i + 1 < g.ny;
    double v = 0.0;
    if (i0) {
        const float* r = img + i * g.nx;
        if (j0) v += (1 - ty) * (1 - tx) * r[j];
        if (j1) v += (1 - ty) * tx * r[j + 1];
    }
    if (i1) {
        const float* r = img + (i + 1) * g.nx;
        if (j0) v += ty * (1 - tx) * r[j];
        if (j1) v += ty * tx * r[j + 1];
    }
    return v;
}

inline bool inside(const DriftGrid& g, double x, double y) {
    const double fx = (x - g.x0) / g.bin, fy = (y - g.y0) / g.bin;
    return fx > -1.0 && fy > -1.0 && fx < double(g.nx) && fy < double(g.ny);
}

// The 3x3 stencil of one point: v[3(a+1) + (b+1)] = image(px + a h, py + b h).
inline void point_stencil(const float* img, const DriftGrid& g, double px, double py, double h, double* v) {
    const double fx = (px - g.x0) / g.bin, fy = (py - g.y0) / g.bin;
    const double jf = std::floor(fx), if_ = std::floor(fy);
    const int64_t j = int64_t(jf), i = int64_t(if_);
    if (h == g.bin && i >= 1 && j >= 1 && i + 2 < g.ny && j + 2 < g.nx) {
        // A step of one bin keeps the fractional offsets: the nine values come from one 4x4 block.
        const double tx = fx - jf, ty = fy - if_;
        double row[4][3];
        for (int r = 0; r < 4; ++r) {
            const float* b = img + (i - 1 + r) * g.nx + (j - 1);
            for (int a = 0; a < 3; ++a) row[r][a] = (1 - tx) * b[a] + tx * b[a + 1];
        }
        for (int a = 0; a < 3; ++a)
            for (int b = 0; b < 3; ++b) v[3 * a + b] = (1 - ty) * row[b][a] + ty * row[b + 1][a];
        return;
    }
    for (int a = -1; a <= 1; ++a)
        for (int b = -1; b <= 1; ++b) v[3 * (a + 1) + (b + 1)] = sample(img, g, px + a * h, py + b * h);
}

// The 13 numbers of drift_stencil for one segment.
void stencil(const float* img, const DriftGrid& g, const double* x, const double* y, int64_t first, int64_t last,
             double cx, double cy, double h, double* out) {
    std::fill(out, out + 13, 0.0);
    for (int64_t p = first; p < last; ++p) {
        const double px = x[p] + cx, py = y[p] + cy;
        if (!inside(g, px, py)) continue;
        double v[9];
        point_stencil(img, g, px, py, h, v);
        for (int k = 0; k < 9; ++k) out[k] += v[k];
        const double gx = (v[7] - v[1]) / (2 * h), gy = (v[5] - v[3]) / (2 * h);
        out[9] += gx * gx;
        out[10] += gx * gy;
        out[11] += gy * gy;
        out[12] += 1.0;
    }
}

// One Newton step from a stencil (finite differences); at most one step long. Returns the move.
void newton_move(const double* s, double h, double& dx, double& dy) {
    const double gx = (s[7] - s[1]) / (2 * h), gy = (s[5] - s[3]) / (2 * h);
    const double hxx = (s[7] - 2 * s[4] + s[1]) / (h * h), hyy = (s[5] - 2 * s[4] + s[3]) / (h * h);
    const double hxy = (s[8] - s[6] - s[2] + s[0]) / (4 * h * h);
    const double det = hxx * hyy - hxy * hxy;
    dx = dy = 0.0;
    if (hxx < 0 && det > 0) {  // a maximum: Newton
        dx = -(hyy * gx - hxy * gy) / det;
        dy = -(-hxy * gx + hxx * gy) / det;
    } else {  // not concave here: go to the best stencil point
        int best = 4;
        for (int k = 0; k < 9; ++k)
            if (s[k] > s[best]) best = k;
        dx = (best / 3 - 1) * h;
        dy = (best % 3 - 1) * h;
    }
    const double len = std::hypot(dx, dy);
    if (!(len <= h)) {  // trust region of one step (NaN too)
        const double f = len > 0 && std::isfinite(len) ? h / len : 0.0;
        dx *= f;
        dy *= f;
    }
}

double refine(const float* img, const DriftGrid& g, const double* x, const double* y, int64_t first, int64_t last,
              double& cx, double& cy, double h, int iterations) {
    double s[13];
    for (int it = 0; it < iterations; ++it) {
        stencil(img, g, x, y, first, last, cx, cy, h, s);
        double dx, dy;
        newton_move(s, h, dx, dy);
        cx += dx;
        cy += dy;
        if (std::hypot(dx, dy) < 1e-2 * h) break;
    }
    double score = 0.0;
    for (int64_t p = first; p < last; ++p) score += sample(img, g, x[p] + cx, y[p] + cy);
    return score;
}

Result check_segments(const double* x, const double* y, const int64_t* starts, const int64_t* ends,
                      int64_t n_segments) {
    if (n_segments < 0) return Result::invalid("drift: number of segments must be >= 0");
    if (n_segments == 0) return Result::success();
    if (!x || !y || !starts || !ends) return Result::invalid("drift: points and segment bounds must not be null");
    for (int64_t k = 0; k < n_segments; ++k)
        if (starts[k] < 0 || ends[k] < starts[k])
            return Result::invalid("drift: segment " + std::to_string(k) + " has bounds [" +
                                   std::to_string(starts[k]) + ", " + std::to_string(ends[k]) + ")");
    return Result::success();
}

}  // namespace

Result check_drift_grid(const DriftGrid& g) {
    if (!(g.bin > 0) || !std::isfinite(g.bin)) return Result::invalid("drift grid: bin must be > 0 and finite");
    if (!std::isfinite(g.x0) || !std::isfinite(g.y0)) return Result::invalid("drift grid: origin must be finite");
    if (g.nx < 1 || g.ny < 1) return Result::invalid("drift grid: nx and ny must be >= 1");
    if (g.nx > kMaxDriftBins / g.ny)
        return Result::invalid("drift grid: " + std::to_string(g.nx) + " x " + std::to_string(g.ny) +
                               " bins is more than " + std::to_string(kMaxDriftBins));
    return Result::success();
}

Result check_drift_track_options(const DriftTrackOptions& o) {
    if (!(o.radius >= 0) || !std::isfinite(o.radius)) return Result::invalid("drift track: radius must be >= 0");
    if (!(o.coarse_step > 0) || !std::isfinite(o.coarse_step))
        return Result::invalid("drift track: coarse_step must be > 0");
    if (!(o.step > 0) || !std::isfinite(o.step)) return Result::invalid("drift track: step must be > 0");
    if (o.iterations < 0 || o.iterations > 1000) return Result::invalid("drift track: iterations must be 0..1000");
    if (!(o.drop >= 0 && o.drop <= 1)) return Result::invalid("drift track: drop must be in [0, 1]");
    if (o.radius / o.coarse_step > 1000) return Result::invalid("drift track: radius / coarse_step must be <= 1000");
    return Result::success();
}

Result drift_histogram(const double* x, const double* y, const double* w, int64_t n, const DriftGrid& g,
                       float* image) {
    Result r = check_drift_grid(g);
    if (!r.ok()) return r;
    if (n < 0) return Result::invalid("drift_histogram: n must be >= 0");
    if (n == 0) return Result::success();
    if (!x || !y || !image) return Result::invalid("drift_histogram: x, y and image must not be null");
    for (int64_t k = 0; k < n; ++k) {
        const double fx = (x[k] - g.x0) / g.bin, fy = (y[k] - g.y0) / g.bin;
        if (!(fx > -1.0 && fy > -1.0 && fx < double(g.nx) && fy < double(g.ny))) continue;
        const double wk = w ? w[k] : 1.0;
        if (!std::isfinite(wk)) continue;
        const double jf = std::floor(fx), if_ = std::floor(fy);
        const int64_t j = int64_t(jf), i = int64_t(if_);
        const double tx = fx - jf, ty = fy - if_;
        if (i >= 0) {
            float* row = image + i * g.nx;
            if (j >= 0) row[j] += float(wk * (1 - ty) * (1 - tx));
            if (j + 1 < g.nx) row[j + 1] += float(wk * (1 - ty) * tx);
        }
        if (i + 1 < g.ny) {
            float* row = image + (i + 1) * g.nx;
            if (j >= 0) row[j] += float(wk * ty * (1 - tx));
            if (j + 1 < g.nx) row[j + 1] += float(wk * ty * tx);
        }
    }
    return Result::success();
}

Result drift_stencil(const float* image, const DriftGrid& g, const double* x, const double* y,
                     const int64_t* starts, const int64_t* ends, int64_t n_segments, const double* centres,
                     double step, int32_t threads, double* out) {
    Result r = check_drift_grid(g);
    if (!r.ok()) return r;
    r = check_segments(x, y, starts, ends, n_segments);
    if (!r.ok()) return r;
    if (!(step > 0) || !std::isfinite(step)) return Result::invalid("drift_stencil: step must be > 0");
    if (n_segments == 0) return Result::success();
    if (!image || !centres || !out) return Result::invalid("drift_stencil: image, centres and out must not be null");
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(thread_count(threads)) if (n_segments > 1)
#endif
    for (int64_t k = 0; k < n_segments; ++k)
        stencil(image, g, x, y, starts[k], ends[k], centres[2 * k], centres[2 * k + 1], step, out + 13 * k);
    (void)threads;
    return Result::success();
}

Result drift_track(const float* image, const DriftGrid& g, const double* x, const double* y,
                   const int64_t* starts, const int64_t* ends, int64_t n_segments, const DriftTrackOptions& o,
                   double* shifts, double* score) {
    Result r = check_drift_grid(g);
    if (!r.ok()) return r;
    r = check_drift_track_options(o);
    if (!r.ok()) return r;
    r = check_segments(x, y, starts, ends, n_segments);
    if (!r.ok()) return r;
    if (n_segments == 0) return Result::success();
    if (!image || !shifts || !score) return Result::invalid("drift_track: image, shifts and score must not be null");
    const int64_t half = int64_t(std::floor(o.radius / o.coarse_step));
    double px = 0.0, py = 0.0, typical = 0.0;
    for (int64_t k = 0; k < n_segments; ++k) {
        const int64_t first = starts[k], last = ends[k], count = last - first;
        if (count == 0) {
            shifts[2 * k] = px;
            shifts[2 * k + 1] = py;
            score[k] = 0.0;
            continue;
        }
        double cx = px, cy = py;
        double start = 0.0;  // the score where the previous segment was: a jump shows here, before Newton
        for (int64_t p = first; p < last; ++p) start += sample(image, g, x[p] + px, y[p] + py);
        start /= double(count);
        double s = refine(image, g, x, y, first, last, cx, cy, o.step, o.iterations) / double(count);
        if (typical > 0 && std::min(start, s) < o.drop * typical && half > 0) {
            // Search the square around the previous shift, then refine the best trial.
            double best = -1.0, bx = px, by = py;
            for (int64_t a = -half; a <= half; ++a)
                for (int64_t b = -half; b <= half; ++b) {
                    const double tx = px + double(a) * o.coarse_step, ty = py + double(b) * o.coarse_step;
                    double t = 0.0;
                    for (int64_t p = first; p < last; ++p) t += sample(image, g, x[p] + tx, y[p] + ty);
                    if (t > best) {
                        best = t;
                        bx = tx;
                        by = ty;
                    }
                }
            double s2 = refine(image, g, x, y, first, last, bx, by, o.step, o.iterations) / double(count);
            if (s2 > 1.05 * s) {  // better by more than noise: a noisy dip alone must not move the track
                s = s2;
                cx = bx;
                cy = by;
            }
        }
        // Running typical score: fast to follow slow changes of density, a jump moves it little.
        typical = typical > 0 ? 0.9 * typical + 0.1 * std::min(s, 2 * typical) : s;
        px = cx;
        py = cy;
        shifts[2 * k] = cx;
        shifts[2 * k + 1] = cy;
        score[k] = s;
    }
    return Result::success();
}

}  // namespace spotcore
