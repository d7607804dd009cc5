// C++ test of the drift loops (spotcore/drift.h): exact recovery of known shifts, thread determinism,
// mass conservation of the histogram, bad input.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "spotcore/spotcore.h"

using namespace spotcore;

#include "check.h"

// Separable Gaussian blur (sigma in bins) of an image, as the Python layer does with scipy.
static void blur(std::vector<float>& img, int64_t nx, int64_t ny, double s) {
    const int R = int(std::ceil(3 * s));
    std::vector<double> k(2 * R + 1);
    for (int i = -R; i <= R; ++i) k[i + R] = std::exp(-0.5 * i * i / (s * s));
    std::vector<float> tmp(img.size(), 0.0f);
    for (int64_t y = 0; y < ny; ++y)
        for (int64_t x = 0; x < nx; ++x) {
            double a = 0;
            for (int i = -R; i <= R; ++i)
                if (x + i >= 0 && x + i < nx) a += k[i + R] * img[y * nx + x + i];
            tmp[y * nx + x] = float(a);
        }
    for (int64_t y = 0; y < ny; ++y)
        for (int64_t x = 0; x < nx; ++x) {
            double a = 0;
            for (int i = -R; i <= R; ++i)
                if (y + i >= 0 && y + i < ny) a += k[i + R] * tmp[(y + i) * nx + x];
            img[y * nx + x] = float(a);
        }
}

struct Scene {
    std::vector<double> x, y;          // segment points, sorted by segment
    std::vector<int64_t> starts, ends;
    std::vector<double> truth;         // shift that moves segment k back onto the sites (x, y)
    std::vector<float> image;          // blurred reference
    DriftGrid grid;
};

// 200 random sites in a 32x32 px field; the reference holds 20 noisy copies of each; segment k holds 300
// points of random sites moved by a drift (slow walk, and a 0.8 px jump from segment jump_at on).
static Scene scene(int segments, int jump_at, unsigned seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> u(2.0, 30.0);
    std::normal_distribution<double> noise(0.0, 0.05), walk(0.0, 0.01);
    std::vector<double> sx(200), sy(200);
    for (int i = 0; i < 200; ++i) {
        sx[i] = u(rng);
        sy[i] = u(rng);
    }
    Scene s;
    s.grid.x0 = -2.0;
    s.grid.y0 = -2.0;
    s.grid.bin = 0.05;
    s.grid.nx = s.grid.ny = 760;
    s.image.assign(size_t(s.grid.nx * s.grid.ny), 0.0f);
    std::vector<double> rx, ry;
    for (int c = 0; c < 20; ++c)
        for (int i = 0; i < 200; ++i) {
            rx.push_back(sx[i] + noise(rng));
            ry.push_back(sy[i] + noise(rng));
        }
    CHECK(drift_histogram(rx.data(), ry.data(), nullptr, int64_t(rx.size()), s.grid, s.image.data()).ok());
    blur(s.image, s.grid.nx, s.grid.ny, 2.0);  // 0.1 px
    double dx = 0, dy = 0;
    std::uniform_int_distribution<int> pick(0, 199);
    for (int k = 0; k < segments; ++k) {
        dx += walk(rng);
        dy += walk(rng);
        const double jx = k >= jump_at ? 0.8 : 0.0, jy = k >= jump_at ? -0.3 : 0.0;
        s.starts.push_back(int64_t(s.x.size()));
        for (int p = 0; p < 300; ++p) {
            const int i = pick(rng);
            s.x.push_back(sx[i] + dx + jx + noise(rng));
            s.y.push_back(sy[i] + dy + jy + noise(rng));
        }
        s.ends.push_back(int64_t(s.x.size()));
        s.truth.push_back(-(dx + jx));
        s.truth.push_back(-(dy + jy));
    }
    return s;
}

