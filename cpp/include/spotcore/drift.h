// Drift correction of localization tables: the hot loops of intersection maximization (AIM, Ma et al. 2024,
// Sci. Adv. eadm7765) and of redundant cross-correlation (RCC, Wang et al. 2014, Opt. Express 22:15982).
//
// The "intersection" of a segment with a reference is counted softly: the reference is rendered as a
// density image (a cloud-in-cell histogram, blurred by the caller), and the score of a trial shift s is
// the sum of the density at every localization of the segment moved by s. The segment's drift is the
// shift of the largest score. Points are given sorted by segment: segment k is points [starts[k], ends[k]).
#pragma once
#include "spotcore/types.h"

namespace spotcore {

// A regular grid of bin centres: bin (i, j) (row i, column j) is centred on (x0 + j * bin, y0 + i * bin).
struct DriftGrid {
    double x0 = 0.0, y0 = 0.0;  // centre of bin (0, 0), px
    double bin = 1.0;           // bin side, px (> 0)
    int64_t nx = 0, ny = 0;     // columns, rows (>= 1, nx * ny <= kMaxDriftBins)
};

// Largest density image the drift functions accept (bins), 2^28: 1 GiB of float32.
constexpr int64_t kMaxDriftBins = int64_t(1) << 28;

Result check_drift_grid(const DriftGrid& grid);

// Adds each point (x[k], y[k]) with weight w[k] (1 when w is null) to the four bins around it,
// bilinearly (cloud-in-cell), into `image` (ny * nx float32, row-major, not cleared). Points with a NaN
// coordinate or outside the grid are skipped. Single pass in input order: deterministic.
Result drift_histogram(const double* x, const double* y, const double* w, int64_t n, const DriftGrid& grid,
                       float* image);

// The 3x3 stencil of scores around each segment's centre, for Newton steps and uncertainties.
// For segment k, with c = centres[2k..2k+1] and d in {-step, 0, step}^2:
//   out[13k + 3(a+1) + (b+1)] = sum over its points of image(x + cx + a*step, y + cy + b*step),  a: x, b: y,
//   out[13k + 9..11] = sums of gx*gx, gx*gy, gy*gy of the per-point central-difference gradients
//                      (the sandwich estimate of the shift's variance needs them),
//   out[13k + 12]    = number of points of the segment inside the grid.
// Bilinear interpolation; outside the grid the image is 0. A step of exactly grid.bin is the fast case (the
// nine values of a point share one 4x4 block of bins). threads: 0 = OpenMP default; the output does
// not depend on it (segments are independent; each is summed in point order).
Result drift_stencil(const float* image, const DriftGrid& grid, const double* x, const double* y,
                     const int64_t* starts, const int64_t* ends, int64_t n_segments, const double* centres,
                     double step, int32_t threads, double* out);

struct DriftTrackOptions {
    double radius = 1.5;       // half side of the square searched when the score drops, px
    double coarse_step = 0.1;  // grid step of that search, px
    double step = 0.05;        // stencil step of the Newton refinement, px (grid.bin is the fast case)
    int32_t iterations = 3;    // Newton steps per segment (at most; stops when a step is < 1 % of `step`)
    double drop = 0.6;         // search when a segment scores below drop x the running typical score per point
};
Result check_drift_track_options(const DriftTrackOptions& options);

// Round 1 of AIM: segments in time order are tracked against a fixed reference (`image`), each starting
// from the previous segment's shift (the first from (0, 0)), refined by Newton steps on the 3x3 stencil.
// Where the score per point at the previous shift or after refining falls below options.drop x its running
// typical value (a sudden jump, or a wrong basin), the square of half side options.radius around the previous shift is searched, and its
// best point (refined) is taken when it scores at least 1.05 x the tracked one.
// Writes shifts[2k], shifts[2k+1] (x, y, px) and score[k] (score per point; 0 for an empty segment,
// which keeps the previous shift). Sequential: deterministic.
Result drift_track(const float* image, const DriftGrid& grid, const double* x, const double* y,
                   const int64_t* starts, const int64_t* ends, int64_t n_segments,
                   const DriftTrackOptions& options, double* shifts, double* score);

}  // namespace spotcore
