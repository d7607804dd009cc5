// Throughput of the spotcore C++ core alone (no Python): LM fits/s (7x7, LSQ and MLE; 2D MLE and 3D astigmatic 11x11, with their ratio), detection
// frames/s (convert + wavelet filter + threshold + maxima), end-to-end localize frames/s on a simulated
// 256x256 movie with ~15 spots per frame. Median of several repeats.
//   g++ -O3 -std=c++17 -fopenmp -fno-trapping-math -fno-math-errno -ffp-contract=off -Icpp/include \
//       bench/throughput.cpp cpp/src/*.cpp -o throughput && ./throughput [frames] [repeats]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "spotcore/spotcore.h"
#ifdef _OPENMP
#include <omp.h>
#endif

using namespace spotcore;
using Clock = std::chrono::steady_clock;

static double frac(double p, double c, double s) {
    const double k = std::sqrt(2.0) * s;
    return 0.5 * (std::erf((p + 0.5 - c) / k) - std::erf((p - 0.5 - c) / k));
}

template <typename F>
static double median_seconds(int repeats, F&& f) {
    std::vector<double> t;
    for (int r = 0; r < repeats; ++r) {
        const auto t0 = Clock::now();
        f();
        t.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
}

int main(int argc, char** argv) {
    const int frames = argc > 1 ? std::atoi(argv[1]) : 1000;
    const int repeats = argc > 2 ? std::atoi(argv[2]) : 5;
    const int S = 256;
    std::mt19937 g(1);
    // Movie: baseline 100 ADU, 2 ADU/photon, 20 photons/px background, 15 spots of 500-5000 photons.
    std::vector<uint16_t> movie(size_t(frames) * S * S);
    std::poisson_distribution<int> bg(20);
    for (auto& v : movie) v = uint16_t(100 + 2 * bg(g));
    std::uniform_real_distribution<double> pos(5, 250), ph(500, 5000);
    for (int f = 0; f < frames; ++f)
        for (int k = 0; k < 15; ++k) {
            const double x = pos(g), y = pos(g), n = ph(g);
            for (int i = -5; i <= 5; ++i)
                for (int j = -5; j <= 5; ++j) {
                    const int r = int(y) + i, c = int(x) + j;
                    if (r < 0 || c < 0 || r >= S || c >= S) continue;
                    std::poisson_distribution<int> p(n * frac(c, x, 1.3) * frac(r, y, 1.3) + 1e-9);
                    movie[(size_t(f) * S + r) * S + c] += uint16_t(2 * p(g));
                }
        }
    const ImageStack s = contiguous_stack(movie.data(), PixelType::u16, frames, S, S);
    Camera cam;
    cam.baseline = 100;
    cam.sensitivity = 0.5;

    // Boxes: 200k 7x7 spots, 500-5000 photons, 20 photons/px.
    const int n = 200000, K = 7;
    std::vector<float> boxes(size_t(n) * K * K);
    std::uniform_real_distribution<double> off(-0.5, 0.5);
    for (int k = 0; k < n; ++k) {
        const double x = 3 + off(g), y = 3 + off(g), N = ph(g);
        for (int i = 0; i < K; ++i)
            for (int j = 0; j < K; ++j) {
                std::poisson_distribution<int> p(20 + N * frac(j, x, 1.3) * frac(i, y, 1.3));
                boxes[size_t(k) * K * K + i * K + j] = float(p(g));
            }
    }
    std::vector<FitResult> res(n);
    std::printf("spotcore %s throughput, median of %d\n", version(), repeats);
    for (Estimator e : {Estimator::lsq, Estimator::mle})
        for (int threads : {1, 2}) {
            FitOptions o;
            o.estimator = e;
            o.threads = threads;
            const double t = median_seconds(repeats, [&] { fit_boxes(boxes.data(), nullptr, n, o, res.data()); });
            double it = 0;
            for (const auto& r : res) it += r.iterations;
            std::printf("  fit 7x7 %s threads=%d: %10.0f fits/s (mean iterations %.2f)\n",
                        e == Estimator::mle ? "MLE" : "LSQ", threads, n / t, it / n);
        }
    {
        // Astigmatic 3D MLE on 11x11 boxes (issue 18): z uniform in +-500 nm, 1000-6000 photons, 20-30
        // photons/px, widths s(z) = 1.3 sqrt(1 + ((z -+ 300)/400)^2) (Huang et al. 2008).
        const int n3 = 100000, K3 = 11;
        std::vector<float> b3(size_t(n3) * K3 * K3);
        std::uniform_real_distribution<double> zd(-500, 500), ph3(1000, 6000), bg3(20, 30);
        FitOptions o;
        o.model = Model::astigmatic;
        o.box = K3;
        const Astigmatism& a = o.astigmatism;
        for (int k = 0; k < n3; ++k) {
            const double x = 5 + off(g), y = 5 + off(g), z = zd(g), N = ph3(g), B = bg3(g);
            const double ux = (z - a.c_x) / a.d_x, uy = (z - a.c_y) / a.d_y;
            const double sx = a.s0_x * std::sqrt(1 + ux * ux), sy = a.s0_y * std::sqrt(1 + uy * uy);
            for (int i = 0; i < K3; ++i)
                for (int j = 0; j < K3; ++j) {
                    std::poisson_distribution<int> p(B + N * frac(j, x, sx) * frac(i, y, sy));
                    b3[size_t(k) * K3 * K3 + i * K3 + j] = float(p(g));
                }
        }
        std::vector<FitResult> r3(n3);
        // The 2D MLE fit on 11x11 boxes of the same photons and background (sigma 1.3 px), in the same run: the
        // 3D rate as a ratio to it is meaningful on a loaded machine, where the fits/s are not.
        std::vector<float> b2(size_t(n3) * K3 * K3);
        for (int k = 0; k < n3; ++k) {
            const double x = 5 + off(g), y = 5 + off(g), N = ph3(g), B = bg3(g);
            for (int i = 0; i < K3; ++i)
                for (int j = 0; j < K3; ++j) {
                    std::poisson_distribution<int> p(B + N * frac(j, x, 1.3) * frac(i, y, 1.3));
                    b2[size_t(k) * K3 * K3 + i * K3 + j] = float(p(g));
                }
        }
        double rate2[3] = {0, 0, 0};
        for (int threads : {1, 2}) {
            FitOptions o2;
            o2.box = K3;
            o2.threads = threads;
            const double t = median_seconds(repeats, [&] { fit_boxes(b2.data(), nullptr, n3, o2, r3.data()); });
            double it = 0;
            for (const auto& r : r3) it += r.iterations;
            rate2[threads] = n3 / t;
            std::printf("  fit 2D 11x11 MLE threads=%d: %10.0f fits/s (mean iterations %.2f)\n", threads, n3 / t,
                        it / n3);
        }
        for (Estimator e : {Estimator::lsq, Estimator::mle})
            for (int threads : {1, 2}) {
                o.estimator = e;
                o.threads = threads;
                const double t = median_seconds(repeats, [&] { fit_boxes(b3.data(), nullptr, n3, o, r3.data()); });
                double it = 0;
                for (const auto& r : r3) it += r.iterations;
                std::printf("  fit 3D astigmatic 11x11 %s threads=%d: %10.0f fits/s (mean iterations %.2f)",
                            e == Estimator::mle ? "MLE" : "LSQ", threads, n3 / t, it / n3);
                if (e == Estimator::mle)
                    std::printf(", %.3f x the 2D 11x11 MLE rate", n3 / t / rate2[threads]);
                std::printf("\n");
            }
    }
    for (int threads : {1, 2}) {
        // Detection alone: the same steps localize runs per frame, without the fit.
        std::vector<std::vector<float>> ph_(threads), w1(threads), w2(threads), scr(threads);
        const double t = median_seconds(repeats, [&] {
#pragma omp parallel for num_threads(threads) schedule(dynamic, 4)
            for (int f = 0; f < frames; ++f) {
#ifdef _OPENMP
                const int id = omp_get_thread_num();
#else
                const int id = 0;
#endif
                auto& a = ph_[id];
                a.resize(S * S);
                w1[id].resize(S * S);
                w2[id].resize(S * S);
                scr[id].resize(2 * S * S);
                frame_to_photons(s, f, cam, a.data());
                wavelet_filter(a.data(), S, S, w1[id].data(), w2[id].data(), scr[id].data());
                const float thr = float(1.5 * standard_deviation(w1[id].data(), S * S));
                std::vector<Peak> peaks;
                find_local_maxima(w2[id].data(), S, S, thr, 0.0f, 0, peaks);
            }
        });
        std::printf("  detection threads=%d: %10.0f frames/s\n", threads, frames / t);
    }
    for (int threads : {1, 2}) {
        LocalizeOptions o;
        o.fit.threads = threads;
        size_t count = 0;
        const double t = median_seconds(repeats, [&] {
            std::vector<Localization> out;
            localize(s, cam, o, 0, out);
            count = out.size();
        });
        std::printf("  localize (MLE, 256x256) threads=%d: %10.0f frames/s, %zu localizations\n", threads,
                    frames / t, count);
    }
    return 0;
}
