// Joint fit of every emitter of a frame from given starts (a detector's proposals in a crowded field).
// All emitters of the frame and one flat background are fitted at once: least squares weighted by the data's
// Poisson variance (Neyman chi^2), Levenberg-Marquardt with the normal equations solved by conjugate
// gradients preconditioned by each emitter's own 3x3 block (the Jacobian is sparse: an emitter touches only
// its window). A Gaussian prior around each start (maximum a posteriori) keeps two emitters that the data do
// not tell apart where the detector put them, instead of letting the fit pull both onto one spot; where the
// data pin an emitter down, they win.
#pragma once
#include <cstdint>
#include <vector>

#include "spotcore/multi.h"
#include "spotcore/types.h"

namespace spotcore {

struct StartsOptions {
    int32_t max_iterations = 40;   // Levenberg-Marquardt iterations, 1..1000
    double tolerance = 1e-4;       // converged when the cost falls by less than this fraction in an iteration
    int32_t window = 3;            // 1..16 px each side of an emitter's pixel where its model is evaluated
    int32_t cg_iterations = 15;    // 1..200 conjugate-gradient steps per iteration
    int32_t warmup = 5;            // 0..100 first iterations fit photons and background only (positions held)
    double max_shift = 2.0;        // 0..16 px an emitter may move from its start (0: positions held)
    double prior_sigma = 0.2;      // 0..16 px, width of the prior around each start (0: none, a plain fit)
    float crlb_radius = 2.5f;      // 0..16 px: neighbours this close enter an emitter's bound (up to 7)
    double min_photons = 0;        // an emitter fitted below this gives no row (fit_starts); the floor is 1 photon
};

struct FrameEmitterFit {
    float x, y, photons;
    float crlb_x, crlb_y, crlb_photons, crlb_background;   // Poisson Fisher, jointly with its neighbours
    bool empty;   // photons below min_photons: the data hold no emitter there
};

struct FrameFit {
    std::vector<FrameEmitterFit> emitters;   // one per start, in the starts' order
    float background = 0;
    double chi2 = 0;                          // Neyman chi^2 of the frame at the estimate (prior excluded)
    int32_t iterations = 0;
    bool converged = false;
};

Result check_starts_options(const StartsOptions& o);

// One frame: photons rows*cols row-major (photons above the offset, finite); x, y: n starts in pixels (centre
// of pixel (0,0) at (0,0)) inside [-0.5, cols-0.5) x [-0.5, rows-0.5). Start photons come from the image.
Result fit_frame(const float* photons, int64_t rows, int64_t cols, double psf_sigma, const float* x, const float* y,
                 int64_t n, const StartsOptions& o, FrameFit& out);

// Every frame of a stack (camera conversion as localize), frames in parallel (options.fit.threads; the rows do
// not depend on the thread count). psf_sigma from options.fit. start_frame: absolute frame indices,
// non-decreasing, first_frame..first_frame+frames-1. Rows ordered by frame, then start, without the empty
// emitters; status converged or max_iterations; group = frame * kGroupsPerFrame (the frame is one joint fit),
// n_in_group = its rows;
// background and chi2 the frame's; peak_row/col the start's pixel.
Result fit_starts(const ImageStack& stack, const Camera& camera, const LocalizeOptions& options,
                  const int64_t* start_frame, const float* start_x, const float* start_y, int64_t n_starts,
                  const StartsOptions& starts, int64_t first_frame, std::vector<MultiLocalization>& out);

}  // namespace spotcore
