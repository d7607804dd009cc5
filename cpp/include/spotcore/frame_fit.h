// Whole-frame joint fit of many emitters from given starts (a detector's proposals in a crowded field).
// Every emitter of the frame and one flat background are fitted at once: least squares weighted by the
// data's Poisson variance (Neyman chi^2), Levenberg-Marquardt with the normal equations solved by
// conjugate gradients preconditioned by each emitter's own 3x3 block (the Jacobian is sparse: an emitter
// touches only its window). Fitting all together (not cluster by cluster) keeps two close emitters from
// being pulled onto one spot by neighbours held fixed elsewhere.
#pragma once
#include <cstdint>
#include <vector>

#include "spotcore/types.h"

namespace spotcore {

struct FrameFitOptions {
    double psf_sigma = 1.3;        // px, fixed width of the pixel-integrated Gaussian
    int32_t max_iterations = 60;   // Levenberg-Marquardt iterations
    double tolerance = 1e-5;       // stop when chi^2 falls by less than this fraction in an iteration
    int32_t window = 4;            // px each side of an emitter's pixel where its model is evaluated
    double max_shift = 0.5;        // px an emitter may move from its start
    double prior_sigma = 0.2;      // px: width of the Gaussian prior around each start (0: none)
    int32_t cg_iterations = 40;    // conjugate-gradient steps per Levenberg-Marquardt iteration
    int32_t warmup = 5;            // first iterations fit photons and background only (positions held)
    float crlb_radius = 2.5f;      // px: neighbours within this enter an emitter's (local joint) bound
};

struct FrameEmitterFit {
    float x, y, photons;
    float crlb_x, crlb_y, crlb_photons;   // Poisson Fisher of the emitter with its neighbours (crlb_radius)
};

struct FrameFit {
    std::vector<FrameEmitterFit> emitters;   // one per start, in the starts' order
    float background = 0;
    double chi2 = 0;                          // Neyman chi^2 of the whole frame at the estimate
    int32_t iterations = 0;
    bool converged = false;
};

Result check_frame_fit_options(const FrameFitOptions& o);

// photons: rows*cols row-major (photons above the offset). x, y: n starts in pixels (centre of pixel (0,0)
// at (0,0)), finite, inside the frame. Starts' photons are estimated from the image.
Result fit_frame(const float* photons, int64_t rows, int64_t cols, const float* x, const float* y, int64_t n,
                 const FrameFitOptions& o, FrameFit& out);

}  // namespace spotcore