static void test_track_recovers_shifts_and_jump() {
    Scene s = scene(40, 25, 7);
    DriftTrackOptions o;
    o.radius = 1.5;
    o.coarse_step = 0.1;
    o.step = 0.05;
    o.drop = 0.75;
    const int64_t n = int64_t(s.starts.size());
    std::vector<double> shifts(2 * n), score(n);
    CHECK(drift_track(s.image.data(), s.grid, s.x.data(), s.y.data(), s.starts.data(), s.ends.data(), n, o,
                      shifts.data(), score.data()).ok());
    double worst = 0;
    for (int64_t k = 0; k < 2 * n; ++k) worst = std::max(worst, std::fabs(shifts[k] - s.truth[k]));
    // 300 points of 0.05 px noise against a 0.1 px kernel: ~0.006 px per segment; 0.03 px is 5 sigma.
    CHECK(worst < 0.03);
    if (!(worst < 0.03)) std::fprintf(stderr, "worst shift error %g px\n", worst);
    for (int64_t k = 0; k < n; ++k) CHECK(score[k] > 0);
}

static void test_stencil_threads_and_peak() {
    Scene s = scene(40, 1000, 11);
    const int64_t n = int64_t(s.starts.size());
    std::vector<double> a(13 * n), b(13 * n);
    CHECK(drift_stencil(s.image.data(), s.grid, s.x.data(), s.y.data(), s.starts.data(), s.ends.data(), n,
                        s.truth.data(), 0.05, 1, a.data()).ok());
    CHECK(drift_stencil(s.image.data(), s.grid, s.x.data(), s.y.data(), s.starts.data(), s.ends.data(), n,
                        s.truth.data(), 0.05, 4, b.data()).ok());
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(double)) == 0);
    for (int64_t k = 0; k < n; ++k) {
        const double* r = a.data() + 13 * k;
        for (int j = 0; j < 9; ++j) CHECK(r[4] >= r[j] * 0.98);  // the truth is (near) the top of the stencil
        CHECK(r[12] == 300.0);
        CHECK(r[9] > 0 && r[11] > 0);
    }
}

static void test_histogram_mass() {
    DriftGrid g;
    g.x0 = 0;
    g.y0 = 0;
    g.bin = 0.5;
    g.nx = 10;
    g.ny = 8;
    std::vector<double> x = {1.0, 2.3, 4.49, -0.2, 100.0, std::nan("")}, y = {1.0, 0.7, 3.49, 0.0, 1.0, 1.0};
    std::vector<double> w = {1, 2, 3, 1, 1, 1};
    std::vector<float> img(80, 0.0f);
    CHECK(drift_histogram(x.data(), y.data(), w.data(), 6, g, img.data()).ok());
    double total = 0;
    for (float v : img) total += v;
    // The first three are inside: all their weight; (-0.2, 0) keeps 60 %; far and NaN points none.
    CHECK(std::fabs(total - 6.6) < 1e-5);
    CHECK(std::fabs(img[2 * 10 + 2] - 1.0) < 1e-6);  // (1, 1) is bin (2, 2)
}

