// The C++ tests' simulated images: pixel-integrated Gaussian spots with Poisson noise.
#pragma once
#include <cmath>
#include <random>
#include <vector>

#include "spotcore/multi.h"

namespace test_spots {

inline double integ(double a, double b, double c, double s) {
    return 0.5 * (std::erf((b - c) / (std::sqrt(2.0) * s)) - std::erf((a - c) / (std::sqrt(2.0) * s)));
}

// Poisson image (rows x cols, row-major) of spots (x, y, photons) on a flat background b.
inline std::vector<float> image(int rows, int cols, const std::vector<spotcore::Emitter>& spots, double b, double sigma,
                                unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<float> img(size_t(rows * cols));
    for (int i = 0; i < rows; ++i)
        for (int j = 0; j < cols; ++j) {
            double mu = b;
            for (const spotcore::Emitter& e : spots)
                mu += e.photons * integ(j - 0.5, j + 0.5, e.x, sigma) * integ(i - 0.5, i + 0.5, e.y, sigma);
            img[size_t(i * cols + j)] = float(std::poisson_distribution<int>(mu)(rng));
        }
    return img;
}

}  // namespace test_spots
