// Google Benchmark micro-benchmarks of the spotcore C++ core (issue 7). No Python involved.
//
//   meson setup build-bench -Dbenchmarks=true && meson compile -C build-bench
//   build-bench/cpp/bench_core                                   # everything (~1 minute on 2 cores)
//   build-bench/cpp/bench_core --benchmark_filter='Fit/7/.*'     # one family
//   build-bench/cpp/bench_core --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
//
// Families:
//   WaveletFilter/<size>          à trous B-spline filter (W1 and W2) of one size x size frame; items = frames
//   StdW1/<size>                  std(W1), the per-frame threshold statistic
//   LocalMaxima/<spots>           threshold + 8-neighbour maxima of a filtered 256x256 frame with ~<spots> spots
//   Fit/<box>/<est>/<model>/<threads>  LM fits of simulated boxes (est 0 = lsq, 1 = mle; model 0 = fixed_sigma,
//                                 1 = gauss, 2 = elliptical); items = fits, so items_per_second = fits/s
//   Localize/<size>/<threads>     the fused pipeline (convert, filter, threshold, maxima, fit) on a 64-frame
//                                 uint16 chunk with ~15 spots/frame; items = frames
//   CutBoxes                      cut_boxes of 7x7 masked boxes around 15 unsorted centres per frame of a 64-frame
//                                 256x256 uint16 chunk (each frame converted once), 1 thread; items = boxes
//
// Data are simulated here with the pixel-integrated Gaussian (Smith et al. 2010, Nat. Methods 7:373) and
// Poisson noise, with fixed seeds, so every run measures the same work. "threads" is passed to the core
// (FitOptions::threads); 0 would mean the OpenMP default.
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "spotcore/spotcore.h"

namespace {

constexpr double kSigma = 1.3;
constexpr double kBackground = 20.0;  // photons / px
constexpr double kBaseline = 100.0;   // ADU
constexpr double kSensitivity = 0.5;  // photoelectrons / ADU -> ADU = photons / 0.5

// Fraction of a 1D Gaussian centred at `centre` in each pixel first..first+n-1 (pixel centres at integers).
void integrated_gaussian(double centre, double sigma, int first, int n, double* out) {
    const double s = std::sqrt(2.0) * sigma;
    double lo = std::erf((first - 0.5 - centre) / s);
    for (int i = 0; i < n; ++i) {
        const double hi = std::erf((first + i + 0.5 - centre) / s);
        out[i] = 0.5 * (hi - lo);
        lo = hi;
    }
}

// A movie of `frames` frames rows x cols, Poisson(density) spots per frame, photons U(500, 5000),
// background 20 photons, converted to ADU (baseline 100, 0.5 e-/ADU). Returned row-major uint16.
std::vector<uint16_t> simulate_movie(int frames, int rows, int cols, double density, uint32_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> ux(5.0, cols - 6.0), uy(5.0, rows - 6.0), uph(500.0, 5000.0);
    std::poisson_distribution<int> count(density);
    std::vector<uint16_t> movie(size_t(frames) * rows * cols);
    std::vector<double> mu(size_t(rows) * cols), ex(16), ey(16);
    for (int f = 0; f < frames; ++f) {
        std::fill(mu.begin(), mu.end(), kBackground);
        const int n = count(rng);
        for (int k = 0; k < n; ++k) {
            const double x = ux(rng), y = uy(rng), ph = uph(rng);
            const int c0 = int(std::floor(x)) - 7, r0 = int(std::floor(y)) - 7;
            integrated_gaussian(x, kSigma, c0, 16, ex.data());
            integrated_gaussian(y, kSigma, r0, 16, ey.data());
            for (int i = 0; i < 16; ++i) {
                const int r = r0 + i;
                if (r < 0 || r >= rows) continue;
                for (int j = 0; j < 16; ++j) {
                    const int c = c0 + j;
                    if (c < 0 || c >= cols) continue;
                    mu[size_t(r) * cols + c] += ph * ey[i] * ex[j];
                }
            }
        }
        uint16_t* out = movie.data() + size_t(f) * rows * cols;
        for (size_t p = 0; p < mu.size(); ++p) {
            std::poisson_distribution<int> noise(mu[p]);
            const double adu = kBaseline + noise(rng) / kSensitivity;
            out[p] = uint16_t(std::min(65535.0, std::round(adu)));
        }
    }
    return movie;
}

// One frame in photons (float32), as the pipeline sees it after the camera conversion.
std::vector<float> frame_photons(int size, double density, uint32_t seed) {
    const std::vector<uint16_t> adu = simulate_movie(1, size, size, density, seed);
    std::vector<float> img(adu.size());
    for (size_t p = 0; p < adu.size(); ++p) img[p] = float((adu[p] - kBaseline) * kSensitivity);
    return img;
}

// n boxes of box x box photons, spot within +-0.5 px of the box centre, photons U(500, 5000), bg 20.
std::vector<float> simulate_boxes(int64_t n, int box, uint32_t seed) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> off(-0.5, 0.5), uph(500.0, 5000.0);
    std::vector<float> boxes(size_t(n) * box * box);
    std::vector<double> ex(box), ey(box);
    const double c = 0.5 * (box - 1);
    for (int64_t k = 0; k < n; ++k) {
        integrated_gaussian(c + off(rng), kSigma, 0, box, ex.data());
        integrated_gaussian(c + off(rng), kSigma, 0, box, ey.data());
        const double ph = uph(rng);
        float* b = boxes.data() + size_t(k) * box * box;
        for (int i = 0; i < box; ++i)
            for (int j = 0; j < box; ++j) {
                std::poisson_distribution<int> noise(kBackground + ph * ey[i] * ex[j]);
                b[i * box + j] = float(noise(rng));
            }
    }
    return boxes;
}

