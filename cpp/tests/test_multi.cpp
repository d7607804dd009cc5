// Multi-emitter fitting (spotcore/multi.h): a resolved pair is found as two emitters, one spot stays one,
// bad options are errors, an empty region is a status, localize_multi does not depend on threads, and
// fit_starts recovers close pairs from perturbed starts.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "spotcore/multi.h"

using namespace spotcore;

namespace {

double integ(double a, double b, double c, double s) {
    return 0.5 * (std::erf((b - c) / (std::sqrt(2.0) * s)) - std::erf((a - c) / (std::sqrt(2.0) * s)));
}

// Poisson image of spots (x, y, N) on background b, S x S.
std::vector<float> image(int rows, int cols, const std::vector<Emitter>& spots, double b, double sigma, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<float> img(size_t(rows * cols));
    for (int i = 0; i < rows; ++i)
        for (int j = 0; j < cols; ++j) {
            double mu = b;
            for (const Emitter& e : spots)
                mu += e.photons * integ(j - 0.5, j + 0.5, e.x, sigma) * integ(i - 0.5, i + 0.5, e.y, sigma);
            img[size_t(i * cols + j)] = float(std::poisson_distribution<int>(mu)(rng));
        }
    return img;
}

}  // namespace

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

    // fit_starts: 6 frames of 24 pairs 1-2 px apart (0.8-1.5 sigma), each member started 0.3 px off its
    // truth in a random direction; 1 vs 2 vs 3 threads; bad starts and options; zero starts.
    {
        const int F = 6, rows = 64, cols = 64;
        std::vector<Emitter> truth;
        std::vector<float> frames;
        std::vector<int64_t> sf;
        std::vector<float> sx, sy;
        std::mt19937 g(11);
        std::uniform_real_distribution<double> u(0, 1);
        std::vector<std::vector<Emitter>> per_frame;
        for (int f = 0; f < F; ++f) {
            std::vector<Emitter> t;
            for (int a = 0; a < 6; ++a)
                for (int b = 0; b < 4; ++b) {
                    const double cx = 6 + 10 * a + u(g), cy = 8 + 15 * b + u(g), d = 1 + u(g), phi = 2 * M_PI * u(g);
                    t.push_back({float(cx - 0.5 * d * std::cos(phi)), float(cy - 0.5 * d * std::sin(phi)), 3000});
                    t.push_back({float(cx + 0.5 * d * std::cos(phi)), float(cy + 0.5 * d * std::sin(phi)), 2000});
                }
            const std::vector<float> fr = image(rows, cols, t, 20, 1.3, 300 + unsigned(f));
            frames.insert(frames.end(), fr.begin(), fr.end());
            for (const Emitter& e : t) {
                const double phi = 2 * M_PI * u(g);
                sf.push_back(10 + f);
                sx.push_back(float(e.x + 0.3 * std::cos(phi)));
                sy.push_back(float(e.y + 0.3 * std::sin(phi)));
            }
            per_frame.push_back(t);
        }
        const ImageStack st = contiguous_stack(frames.data(), PixelType::f32, F, rows, cols);
        LocalizeOptions o;
        o.fit.psf_sigma = 1.3f;
        o.fit.tolerance = 0.01f;
        o.fit.max_iterations = 60;
        StartsOptions so;
        so.link = 3.5f;  // both members of a pair (<= 2.6 px apart as started) in one cluster; pairs >= 6 px apart
        std::vector<MultiLocalization> r1, r2, r3;
        const int64_t n = int64_t(sx.size());
        o.fit.threads = 1;
        CHECK(fit_starts(st, Camera{}, o, sf.data(), sx.data(), sy.data(), n, so, 10, r1).ok());
        // A truth is recovered when its nearest row is converged and within 4 bounds in x and y.
        int failed_close = 0, failed_far = 0, close = 0;
        for (int f = 0; f < F; ++f) {
            const std::vector<Emitter>& t = per_frame[size_t(f)];
            for (size_t k = 0; k < t.size(); ++k) {
                const Emitter& partner = t[k ^ 1];
                const bool is_close = std::hypot(t[k].x - partner.x, t[k].y - partner.y) < 1.5;
                close += is_close;
                const MultiLocalization* best = nullptr;
                double bd = 1e9;
                for (const MultiLocalization& m : r1) {
                    const double d = std::hypot(m.loc.fit.x - t[k].x, m.loc.fit.y - t[k].y);
                    if (m.loc.frame == 10 + f && d < bd) {
                        bd = d;
                        best = &m;
                    }
                }
                const FitResult* fr = best ? &best->loc.fit : nullptr;
                const bool ok = fr && fr->status == FitStatus::converged && std::fabs(fr->x - t[k].x) <= 4 * fr->crlb_x &&
                                std::fabs(fr->y - t[k].y) <= 4 * fr->crlb_y && best->n_in_group == 2;
                (is_close ? failed_close : failed_far) += !ok;
            }
        }
        std::fprintf(stderr, "fit_starts: %zu rows for %lld starts; not recovered: %d of %d at 1-1.5 px, %d of %d at 1.5-2 px\n",
                     r1.size(), (long long)n, failed_close, close, failed_far, int(n) - close);
        // Measured: 6 of 134 and 0 of 154. Below 1.5 px (1.15 sigma) a pair can fall into the one-spot local
        // optimum of the likelihood (one emitter takes both, the other drifts off: fit_region's split start
        // exists for this); 10% allowed there. Above it, 1 allowed (a 4-bound miss has p ~ 1e-4 per coordinate).
        CHECK(int64_t(r1.size()) <= n && failed_close <= close / 10 && failed_far <= 1);
        for (size_t k = 1; k < r1.size(); ++k) CHECK(r1[k].loc.frame > r1[k - 1].loc.frame || r1[k].group >= r1[k - 1].group);
        o.fit.threads = 2;
        CHECK(fit_starts(st, Camera{}, o, sf.data(), sx.data(), sy.data(), n, so, 10, r2).ok());
        o.fit.threads = 3;
        CHECK(fit_starts(st, Camera{}, o, sf.data(), sx.data(), sy.data(), n, so, 10, r3).ok());
        bool identical = r1.size() == r2.size() && r1.size() == r3.size();
        for (size_t k = 0; identical && k < r1.size(); ++k)
            for (const auto* o2 : {&r2[k], &r3[k]})
                identical = identical && std::memcmp(&r1[k].loc.fit, &o2->loc.fit, sizeof(FitResult)) == 0 &&
                            r1[k].group == o2->group && r1[k].n_in_group == o2->n_in_group &&
                            r1[k].loc.frame == o2->loc.frame;
        CHECK(identical);

        // Bad starts and options: invalid_argument, nothing appended; zero starts: ok and empty.
        const auto status_of = [&](std::vector<int64_t> f, std::vector<float> x, std::vector<float> y, StartsOptions opts) {
            std::vector<MultiLocalization> v;
            const Result res = fit_starts(st, Camera{}, o, f.data(), x.data(), y.data(), int64_t(f.size()), opts, 10, v);
            return v.empty() ? res.status : Status::ok;
        };
        CHECK(status_of({9}, {5}, {5}, so) == Status::invalid_argument);               // frame before first_frame
        CHECK(status_of({16}, {5}, {5}, so) == Status::invalid_argument);              // past the last frame
        CHECK(status_of({11, 10}, {5, 5}, {5, 5}, so) == Status::invalid_argument);   // frames decreasing
        CHECK(status_of({10}, {NAN}, {5}, so) == Status::invalid_argument);
        CHECK(status_of({10}, {5}, {INFINITY}, so) == Status::invalid_argument);
        CHECK(status_of({10}, {63.5f}, {5}, so) == Status::invalid_argument);          // x >= cols - 0.5
        CHECK(status_of({10}, {5}, {-0.6f}, so) == Status::invalid_argument);
        CHECK(status_of({10}, {-0.5f}, {5}, so) == Status::ok);                        // the first pixel's edge
        StartsOptions bad_so = so;
        bad_so.sweeps = 0;
        CHECK(status_of({10}, {5}, {5}, bad_so) == Status::invalid_argument);
        bad_so = so;
        bad_so.max_cluster = kMaxEmitters + 1;
        CHECK(status_of({10}, {5}, {5}, bad_so) == Status::invalid_argument);
        bad_so = so;
        bad_so.link = NAN;
        CHECK(status_of({10}, {5}, {5}, bad_so) == Status::invalid_argument);
        std::vector<MultiLocalization> none;
        CHECK(fit_starts(st, Camera{}, o, nullptr, nullptr, nullptr, 0, so, 10, none).ok() && none.empty());
        CHECK(!fit_starts(st, Camera{}, o, nullptr, nullptr, nullptr, 1, so, 10, none).ok());
    }
    if (failures) std::fprintf(stderr, "%d checks failed\n", failures);
    return failures;
}
