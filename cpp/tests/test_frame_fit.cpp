// Joint frame fits from given starts (spotcore/frame_fit.h): without the prior a frame of isolated spots and
// close pairs, each started 0.3 px off, is fitted to within a few Cramer-Rao bounds of the truth; with the
// prior every emitter stays within max_shift of its start; rows do not depend on the thread count; bad starts,
// options and non-finite pixels are errors; zero starts are fine.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "check.h"
#include "spots.h"
#include "spotcore/frame_fit.h"

using namespace spotcore;

using test_spots::image;

int main() {
    // 6 frames 64 x 64, each: 8 isolated spots and 8 pairs 1.5-3 px apart (1.15-2.3 sigma), 2000 photons
    // each on 20 per pixel; every start 0.3 px off its truth in a random direction.
    const int F = 6, rows = 64, cols = 64;
    const double sigma = 1.3;
    std::vector<float> frames;
    std::vector<int64_t> sf;
    std::vector<float> sx, sy;
    std::vector<std::vector<Emitter>> per_frame;
    std::vector<int> kind;   // per start: 0 isolated, 1 pair member 1.5-2.2 px apart, 2 pair member 2.2-3 px
    std::mt19937 g(11);
    std::uniform_real_distribution<double> u(0, 1);
    for (int f = 0; f < F; ++f) {
        std::vector<Emitter> t;
        for (int a = 0; a < 4; ++a)
            for (int b = 0; b < 4; ++b) {
                const double cx = 7 + 16 * a + u(g), cy = 7 + 16 * b + u(g);
                if ((a + b) % 2 == 0) {
                    t.push_back({float(cx), float(cy), 2000});
                    kind.push_back(0);
                } else {
                    const double d = 1.5 + 1.5 * u(g), phi = 2 * M_PI * u(g);
                    t.push_back({float(cx - 0.5 * d * std::cos(phi)), float(cy - 0.5 * d * std::sin(phi)), 2000});
                    t.push_back({float(cx + 0.5 * d * std::cos(phi)), float(cy + 0.5 * d * std::sin(phi)), 2000});
                    kind.push_back(d < 2.2 ? 1 : 2);
                    kind.push_back(d < 2.2 ? 1 : 2);
                }
            }
        const std::vector<float> fr = image(rows, cols, t, 20, sigma, 300 + unsigned(f));
        frames.insert(frames.end(), fr.begin(), fr.end());
        for (const Emitter& e : t) {
            const double phi = 2 * M_PI * u(g);
            sf.push_back(10 + f);
            sx.push_back(float(e.x + 0.3 * std::cos(phi)));
            sy.push_back(float(e.y + 0.3 * std::sin(phi)));
        }
        per_frame.push_back(t);
    }
    const int64_t n = int64_t(sx.size());
    const ImageStack st = contiguous_stack(frames.data(), PixelType::f32, F, rows, cols);
    LocalizeOptions o;
    o.fit.psf_sigma = float(sigma);

    // Plain fit (no prior): rows in the starts' order, each within 4 bounds of its truth in x and y.
    StartsOptions plain;
    plain.prior_sigma = 0;
    std::vector<MultiLocalization> r1, r2, r3;
    o.fit.threads = 1;
    CHECK(fit_starts(st, Camera{}, o, sf.data(), sx.data(), sy.data(), n, plain, 10, r1).ok());
    CHECK(int64_t(r1.size()) == n);
    int missed[3] = {0, 0, 0}, count[3] = {0, 0, 0};
    double z2 = 0;
    int nz = 0;
    if (int64_t(r1.size()) == n) {
        int64_t k = 0;
        for (int f = 0; f < F; ++f)
            for (const Emitter& t : per_frame[size_t(f)]) {
                const MultiLocalization& m = r1[size_t(k)];
                const FitResult& fr = m.loc.fit;
                CHECK(m.loc.frame == 10 + f && m.group == (10 + f) * kGroupsPerFrame &&
                      m.n_in_group == int32_t(per_frame[size_t(f)].size()));
                CHECK(m.loc.peak_col == int32_t(std::lround(sx[size_t(k)])) &&
                      m.loc.peak_row == int32_t(std::lround(sy[size_t(k)])));
                CHECK(fr.status == FitStatus::converged || fr.status == FitStatus::max_iterations);
                const double zx = (fr.x - t.x) / fr.crlb_x, zy = (fr.y - t.y) / fr.crlb_y;
                const bool ok = std::isfinite(zx) && std::isfinite(zy) && std::fabs(zx) <= 4 && std::fabs(zy) <= 4;
                const int c = kind[size_t(k)];
                ++count[c];
                missed[c] += !ok;
                if (c == 0 && ok) {
                    z2 += zx * zx + zy * zy;
                    nz += 2;
                }
                ++k;
            }
    }
    const double rms_z = nz ? std::sqrt(z2 / nz) : 0;
    std::fprintf(stderr, "fit_frame plain: outside 4 bounds: %d of %d isolated, %d of %d at 1.5-2.2 px, %d of %d at "
                 "2.2-3 px; isolated rms z %.3f\n", missed[0], count[0], missed[1], count[1], missed[2], count[2], rms_z);
    // A 4-bound miss has p ~ 6e-5 per coordinate for an efficient estimator: none allowed for isolated spots
    // (48 x 2 coordinates), 1 for 2.2-3 px pairs; 1.5-2.2 px pairs (<= 1.7 sigma) may slip into the one-spot
    // local optimum from a 0.3 px start, 1 in 20 allowed. Measured: 0, 0, 0. (Frame 1 once stalled at its
    // starts: lambda inflated by a stalled photons-only warm-up; every emitter there missed.)
    CHECK(missed[0] == 0 && missed[2] <= 1 && missed[1] <= count[1] / 20);
    // The bound is attained for isolated spots: rms z within 20% of 1 (96 coordinates: the rms has a standard
    // error of ~7%, so +-20% is ~3 standard errors; measured 1.03).
    CHECK(rms_z > 0.8 && rms_z < 1.2);

    // 1, 2, 3 threads: byte-identical rows.
    o.fit.threads = 2;
    CHECK(fit_starts(st, Camera{}, o, sf.data(), sx.data(), sy.data(), n, plain, 10, r2).ok());
    o.fit.threads = 3;
    CHECK(fit_starts(st, Camera{}, o, sf.data(), sx.data(), sy.data(), n, plain, 10, r3).ok());
    bool identical = r1.size() == r2.size() && r1.size() == r3.size();
    for (size_t k = 0; identical && k < r1.size(); ++k)
        for (const auto* o2 : {&r2[k], &r3[k]})
            identical = identical && std::memcmp(&r1[k].loc.fit, &o2->loc.fit, sizeof(FitResult)) == 0 &&
                        r1[k].group == o2->group && r1[k].n_in_group == o2->n_in_group &&
                        r1[k].loc.frame == o2->loc.frame;
    CHECK(identical);

    // With the prior (default options, and a tight max_shift): every emitter within max_shift of its start.
    for (double shift : {2.0, 0.4}) {
        StartsOptions so;
        so.max_shift = shift;
        std::vector<MultiLocalization> r;
        o.fit.threads = 2;
        CHECK(fit_starts(st, Camera{}, o, sf.data(), sx.data(), sy.data(), n, so, 10, r).ok());
        CHECK(int64_t(r.size()) == n);
        double worst = 0;   // max_shift bounds x and y each
        for (size_t k = 0; k < r.size(); ++k)
            worst = std::fmax(worst, std::fmax(std::fabs(r[k].loc.fit.x - sx[k]), std::fabs(r[k].loc.fit.y - sy[k])));
        std::fprintf(stderr, "fit_frame prior 0.2 px, max_shift %.1f: largest move in x or y %.3f px\n", shift, worst);
        CHECK(worst <= shift + 1e-5);
    }

    // fit_frame on one frame gives the same emitters as fit_starts' rows for it.
    {
        FrameFit ff;
        const int64_t b = int64_t(per_frame[0].size());
        CHECK(fit_frame(frames.data(), rows, cols, double(o.fit.psf_sigma), sx.data(), sy.data(), b, plain, ff).ok());
        CHECK(int64_t(ff.emitters.size()) == b);
        bool same = int64_t(ff.emitters.size()) == b;
        for (int64_t k = 0; same && k < b; ++k)
            same = ff.emitters[size_t(k)].x == r1[size_t(k)].loc.fit.x && ff.emitters[size_t(k)].y == r1[size_t(k)].loc.fit.y;
        CHECK(same);
        CHECK(std::fabs(ff.background - 20) < 1);   // 4096 pixels of mean 20
        // Zero starts: ok, nothing fitted.
        CHECK(fit_frame(frames.data(), rows, cols, sigma, nullptr, nullptr, 0, plain, ff).ok() && ff.emitters.empty());
        // Non-finite pixels: an error, not a fit.
        std::vector<float> bad(frames.begin(), frames.begin() + rows * cols);
        bad[size_t(5 * cols + 9)] = NAN;
        CHECK(fit_frame(bad.data(), rows, cols, sigma, sx.data(), sy.data(), b, plain, ff).status == Status::invalid_argument);
        for (float& v : bad) v = NAN;
        CHECK(fit_frame(bad.data(), rows, cols, sigma, sx.data(), sy.data(), b, plain, ff).status == Status::invalid_argument);
        bad[0] = INFINITY;
        CHECK(fit_frame(bad.data(), rows, cols, sigma, sx.data(), sy.data(), b, plain, ff).status == Status::invalid_argument);
        CHECK(fit_frame(frames.data(), rows, cols, 0.1, sx.data(), sy.data(), b, plain, ff).status == Status::invalid_argument);
        // A NaN pixel in a stack's frame: fit_starts fails with that frame's error and appends nothing.
        std::vector<float> stack2(frames);
        stack2[size_t(3 * rows * cols + 100)] = NAN;
        const ImageStack st2 = contiguous_stack(stack2.data(), PixelType::f32, F, rows, cols);
        std::vector<MultiLocalization> v;
        CHECK(fit_starts(st2, Camera{}, o, sf.data(), sx.data(), sy.data(), n, plain, 10, v).status ==
                  Status::invalid_argument && v.empty());
    }

    // Bad starts and options: invalid_argument, nothing appended; zero starts: ok and empty.
    const auto status_of = [&](std::vector<int64_t> f, std::vector<float> x, std::vector<float> y, StartsOptions opts) {
        std::vector<MultiLocalization> v;
        const Result res = fit_starts(st, Camera{}, o, f.data(), x.data(), y.data(), int64_t(f.size()), opts, 10, v);
        return v.empty() ? res.status : Status::ok;
    };
    const StartsOptions so;
    CHECK(status_of({9}, {5}, {5}, so) == Status::invalid_argument);               // frame before first_frame
    CHECK(status_of({16}, {5}, {5}, so) == Status::invalid_argument);              // past the last frame
    CHECK(status_of({11, 10}, {5, 5}, {5, 5}, so) == Status::invalid_argument);   // frames decreasing
    CHECK(status_of({10}, {NAN}, {5}, so) == Status::invalid_argument);
    CHECK(status_of({10}, {5}, {INFINITY}, so) == Status::invalid_argument);
    CHECK(status_of({10}, {63.5f}, {5}, so) == Status::invalid_argument);          // x >= cols - 0.5
    CHECK(status_of({10}, {5}, {-0.6f}, so) == Status::invalid_argument);
    CHECK(status_of({10}, {-0.5f}, {5}, so) == Status::ok);                        // the first pixel's edge
    CHECK(status_of({10, 10}, {5, 5}, {5, 5}, so) == Status::ok);                  // two starts on one spot
    const auto bad_option = [&](auto set) {
        StartsOptions b = so;
        set(b);
        return !check_starts_options(b).ok() && status_of({10}, {5}, {5}, b) == Status::invalid_argument;
    };
    CHECK(bad_option([](StartsOptions& b) { b.max_iterations = 0; }));
    CHECK(bad_option([](StartsOptions& b) { b.max_iterations = 1001; }));
    CHECK(bad_option([](StartsOptions& b) { b.tolerance = 0; }));
    CHECK(bad_option([](StartsOptions& b) { b.tolerance = NAN; }));
    CHECK(bad_option([](StartsOptions& b) { b.window = 0; }));
    CHECK(bad_option([](StartsOptions& b) { b.window = 17; }));
    CHECK(bad_option([](StartsOptions& b) { b.cg_iterations = 0; }));
    CHECK(bad_option([](StartsOptions& b) { b.warmup = -1; }));
    CHECK(bad_option([](StartsOptions& b) { b.max_shift = -0.1; }));
    CHECK(bad_option([](StartsOptions& b) { b.max_shift = INFINITY; }));
    CHECK(bad_option([](StartsOptions& b) { b.prior_sigma = NAN; }));
    CHECK(bad_option([](StartsOptions& b) { b.prior_sigma = 17; }));
    CHECK(bad_option([](StartsOptions& b) { b.crlb_radius = -1; }));
    LocalizeOptions bad_psf = o;
    bad_psf.fit.psf_sigma = 0.2f;
    std::vector<MultiLocalization> none;
    CHECK(fit_starts(st, Camera{}, bad_psf, sf.data(), sx.data(), sy.data(), n, so, 10, none).status ==
          Status::invalid_argument);
    CHECK(fit_starts(st, Camera{}, o, nullptr, nullptr, nullptr, 0, so, 10, none).ok() && none.empty());
    CHECK(!fit_starts(st, Camera{}, o, nullptr, nullptr, nullptr, 1, so, 10, none).ok());
    if (failures) std::fprintf(stderr, "%d checks failed\n", failures);
    return failures;
}