void fail(benchmark::State& state, const spotcore::Result& r) {
    state.SkipWithError(r.message.empty() ? "spotcore call failed" : r.message.c_str());
}

// ------------------------------------------------------------------------------------------------ filter
void BM_WaveletFilter(benchmark::State& state) {
    const int size = int(state.range(0));
    const std::vector<float> img = frame_photons(size, 15.0 * size * size / (256.0 * 256.0), 1);
    std::vector<float> w1(img.size()), w2(img.size()), scratch(2 * img.size());
    for (auto _ : state) {
        const spotcore::Result r = spotcore::wavelet_filter(img.data(), size, size, w1.data(), w2.data(),
                                                            scratch.data());
        if (!r.ok()) return fail(state, r);
        benchmark::DoNotOptimize(w2.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * int64_t(img.size() * sizeof(float)));
    state.counters["px"] = double(size) * size;
}
BENCHMARK(BM_WaveletFilter)->Name("WaveletFilter")->Arg(64)->Arg(128)->Arg(256)->Arg(512)->Arg(1024)
    ->Unit(benchmark::kMicrosecond);

void BM_StdW1(benchmark::State& state) {
    const int size = int(state.range(0));
    const std::vector<float> img = frame_photons(size, 15.0 * size * size / (256.0 * 256.0), 2);
    std::vector<float> w1(img.size()), w2(img.size()), scratch(2 * img.size());
    spotcore::wavelet_filter(img.data(), size, size, w1.data(), w2.data(), scratch.data());
    for (auto _ : state) benchmark::DoNotOptimize(spotcore::standard_deviation(w1.data(), int64_t(w1.size())));
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_StdW1)->Name("StdW1")->Arg(256)->Arg(512)->Unit(benchmark::kMicrosecond);

// ------------------------------------------------------------------------------------------------ maxima
void BM_LocalMaxima(benchmark::State& state) {
    const int size = 256;
    const double density = double(state.range(0));
    const std::vector<float> img = frame_photons(size, density, 3);
    std::vector<float> w1(img.size()), w2(img.size()), scratch(2 * img.size());
    spotcore::wavelet_filter(img.data(), size, size, w1.data(), w2.data(), scratch.data());
    const float threshold = float(1.5 * spotcore::standard_deviation(w1.data(), int64_t(w1.size())));
    std::vector<spotcore::Peak> peaks;
    peaks.reserve(4096);
    for (auto _ : state) {
        peaks.clear();
        const spotcore::Result r = spotcore::find_local_maxima(w2.data(), size, size, threshold, 0.0f, 0, peaks);
        if (!r.ok()) return fail(state, r);
        benchmark::DoNotOptimize(peaks.data());
    }
    state.SetItemsProcessed(state.iterations());
    state.counters["peaks"] = double(peaks.size());
}
BENCHMARK(BM_LocalMaxima)->Name("LocalMaxima")->Arg(15)->Arg(40)->Arg(200)->Unit(benchmark::kMicrosecond);

// ------------------------------------------------------------------------------------------------ fit
void BM_Fit(benchmark::State& state) {
    const int box = int(state.range(0));
    const int64_t n = 4096;
    static std::vector<float> cache[32];  // boxes per box size, simulated once
    if (cache[box].empty()) cache[box] = simulate_boxes(n, box, 4 + uint32_t(box));
    const std::vector<float>& boxes = cache[box];
    spotcore::FitOptions o;
    o.box = box;
    o.estimator = state.range(1) == 0 ? spotcore::Estimator::lsq : spotcore::Estimator::mle;
    o.model = static_cast<spotcore::Model>(state.range(2));
    o.threads = int32_t(state.range(3));
    o.psf_sigma = float(kSigma);
    std::vector<spotcore::FitResult> res(static_cast<size_t>(n));
    for (auto _ : state) {
        const spotcore::Result r = spotcore::fit_boxes(boxes.data(), nullptr, n, o, res.data());
        if (!r.ok()) return fail(state, r);
        benchmark::DoNotOptimize(res.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations() * n);
    double iters = 0, conv = 0;
    for (const auto& f : res) {
        iters += f.iterations;
        conv += f.status == spotcore::FitStatus::converged;
    }
    state.counters["iterations"] = iters / double(n);
    state.counters["converged"] = conv / double(n);
}
BENCHMARK(BM_Fit)->Name("Fit")
    ->ArgNames({"box", "mle", "model", "threads"})
    ->ArgsProduct({{5, 7, 9, 11}, {0, 1}, {0, 1, 2}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ------------------------------------------------------------------------------------------------ localize
void BM_Localize(benchmark::State& state) {
    const int size = int(state.range(0));
    const int frames = 64;
    const std::vector<uint16_t> movie = simulate_movie(frames, size, size, 15.0 * size * size / (256.0 * 256.0), 5);
    const spotcore::ImageStack stack =
        spotcore::contiguous_stack(movie.data(), spotcore::PixelType::u16, frames, size, size);
    spotcore::Camera camera;
    camera.baseline = kBaseline;
    camera.sensitivity = kSensitivity;
    spotcore::LocalizeOptions o;
    o.fit.psf_sigma = float(kSigma);
    o.fit.threads = int32_t(state.range(1));
    std::vector<spotcore::Localization> locs;
    locs.reserve(size_t(frames) * 64);
    for (auto _ : state) {
        locs.clear();
        const spotcore::Result r = spotcore::localize(stack, camera, o, 0, locs);
        if (!r.ok()) return fail(state, r);
        benchmark::DoNotOptimize(locs.data());
    }
    state.SetItemsProcessed(state.iterations() * frames);
    state.counters["locs_per_frame"] = double(locs.size()) / frames;
}
BENCHMARK(BM_Localize)->Name("Localize")->ArgNames({"size", "threads"})
    ->ArgsProduct({{128, 256, 512}, {1, 2}})->UseRealTime()->Unit(benchmark::kMillisecond);

// ------------------------------------------------------------------------------------------------ boxes
void BM_CutBoxes(benchmark::State& state) {
    const int size = 256, frames = 64, per_frame = 15;
    const std::vector<uint16_t> movie = simulate_movie(frames, size, size, per_frame, 6);
    const spotcore::ImageStack stack =
        spotcore::contiguous_stack(movie.data(), spotcore::PixelType::u16, frames, size, size);
    spotcore::Camera camera;
    camera.baseline = kBaseline;
    camera.sensitivity = kSensitivity;
    std::mt19937_64 rng(7);
    std::uniform_int_distribution<int32_t> pos(0, size - 1);
    std::uniform_int_distribution<int64_t> frame(0, frames - 1);
    const int64_t n = int64_t(frames) * per_frame;
    std::vector<int64_t> f(static_cast<size_t>(n));
    std::vector<int32_t> r(f.size()), c(f.size());
    for (size_t k = 0; k < f.size(); ++k) { f[k] = frame(rng); r[k] = pos(rng); c[k] = pos(rng); }
    spotcore::BoxOptions o;
    o.mask_neighbours = true;
    std::vector<float> boxes(f.size() * size_t(o.size * o.size));
    for (auto _ : state) {
        const spotcore::Result res = spotcore::cut_boxes(stack, camera, f.data(), r.data(), c.data(), n, o, 1,
                                                         boxes.data(), nullptr, nullptr);
        if (!res.ok()) return fail(state, res);
        benchmark::DoNotOptimize(boxes.data());
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(state.iterations() * n);
}
BENCHMARK(BM_CutBoxes)->Name("CutBoxes")->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
