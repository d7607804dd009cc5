// Crowded fields: joint fits of several emitters that share a background, with model selection by a
// likelihood-ratio test (ThunderSTORM's multi-emitter fitting analysis, Ovesny et al. 2014, Bioinformatics
// 30:2389) and detection on the residual of the fitted models (3D-DAOSTORM, Babcock et al. 2012, Opt.
// Nanoscopy 1:6). Fits are Poisson MLE (Laurence & Chromy 2010) of pixel-integrated Gaussians of fixed
// width FitOptions::psf_sigma; each emitter's Cramer-Rao bound comes from the joint Fisher matrix.
#pragma once
#include <vector>

#include "spotcore/localize.h"
#include "spotcore/types.h"

namespace spotcore {

constexpr int32_t kMaxEmitters = 10;
constexpr int64_t kGroupsPerFrame = int64_t(1) << 24;

struct MultiOptions {
    int32_t max_emitters = 1;         // 1..kMaxEmitters emitters per region; 1 = the single-emitter pipeline
    double p_value = 1e-6;            // keep k+1 emitters only when the LR test rejects k at this level
    int32_t cycles = 3;               // residual re-detection cycles after the first pass (0..10)
    float redetect_factor = 0.5f;     // residual threshold = this x the first pass's threshold (photons)
    float merge_distance = 1.0f;      // emitters closer than this x psf_sigma: the dimmer one is dropped
};

// Start value or result of one emitter, in region coordinates (centre of region pixel (0,0) is (0,0)).
struct Emitter {
    float x = 0, y = 0, photons = 0;
};

struct EmitterFit {
    float x, y, photons;
    float crlb_x, crlb_y, crlb_photons;
    FitStatus status;   // unreliable: crlb_x or crlb_y over 0.3 psf_sigma (not told apart from its neighbours)
};

struct RegionFit {
    std::vector<EmitterFit> emitters;
    float background = 0, crlb_background = 0;
    double loglik = 0;   // Poisson log-likelihood ratio to the saturated model (<= 0)
    double chi2 = 0;     // Pearson chi^2
    int32_t iterations = 0;
    bool converged = false;
};

// Joint fit of `count` emitters plus one background to a size*size region (row-major photons, NaN pixels
// ignored). offset: null, or photons per pixel known to come from elsewhere (emitters fitted in other
// regions), added to the model. Never throws; a fit that cannot run gives status not_fitted/singular.
Result fit_emitters(const float* region, const float* offset, int32_t size, const FitOptions& fit,
                    const Emitter* start, int32_t count, RegionFit& out);

// Model selection from `count` start emitters: fit, then add an emitter at the residual's maximum and
// refit, while the larger model is significantly better (LR test, 3 more parameters) and below
// max_emitters. out: the model kept.
Result fit_region(const float* region, const float* offset, int32_t size, const FitOptions& fit,
                  const MultiOptions& multi, const Emitter* start, int32_t count, RegionFit& out);

struct MultiLocalization {
    Localization loc;    // x, y in image pixels; peak_row/col: the region's centre; fit.background shared
    int64_t group;       // the region: frame * kGroupsPerFrame + region index in the frame (chunking-independent)
    int32_t n_in_group;  // emitters fitted jointly in that region's kept model
};

Result check_multi_options(const MultiOptions& multi);

// localize() with multi-emitter fitting. opt.fit.box is the region side; opt.fit.model is ignored (the
// width is fixed at psf_sigma). Output ordered by frame, then region; identical for any thread count.
Result localize_multi(const ImageStack& stack, const Camera& camera, const LocalizeOptions& options,
                      const MultiOptions& multi, int64_t first_frame, std::vector<MultiLocalization>& out);

}  // namespace spotcore
