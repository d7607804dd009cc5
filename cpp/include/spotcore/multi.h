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

struct StartsOptions {
    int32_t sweeps = 2;        // 1..10 rounds of cluster fits (Jacobi: every cluster sees the previous round's emitters)
    float link = 2.0f;         // 0..20 px: starts closer than this are fitted jointly (connected components)
    int32_t max_cluster = 6;   // 1..kMaxEmitters: larger components are split into chunks of this many, in x order
    int32_t margin = 3;        // 0..15 px around a cluster's emitters in its square region (side 7..min(rows, cols, 31))
};

Result check_starts_options(const StartsOptions& starts);

// Joint fits started at given positions (a detector's candidates). Start photons: Poisson EM for the
// amplitudes of all starts of the frame and a flat background at the given positions (from the peak
// height above the frame's median), at least 50. Per frame and round, clusters of starts are fitted
// together (fit_emitters; psf_sigma, tolerance and max_iterations from options.fit, at most 10 px) with
// every other emitter of the frame entering as a fixed offset (its rendered model). An emitter
// whose fit is singular, out of its region or of the frame, or non-finite is dropped (also from later
// rounds). start_frame: absolute frame indices, non-decreasing, first_frame..first_frame+frames-1; x, y in
// image pixels inside [-0.5, cols-0.5) x [-0.5, rows-0.5). Output ordered by frame, then cluster (group =
// frame * kGroupsPerFrame + cluster index of the last round), then emitter; identical for any thread count.
Result fit_starts(const ImageStack& stack, const Camera& camera, const LocalizeOptions& options,
                  const int64_t* start_frame, const float* start_x, const float* start_y, int64_t n_starts,
                  const StartsOptions& starts, int64_t first_frame, std::vector<MultiLocalization>& out);

}  // namespace spotcore
