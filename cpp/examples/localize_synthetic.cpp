// Embedding example: localize a synthetic movie with the spotcore C++ core, no Python involved.
//   localize_synthetic [frames] [size]
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "spotcore/spotcore.h"

int main(int argc, char** argv) {
    const int frames = argc > 1 ? std::atoi(argv[1]) : 20;
    const int size = argc > 2 ? std::atoi(argv[2]) : 128;
    const double sigma = 1.3, background = 20.0, photons = 2000.0;
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> pos(8.0, size - 9.0);
    std::vector<uint16_t> movie(size_t(frames) * size * size);
    std::vector<double> tx, ty;
    for (int f = 0; f < frames; ++f) {
        const double x = pos(rng), y = pos(rng);  // one emitter per frame
        tx.push_back(x);
        ty.push_back(y);
        for (int r = 0; r < size; ++r)
            for (int c = 0; c < size; ++c) {
                auto frac = [&](double p, double centre) {
                    const double s = std::sqrt(2.0) * sigma;
                    return 0.5 * (std::erf((p + 0.5 - centre) / s) - std::erf((p - 0.5 - centre) / s));
                };
                const double mu = background + photons * frac(c, x) * frac(r, y);
                std::poisson_distribution<int> noise(mu);
                movie[(size_t(f) * size + r) * size + c] = uint16_t(100 + noise(rng));  // baseline 100 ADU
            }
    }
    const spotcore::ImageStack stack =
        spotcore::contiguous_stack(movie.data(), spotcore::PixelType::u16, frames, size, size);
    spotcore::Camera camera;
    camera.baseline = 100.0;
    spotcore::LocalizeOptions options;
    options.fit.psf_sigma = float(sigma);
    std::vector<spotcore::Localization> locs;
    const spotcore::Result r = spotcore::localize(stack, camera, options, 0, locs);
    if (!r.ok()) {
        std::fprintf(stderr, "localize failed: %s\n", r.message.c_str());
        return 1;
    }
    int near = 0;
    for (const auto& l : locs) {
        const double dx = l.fit.x - tx[size_t(l.frame)], dy = l.fit.y - ty[size_t(l.frame)];
        near += (std::hypot(dx, dy) < 0.5 && l.fit.status == spotcore::FitStatus::converged);
    }
    std::printf("spotcore %s: %zu localizations in %d frames, %d within 0.5 px of the truth\n", spotcore::version(),
                locs.size(), frames, near);
    for (size_t i = 0; i < locs.size() && i < 3; ++i)
        std::printf("  frame %lld  x %.3f  y %.3f  photons %.0f  crlb_x %.4f  %s\n", (long long)locs[i].frame,
                    locs[i].fit.x, locs[i].fit.y, locs[i].fit.photons, locs[i].fit.crlb_x,
                    spotcore::fit_status_name(locs[i].fit.status));
    return near == frames ? 0 : 2;
}
