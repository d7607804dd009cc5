// Drift correction of localization tables: the hot loops of intersection maximization (AIM, Ma et al. 2024,
// Sci. Adv. eadm7765) and of redundant cross-correlation (RCC, Wang et al. 2014, Opt. Express 22:15982).
//
// The "intersection" of a segment with a reference is counted softly: the reference is rendered as a
// density image (a cloud-in-cell histogram, blurred by the caller), and the score of a trial shift s is
// the sum of the density at every localization of the segment moved by s. The segment's drift is the
// shift of the largest score. Points are given sorted by segment: segment k is points [starts[k], ends[k]).
#pragma once
#include <vector>

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

// A density image stored sparsely: tiles of kDriftTile x kDriftTile bins, each with a border of one bin before
// and two after (so the 4x4 bins that one bilinear 3x3 stencil reads lie in one tile), only where a bin of the
// tile or its border holds density. Round 2 of AIM works on these: a structure covers a few % of the field,
// so the tiles of its densities stay in cache where the dense image (tens of MB) does not.
constexpr int64_t kDriftTile = 16;
constexpr int64_t kDriftTileSide = kDriftTile + 3;  // rows of a stored tile: bins -1 .. kDriftTile + 1
constexpr int64_t kDriftTileStride = 20;            // floats per stored row (one spare: 4-wide loads)
struct DriftDensity {
    DriftGrid grid;
    int64_t tiles_x = 0, tiles_y = 0;
    std::vector<int32_t> tile;  // tiles_y * tiles_x: index of the stored tile, -1 where all its bins are 0
    std::vector<float> data;    // stored tiles, kDriftTileSide * kDriftTileStride floats each
};

// The cloud-in-cell histogram (as drift_histogram) of the points of segments k = first, first + every, ... <
// n_segments (points [starts[k], ends[k])) into `out`, sparse; out's buffers are reused. Deterministic.
Result drift_density(const double* x, const double* y, const int64_t* starts, const int64_t* ends,
                     int64_t n_segments, int64_t first, int64_t every, const DriftGrid& grid, DriftDensity* out);

// drift_stencil on a sparse density, with the step of one bin (grid.bin): out[13k ..] as drift_stencil's.
Result drift_density_stencil(const DriftDensity& density, const double* x, const double* y, const int64_t* starts,
                             const int64_t* ends, int64_t n_segments, const double* centres, int32_t threads,
                             double* out);

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

// Random-walk state-space smoother (Rauch, Tung & Striebel 1965, AIAA J. 3:1445) of measurements m[k] with
// variance r[k] (inf: no measurement) at times t[k] (non-decreasing), process variance q per unit of time;
// where breaks[k] is non-zero, k and k + 1 are not coupled (process variance 1e12 between them). The state
// starts at m[0] with infinite variance. Writes the smoothed means xs[k] and variances ps[k]. n >= 1.
Result drift_rts(const double* t, const double* m, const double* r, const uint8_t* breaks, int64_t n, double q,
                 double* xs, double* ps);

// The whole AIM loop of spotfit.undrift (both rounds), one call. Points x, y, frame (n) are sorted by frame.
//   Round 1a: the long segments (point ranges long_starts/ends, frame bounds long_edges[k]..long_edges[k+1])
//     are tracked (drift_track) with every `stride`-th point against the reference (points [0, ref_end),
//     histogram on grid1); the per-point drift d1 is the linear interpolation of their shifts in time.
//   Round 1b: where neighbouring long segments differ by more than max(6 robust SD, coarse_step) on an axis
//     (a jump), the short segments there are tracked again against every `stride`-th point of the whole table
//     corrected by 1a.
//   Round 2: every short segment (starts/ends, frame bounds edges) is aligned by Newton steps on the 3x3
//     stencil against the density (grid2) of the other fold (segment k is in fold k % 2): never against
//     itself; in `passes` passes from coarse bins to bin2, each pass's densities from the previous pass's
//     corrected points. A move of more than `travel` in one pass stops there; in the last pass such a
//     segment has locked onto another maximum (a neighbouring site of a periodic structure) and is left
//     out (variance inf).
// Round 2's grid: bins of bin2 px over the corrected points' extent plus margin2, coarser when that would
// exceed max_bins (as the Python layer's other grids).
// Outputs: shift[2k..2k+1] = segment k's mean round-1 drift minus its round-2 shift (px), var[2k..2k+1] its
// sandwich variance (inf: not measured), xc[2p..2p+1] each point corrected by round 1 (x - d1; its buffer is
// round 2's points: no copy of its own), grid2 and the two
// fold densities on it (sparse, the last pass's). threads: OpenMP threads of round 2 (0 = default), used from
// parallel_points points on (fewer run on one thread); the result does not depend on it (segments are
// independent, each summed in point order).
struct DriftAimOptions {
    double radius = 2.0;        // round 1: half side of the square searched at a jump, px
    double coarse_step = 0.2;   // round 1: kernel width = grid step of that search, px
    double drop = 0.6;          // round 1: search when the score falls below drop x typical
    int32_t track_iterations = 3;
    double bin2 = 0.05;         // round 2: bin of the fold densities = Newton stencil step, px
    double margin2 = 1.0;       // round 2: margin of its grid, px
    int64_t max_bins = int64_t(1) << 23;
    int32_t passes = 3;         // round 2: coarse-to-fine passes, bins bin2 * 2^(passes-1) ... bin2
    int32_t iterations = 8;     // round 2: Newton steps per segment and pass (each <= one bin)
    int64_t coarse_stride = 1;  // round 2: the coarse passes use every coarse_stride-th point of each segment
    double travel = 0.2;        // round 2: largest move from the round-1 position, px
    int32_t threads = 0;
    // Threads from 65,536 points on: below, a call is a few ms. On a quiet machine two threads are faster from
    // ~100k points (289k: 0.041 s -> 0.030 s a call); on a busy one (load 6 on 2 cores) they are slower.
    int64_t parallel_points = int64_t(1) << 16;
};
struct DriftAimResult {
    DriftGrid grid2;
    DriftDensity density[2];  // fold 0's and fold 1's density on grid2 (the last pass's)
};
Result drift_aim(const double* x, const double* y, const int64_t* frame, int64_t n, int64_t ref_end,
                 const DriftGrid& grid1, const int64_t* long_starts, const int64_t* long_ends,
                 const int64_t* long_edges, int64_t n_long, int64_t stride, const int64_t* starts,
                 const int64_t* ends, const int64_t* edges, const double* t, int64_t n_segments,
                 const DriftAimOptions& options, double* shift, double* var, double* xc, DriftAimResult* result);

}  // namespace spotcore
