// Throughput of the drift loops on 10^6 points (points per second): histogram, 3x3 stencil, tracking.
// Usage: drift_throughput [POINTS] [THREADS]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "spotcore/spotcore.h"

using namespace spotcore;

int main(int argc, char** argv) {
    const int64_t n = argc > 1 ? std::atoll(argv[1]) : 1000000;
    const int threads = argc > 2 ? std::atoi(argv[2]) : 0;
    std::mt19937_64 rng(1);
    std::uniform_real_distribution<double> u(0.0, 128.0);
    std::normal_distribution<double> noise(0.0, 0.08);
    std::vector<double> sx(5000), sy(5000), x(n), y(n);
    for (size_t i = 0; i < sx.size(); ++i) sx[i] = u(rng), sy[i] = u(rng);
    std::uniform_int_distribution<size_t> pick(0, sx.size() - 1);
    for (int64_t k = 0; k < n; ++k) {
        const size_t i = pick(rng);
        x[k] = sx[i] + noise(rng);
        y[k] = sy[i] + noise(rng);
    }
    DriftGrid g;
    g.x0 = g.y0 = -1;
    g.bin = 0.05;
    g.nx = g.ny = 2600;
    std::vector<float> img(size_t(g.nx * g.ny), 0.0f);
    const int64_t per = 300, segs = n / per;
    std::vector<int64_t> starts(segs), ends(segs);
    for (int64_t k = 0; k < segs; ++k) starts[k] = k * per, ends[k] = (k + 1) * per;
    std::vector<double> centres(2 * segs, 0.0), out(13 * segs), shifts(2 * segs), score(segs);
    using clk = std::chrono::steady_clock;
    auto t0 = clk::now();
    drift_histogram(x.data(), y.data(), nullptr, n, g, img.data());
    auto t1 = clk::now();
    drift_stencil(img.data(), g, x.data(), y.data(), starts.data(), ends.data(), segs, centres.data(), 0.05, threads,
                  out.data());
    auto t2 = clk::now();
    DriftTrackOptions o;
    drift_track(img.data(), g, x.data(), y.data(), starts.data(), ends.data(), segs, o, shifts.data(), score.data());
    auto t3 = clk::now();
    auto s = [](clk::time_point a, clk::time_point b) { return std::chrono::duration<double>(b - a).count(); };
    std::printf("points %lld: histogram %.3g /s, stencil (9 samples) %.3g /s, track %.3g /s\n", (long long)n,
                n / s(t0, t1), n / s(t1, t2), n / s(t2, t3));
    return 0;
}
