// Multi-emitter fitting (spotcore/multi.h): a resolved pair is found as two emitters, one spot stays one,
// bad options are errors, an empty region is a status, and localize_multi does not depend on threads.
// (fit_starts: test_frame_fit.cpp.)
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "check.h"
#include "spots.h"
#include "spotcore/multi.h"

using namespace spotcore;

using test_spots::image;

int main() {
    FitOptions fit;
    fit.psf_sigma = 1.3f;
    fit.box = 11;
    MultiOptions multi;
    multi.max_emitters = 4;
    RegionFit rf;

    // A pair 3 px apart, 3000 photons each: two emitters, each near its truth.
    int found_pairs = 0;
    for (unsigned seed = 1; seed <= 20; ++seed) {
        const std::vector<Emitter> truth{{3.6f, 5.2f, 3000}, {6.6f, 5.0f, 3000}};
        const std::vector<float> img = image(11, 11, truth, 20, 1.3, seed);
        Emitter start{5, 5, 3000};
        CHECK(fit_region(img.data(), nullptr, 11, fit, multi, &start, 1, rf).ok());
        if (rf.emitters.size() == 2) {
            ++found_pairs;
            for (const Emitter& t : truth) {
                double best = 1e9;
                for (const auto& e : rf.emitters) best = std::fmin(best, std::hypot(e.x - t.x, e.y - t.y));
                CHECK(best < 0.3);
            }
            for (const auto& e : rf.emitters) CHECK(e.status == FitStatus::converged && e.crlb_x > 0.01f && e.crlb_x < 0.2f);
        }
    }
    CHECK(found_pairs >= 19);

    // A pair 1.5 px (1.15 sigma) apart, 3000 photons each: found as two (measured 39 of 40).
    int close_pairs = 0;
    for (unsigned seed = 1; seed <= 40; ++seed) {
        const std::vector<Emitter> truth{{4.6f, 5.2f, 3000}, {6.1f, 5.1f, 3000}};
        const std::vector<float> img = image(11, 11, truth, 20, 1.3, 200 + seed);
        Emitter start{5, 5, 6000};
        CHECK(fit_region(img.data(), nullptr, 11, fit, multi, &start, 1, rf).ok());
        if (rf.emitters.size() != 2) continue;
        bool near = true;
        for (const Emitter& t : truth) {
            double best = 1e9;
            for (const auto& e : rf.emitters) best = std::fmin(best, std::hypot(e.x - t.x, e.y - t.y));
            near = near && best < 0.5;
        }
        close_pairs += near;
    }
    CHECK(close_pairs >= 36);

    // One spot: the LR test keeps one emitter (p = 1e-6).
    int single = 0;
    for (unsigned seed = 1; seed <= 20; ++seed) {
        const std::vector<float> img = image(11, 11, {{5.3f, 4.8f, 2000}}, 20, 1.3, 100 + seed);
        Emitter start{5, 5, 2000};
        CHECK(fit_region(img.data(), nullptr, 11, fit, multi, &start, 1, rf).ok());
        single += rf.emitters.size() == 1;
    }
    CHECK(single == 20);

    // Bad options and an all-NaN region.
    MultiOptions bad = multi;
    bad.max_emitters = 11;
    Emitter start{5, 5, 100};
    std::vector<float> img(121, NAN);
    CHECK(!fit_region(img.data(), nullptr, 11, fit, bad, &start, 1, rf).ok());
    bad.max_emitters = 0;
    CHECK(!check_multi_options(bad).ok());
    CHECK(fit_region(img.data(), nullptr, 11, fit, multi, &start, 1, rf).ok());
    CHECK(rf.emitters.size() == 1 && rf.emitters[0].status == FitStatus::not_fitted);

    // localize_multi: same rows for 1 and 2 threads.
    std::vector<Emitter> spots;
    std::mt19937 rng(7);
    for (int k = 0; k < 40; ++k)
        spots.push_back({float(4 + 56 * (rng() / double(rng.max()))), float(4 + 56 * (rng() / double(rng.max()))), 2000});
    std::vector<float> movie;
    for (unsigned f = 0; f < 4; ++f) {
        const std::vector<float> fr = image(64, 64, spots, 20, 1.3, 50 + f);
        movie.insert(movie.end(), fr.begin(), fr.end());
    }
    const ImageStack s = contiguous_stack(movie.data(), PixelType::f32, 4, 64, 64);
    LocalizeOptions opt;
    opt.fit = fit;
    opt.fit.box = 7;
    std::vector<MultiLocalization> a, b;
    opt.fit.threads = 1;
    CHECK(localize_multi(s, Camera{}, opt, multi, 0, a).ok());
    opt.fit.threads = 2;
    CHECK(localize_multi(s, Camera{}, opt, multi, 0, b).ok());
    CHECK(a.size() == b.size() && a.size() > 100);
    bool same = a.size() == b.size();
    for (size_t k = 0; same && k < a.size(); ++k)
        same = a[k].loc.fit.x == b[k].loc.fit.x && a[k].loc.fit.y == b[k].loc.fit.y && a[k].group == b[k].group;
    CHECK(same);

    if (failures) std::fprintf(stderr, "%d checks failed\n", failures);
    return failures;
}