// The sparse density holds the dense histogram's bins, and its one-bin stencil the dense stencil's values
// (float weights: to 1e-5 relative), with points at the grid's edges, outside it and in empty tiles.
static void test_sparse_density_matches_dense() {
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<double> u(-1.5, 43.5), c(0.0, 1.0);
    DriftGrid g;
    g.x0 = 0.3;
    g.y0 = -0.2;
    g.bin = 0.25;
    g.nx = 169;  // not a multiple of the tile: partial tiles at the far edges
    g.ny = 163;
    std::vector<double> x, y;
    for (int k = 0; k < 4000; ++k) {  // clusters (most tiles empty) and uniform points over and beyond the grid
        const bool cluster = k % 50 != 0;
        x.push_back(cluster ? 10.0 + (k % 3) * 12.0 + c(rng) : u(rng));
        y.push_back(cluster ? 5.0 + (k % 5) * 7.0 + c(rng) : u(rng));
    }
    const int64_t n = int64_t(x.size()), segs = 20;
    std::vector<int64_t> starts(segs), ends(segs);
    for (int64_t k = 0; k < segs; ++k) starts[k] = k * n / segs, ends[k] = (k + 1) * n / segs;
    std::vector<float> dense(size_t(g.nx * g.ny), 0.0f);
    for (int64_t k = 1; k < segs; k += 2)
        CHECK(drift_histogram(x.data() + starts[k], y.data() + starts[k], nullptr, ends[k] - starts[k], g,
                              dense.data()).ok());
    DriftDensity d;
    CHECK(drift_density(x.data(), y.data(), starts.data(), ends.data(), segs, 1, 2, g, &d).ok());
    int64_t stored = 0;
    for (int32_t t : d.tile) stored += t >= 0;
    CHECK(stored > 0 && stored < d.tiles_x * d.tiles_y);  // sparse
    // Stored bins (core and border copies) equal the dense bins; the cores of tiles not stored are zero.
    double worst = 0;
    for (int64_t ty = 0; ty < d.tiles_y; ++ty)
        for (int64_t tx = 0; tx < d.tiles_x; ++tx) {
            const int32_t t = d.tile[size_t(ty * d.tiles_x + tx)];
            for (int64_t r = 0; r < kDriftTileSide; ++r)
                for (int64_t q = 0; q < kDriftTileSide; ++q) {
                    const int64_t i = ty * kDriftTile - 1 + r, j = tx * kDriftTile - 1 + q;
                    const float want = i >= 0 && j >= 0 && i < g.ny && j < g.nx ? dense[size_t(i * g.nx + j)] : 0.0f;
                    const bool core = r >= 1 && q >= 1 && r <= kDriftTile && q <= kDriftTile;
                    if (t < 0 && !core) continue;
                    const float got = t >= 0 ? d.data[size_t(t) * kDriftTileSide * kDriftTileStride +
                                                      size_t(r * kDriftTileStride + q)] : 0.0f;
                    worst = std::max(worst, double(std::fabs(got - want)));
                }
        }
    CHECK(worst < 1e-5);
    std::vector<double> centres(2 * segs), a(13 * segs), b(13 * segs);
    for (int64_t k = 0; k < segs; ++k) centres[2 * k] = 0.37 * double(k % 3) - 0.4, centres[2 * k + 1] = -0.21 * double(k % 4);
    CHECK(drift_stencil(dense.data(), g, x.data(), y.data(), starts.data(), ends.data(), segs, centres.data(), g.bin, 1,
                        a.data()).ok());
    CHECK(drift_density_stencil(d, x.data(), y.data(), starts.data(), ends.data(), segs, centres.data(), 1, b.data())
              .ok());
    for (size_t k = 0; k < a.size(); ++k) {  // gx*gy sums cancel: their scale is that of gx^2 + gy^2
        const size_t base = k - k % 13;
        const double scale = k % 13 == 10 ? std::fabs(a[base + 9]) + std::fabs(a[base + 11]) : std::fabs(a[k]);
        CHECK(std::fabs(a[k] - b[k]) <= 1e-5 * (scale + 1.0));
    }
    std::vector<double> b3(13 * segs);
    CHECK(drift_density_stencil(d, x.data(), y.data(), starts.data(), ends.data(), segs, centres.data(), 3, b3.data())
              .ok());
    CHECK(std::memcmp(b.data(), b3.data(), b.size() * sizeof(double)) == 0);
    d.tile[0] = int32_t(d.data.size());  // a corrupt tile index is refused, not read
    CHECK(drift_density_stencil(d, x.data(), y.data(), starts.data(), ends.data(), segs, centres.data(), 1, b.data())
              .status == Status::invalid_argument);
}

static void test_bad_input() {
    DriftGrid g;
    std::vector<float> img(4, 0.0f);
    double x = 0, y = 0, out[13];
    int64_t s0 = 0, e1 = 1, e0 = 0;
    g.nx = 0;
    CHECK(drift_histogram(&x, &y, nullptr, 1, g, img.data()).status == Status::invalid_argument);
    g.nx = g.ny = 2;
    g.bin = -1;
    CHECK(check_drift_grid(g).status == Status::invalid_argument);
    g.bin = 1;
    CHECK(drift_stencil(img.data(), g, &x, &y, &e1, &e0, 1, &x, 0.1, 1, out).status == Status::invalid_argument);
    CHECK(drift_stencil(img.data(), g, &x, &y, &s0, &e1, 1, &x, 0.0, 1, out).status == Status::invalid_argument);
    CHECK(drift_stencil(nullptr, g, &x, &y, &s0, &e1, 1, &x, 0.1, 1, out).status == Status::invalid_argument);
    DriftTrackOptions o;
    o.coarse_step = 0;
    double sh[2], sc[1];
    CHECK(drift_track(img.data(), g, &x, &y, &s0, &e1, 1, o, sh, sc).status == Status::invalid_argument);
    o = DriftTrackOptions();
    CHECK(drift_track(img.data(), g, &x, &y, &s0, &e1, 1, o, sh, sc).ok());  // an empty image: no crash
    CHECK(std::isfinite(sh[0]) && std::isfinite(sh[1]));
}

