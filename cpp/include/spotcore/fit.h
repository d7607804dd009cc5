// Levenberg–Marquardt fit of a pixel-integrated 2D Gaussian to square boxes.
// Model (Smith et al. 2010, Nat. Methods 7:373): mu(i,j) = b + N * Ex(j) * Ey(i), with
//   Ex(j) = 1/2 [erf((j + 1/2 - x) / (sqrt2 sx)) - erf((j - 1/2 - x) / (sqrt2 sx))].
#pragma once
#include "spotcore/types.h"

namespace spotcore {

// Widths of an astigmatic PSF against z (Huang et al. 2008, Science 319:810), per axis:
//   s(z) = s0 sqrt(1 + u^2 + A u^3 + B u^4),  u = (z - c) / d;  s0 in px, z, c, d in nm.
// Fits keep z inside [z_min, z_max] (the calibrated range).
struct Astigmatism {
    float s0_x = 1.3f, c_x = -300.0f, d_x = 400.0f, a_x = 0.0f, b_x = 0.0f;
    float s0_y = 1.3f, c_y = 300.0f, d_y = 400.0f, a_y = 0.0f, b_y = 0.0f;
    float z_min = -600.0f, z_max = 600.0f;
};

struct FitOptions {
    Model model = Model::gauss;
    Estimator estimator = Estimator::mle;
    int32_t box = 7;                // odd box side, 3..31
    float psf_sigma = 1.3f;         // start value (and the fixed value for Model::fixed_sigma), px
    int32_t max_iterations = 30;
    float tolerance = 1e-3f;        // stop when a step moves x, y, sigma < tol px and N, b < tol relative
    int32_t threads = 0;            // 0: OpenMP default
    Astigmatism astigmatism;        // Model::astigmatic only
};

// One fit. Coordinates are in the box's frame: the centre of box pixel (row 0, col 0) is (0, 0).
// Model::astigmatic: sigma_x, sigma_y are the widths at z; crlb_sigma_* propagate crlb_z through s(z).
// crlb_*: square roots of the diagonal of the inverse Fisher information (Poisson) at the estimate.
struct FitResult {
    float x, y, photons, background, sigma_x, sigma_y;
    float crlb_x, crlb_y, crlb_photons, crlb_background, crlb_sigma_x, crlb_sigma_y;
    float loglik;   // Poisson log-likelihood ratio to the saturated model (<= 0)
    float chi2;     // Pearson chi^2: sum (d - mu)^2 / mu
    int32_t iterations;
    FitStatus status;
    float z, crlb_z;  // Model::astigmatic: nm (NaN for the 2D models)
};

// Fit n boxes of box*box photons each (row-major, box after box). A NaN pixel marks "outside the
// image" (clipped boxes at borders) and is ignored. variance: null, or per-pixel read-noise
// variance in photons^2 with the same layout (sCMOS MLE, Huang et al. 2013).
// Results are identical for any thread count: each fit is independent and writes its own slot.
Result fit_boxes(const float* boxes, const float* variance, int64_t n, const FitOptions& options,
                 FitResult* results);

// Threads actually used for a request (0: OpenMP default), capped at kMaxThreads so that an absurd
// request or OMP_NUM_THREADS cannot exhaust the system's thread limit.
constexpr int kMaxThreads = 256;
int thread_count(int requested);

// Validates options (box odd and in range, sigma > 0, ...). Called by fit_boxes and localize.
Result check_fit_options(const FitOptions& options);

}  // namespace spotcore
