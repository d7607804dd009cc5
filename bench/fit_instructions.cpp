// Instructions per fit of the C++ core, for callgrind (stable on a loaded machine, unlike wall-clock rates):
// one thread, n boxes of 11x11 (or --box), 2D (Model::gauss) or 3D (Model::astigmatic), MLE.
//   build/cpp/fit_instructions 3d 20000
//   valgrind --tool=callgrind --toggle-collect='spotcore::fit_boxes*' build/cpp/fit_instructions 3d 20000
// Ir (callgrind's total of the collected function) / n = instructions per fit. The boxes are those of
// bench/throughput.cpp: 1,000-6,000 photons, 20-30 photons/px; 3D z uniform in +-500 nm, widths of the
// default spotcore::Astigmatism; 2D sigma 1.3 px.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "spotcore/spotcore.h"

using namespace spotcore;

static double frac(double p, double c, double s) {
    const double k = std::sqrt(2.0) * s;
    return 0.5 * (std::erf((p + 0.5 - c) / k) - std::erf((p - 0.5 - c) / k));
}

int main(int argc, char** argv) {
    const bool three_d = argc > 1 && std::strcmp(argv[1], "3d") == 0;
    const int n = argc > 2 ? std::atoi(argv[2]) : 20000;
    const int K = argc > 3 ? std::atoi(argv[3]) : 11;
    std::mt19937 g(7);
    std::uniform_real_distribution<double> off(-0.5, 0.5), zd(-500, 500), ph(1000, 6000), bg(20, 30);
    FitOptions o;
    o.box = K;
    o.threads = 1;
    if (three_d) o.model = Model::astigmatic;
    const Astigmatism& a = o.astigmatism;
    std::vector<float> boxes(size_t(n) * K * K);
    for (int k = 0; k < n; ++k) {
        const double c = 0.5 * (K - 1), x = c + off(g), y = c + off(g), z = zd(g), N = ph(g), B = bg(g);
        const double ux = (z - a.c_x) / a.d_x, uy = (z - a.c_y) / a.d_y;
        const double sx = three_d ? a.s0_x * std::sqrt(1 + ux * ux) : 1.3;
        const double sy = three_d ? a.s0_y * std::sqrt(1 + uy * uy) : 1.3;
        for (int i = 0; i < K; ++i)
            for (int j = 0; j < K; ++j) {
                std::poisson_distribution<int> p(B + N * frac(j, x, sx) * frac(i, y, sy));
                boxes[size_t(k) * K * K + i * K + j] = float(p(g));
            }
    }
    std::vector<FitResult> res(n);
    const Result r = fit_boxes(boxes.data(), nullptr, n, o, res.data());
    if (!r.ok()) return 1;
    double it = 0;
    int conv = 0;
    for (const auto& f : res) { it += f.iterations; conv += f.status == FitStatus::converged; }
    std::printf("%s %dx%d MLE: %d fits, mean iterations %.2f, converged %d\n", three_d ? "3D" : "2D", K, K, n,
                it / n, conv);
    return 0;
}