// drift_aim on a frame-sorted table: 300 random sites in a 32x32 px field, 10 localizations a frame (0.05 px
// noise), 6000 frames, drift = random walk + linear + a jump of (0.8, -0.3) px at frame 3011. Every segment
// away from the jump must come back to its mean drift (up to one offset); the result must not depend on
// the threads.
static void test_aim_whole_loop() {
    std::mt19937_64 rng(5);
    std::uniform_real_distribution<double> u(2.0, 30.0);
    std::normal_distribution<double> noise(0.0, 0.05), walk(0.0, 0.002);
    std::uniform_int_distribution<int> pick(0, 299);
    std::vector<double> sx(300), sy(300);
    for (int i = 0; i < 300; ++i) {
        sx[i] = u(rng);
        sy[i] = u(rng);
    }
    const int64_t frames = 6000, jump = 3011;
    std::vector<double> x, y, dxf(frames), dyf(frames);
    std::vector<int64_t> frame;
    double wx = 0, wy = 0;
    for (int64_t f = 0; f < frames; ++f) {
        wx += walk(rng);
        wy += walk(rng);
        dxf[f] = wx + 1e-4 * f + (f >= jump ? 0.8 : 0.0);
        dyf[f] = wy - 5e-5 * f + (f >= jump ? -0.3 : 0.0);
        for (int p = 0; p < 10; ++p) {
            const int i = pick(rng);
            x.push_back(sx[i] + dxf[f] + noise(rng));
            y.push_back(sy[i] + dyf[f] + noise(rng));
            frame.push_back(f);
        }
    }
    const int64_t n = int64_t(x.size());
    auto cut = [&](int64_t len, std::vector<int64_t>& st, std::vector<int64_t>& en, std::vector<int64_t>& ed,
                   std::vector<double>& tt) {
        for (int64_t f = 0; f <= frames; f += len) ed.push_back(f);
        for (size_t k = 0; k + 1 < ed.size(); ++k) {
            st.push_back(ed[k] * 10);
            en.push_back(ed[k + 1] * 10);
            tt.push_back(0.5 * (ed[k] + ed[k + 1] - 1));
        }
    };
    std::vector<int64_t> ls, le, lg, ss, se, sg;
    std::vector<double> lt, st;
    cut(150, ls, le, lg, lt);
    cut(30, ss, se, sg, st);
    const int64_t nl = int64_t(ls.size()), ns = int64_t(ss.size());
    DriftGrid g1;
    g1.x0 = g1.y0 = -3.0;
    g1.bin = 0.1 / std::sqrt(1.0 / 3.0);
    g1.nx = g1.ny = int64_t(std::ceil(40.0 / g1.bin)) + 1;
    DriftAimOptions o;
    o.radius = 2.0;
    o.coarse_step = 0.1;
    o.bin2 = 0.025 / std::sqrt(1.0 / 3.0);
    o.margin2 = 0.7;
    o.travel = 0.1;
    o.parallel_points = 0;  // threads on this small table too: the bytes must not depend on them
    std::vector<double> shift[2], var[2], xc[2];
    for (int run = 0; run < 2; ++run) {
        o.threads = run ? 3 : 1;
        shift[run].assign(2 * ns, 0.0);
        var[run].assign(2 * ns, 0.0);
        xc[run].assign(2 * n, 0.0);
        DriftAimResult res;
        CHECK(drift_aim(x.data(), y.data(), frame.data(), n, 2000, g1, ls.data(), le.data(), lg.data(), nl, 3,
                        ss.data(), se.data(), sg.data(), st.data(), ns, o, shift[run].data(), var[run].data(),
                        xc[run].data(), &res).ok());
        CHECK(res.density[0].grid.nx == res.grid2.nx && res.density[1].grid.ny == res.grid2.ny);
    }
    CHECK(std::memcmp(shift[0].data(), shift[1].data(), shift[0].size() * sizeof(double)) == 0);
    CHECK(std::memcmp(var[0].data(), var[1].data(), var[0].size() * sizeof(double)) == 0);
    CHECK(std::memcmp(xc[0].data(), xc[1].data(), xc[0].size() * sizeof(double)) == 0);
    // Truth per segment: its mean drift; the offset is fixed by the first segment's (the reference frames).
    std::vector<double> ex, ey;
    int measured = 0;
    for (int64_t k = 0; k < ns; ++k) {
        // Next to the jump round 1's drift is interpolated across it (a mixture); the smoother of the Python
        // layer leaves those segments out.
        if (sg[k + 1] > jump - 30 && sg[k] < jump + 30) continue;
        double tx = 0, ty = 0;
        for (int64_t f = sg[k]; f < sg[k + 1]; ++f) {
            tx += dxf[f];
            ty += dyf[f];
        }
        tx /= double(sg[k + 1] - sg[k]);
        ty /= double(sg[k + 1] - sg[k]);
        if (!std::isfinite(var[0][2 * k])) continue;
        ++measured;
        ex.push_back(shift[0][2 * k] - tx);
        ey.push_back(shift[0][2 * k + 1] - ty);
    }
    CHECK(measured >= int(0.95 * double(ns - 3)));
    std::vector<double> sx_ = ex, sy_ = ey;
    std::nth_element(sx_.begin(), sx_.begin() + sx_.size() / 2, sx_.end());
    std::nth_element(sy_.begin(), sy_.begin() + sy_.size() / 2, sy_.end());
    const double ox = sx_[sx_.size() / 2], oy = sy_[sy_.size() / 2];
    double worst = 0;
    for (size_t k = 0; k < ex.size(); ++k) worst = std::max({worst, std::fabs(ex[k] - ox), std::fabs(ey[k] - oy)});
    // 300 points of 0.05 px noise per segment against half the table: ~0.004 px; 0.02 px is 5 sigma.
    if (!(worst < 0.02)) std::fprintf(stderr, "drift_aim: worst segment error %g px (%d measured)\n", worst, measured);
    CHECK(worst < 0.02);
    // Bad input: a segment past the end, unsorted frames.
    std::vector<int64_t> bad = se;
    bad.back() = n + 1;
    DriftAimResult res;
    CHECK(drift_aim(x.data(), y.data(), frame.data(), n, 2000, g1, ls.data(), le.data(), lg.data(), nl, 3,
                    ss.data(), bad.data(), sg.data(), st.data(), ns, o, shift[0].data(), var[0].data(),
                    xc[0].data(), &res).status == Status::invalid_argument);
    std::swap(frame[0], frame[n - 1]);
    CHECK(drift_aim(x.data(), y.data(), frame.data(), n, 2000, g1, ls.data(), le.data(), lg.data(), nl, 3,
                    ss.data(), se.data(), sg.data(), st.data(), ns, o, shift[0].data(), var[0].data(),
                    xc[0].data(), &res).status == Status::invalid_argument);
    std::swap(frame[0], frame[n - 1]);
    // A NaN or infinite coordinate anywhere (the check runs in blocks of 4,096 points).
    for (int64_t p : {int64_t(0), n / 2 + 1, n - 1})
        for (double bad_value : {std::nan(""), double(INFINITY), -double(INFINITY)})
            for (std::vector<double>* v : {&x, &y}) {
                const double keep = (*v)[size_t(p)];
                (*v)[size_t(p)] = bad_value;
                CHECK(drift_aim(x.data(), y.data(), frame.data(), n, 2000, g1, ls.data(), le.data(), lg.data(), nl,
                                3, ss.data(), se.data(), sg.data(), st.data(), ns, o, shift[0].data(),
                                var[0].data(), xc[0].data(), &res).status == Status::invalid_argument);
                (*v)[size_t(p)] = keep;
            }
    CHECK(drift_aim(x.data(), y.data(), frame.data(), n, 2000, g1, ls.data(), le.data(), lg.data(), nl, 3,
                    ss.data(), se.data(), sg.data(), st.data(), ns, o, shift[0].data(), var[0].data(),
                    xc[0].data(), &res).ok());
}

int main() {
    test_aim_whole_loop();
    test_track_recovers_shifts_and_jump();
    test_stencil_threads_and_peak();
    test_histogram_mass();
    test_sparse_density_matches_dense();
    test_bad_input();
    if (failures) {
        std::fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    std::puts("spotcore drift tests passed");
    return 0;
}
