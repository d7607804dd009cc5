// C++ test of the core, run by `meson test` (and under ASan/UBSan in CI): thread determinism,
// exact recovery of noise-free spots, status codes for bad input, tiny images.
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "spotcore/spotcore.h"

static int failures = 0;
#define CHECK(cond)                                                           \
    do {                                                                      \
        if (!(cond)) {                                                        \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
            ++failures;                                                       \
        }                                                                     \
    } while (0)

using namespace spotcore;

static double frac(double p, double c, double s) {
    const double k = std::sqrt(2.0) * s;
    return 0.5 * (std::erf((p + 0.5 - c) / k) - std::erf((p - 0.5 - c) / k));
}

static std::vector<float> spot_boxes(int n, int K, bool noise, std::vector<double>& xs, std::vector<double>& ys) {
    std::mt19937 rng(3);
    std::uniform_real_distribution<double> off(-0.5, 0.5);
    std::vector<float> boxes(size_t(n) * K * K);
    const double c = (K - 1) / 2.0;
    for (int k = 0; k < n; ++k) {
        const double x = c + off(rng), y = c + off(rng);
        xs.push_back(x);
        ys.push_back(y);
        for (int i = 0; i < K; ++i)
            for (int j = 0; j < K; ++j) {
                const double mu = 20.0 + 3000.0 * frac(j, x, 1.3) * frac(i, y, 1.3);
                float v = float(mu);
                if (noise) { std::poisson_distribution<int> p(mu); v = float(p(rng)); }
                boxes[size_t(k) * K * K + i * K + j] = v;
            }
    }
    return boxes;
}

static void test_noise_free_recovery() {
    for (Estimator e : {Estimator::lsq, Estimator::mle})
        for (Model m : {Model::fixed_sigma, Model::gauss, Model::elliptical}) {
            std::vector<double> xs, ys;
            const int n = 37, K = 7;
            auto boxes = spot_boxes(n, K, false, xs, ys);
            FitOptions o;
            o.estimator = e;
            o.model = m;
            o.tolerance = 1e-5f;
            std::vector<FitResult> r(n);
            CHECK(fit_boxes(boxes.data(), nullptr, n, o, r.data()).ok());
            for (int k = 0; k < n; ++k) {
                CHECK(r[k].status == FitStatus::converged);
                CHECK(std::fabs(r[k].x - xs[k]) < 2e-3);
                CHECK(std::fabs(r[k].y - ys[k]) < 2e-3);
                CHECK(std::fabs(r[k].photons - 3000.0) < 3.0);
                CHECK(std::fabs(r[k].background - 20.0) < 0.05);
                CHECK(std::fabs(r[k].sigma_x - 1.3) < 2e-3);
                CHECK(r[k].crlb_x > 0 && std::isfinite(r[k].crlb_x));
            }
        }
}

static void test_thread_determinism() {
    std::vector<double> xs, ys;
    const int n = 1001, K = 7;
    auto boxes = spot_boxes(n, K, true, xs, ys);
    FitOptions o;
    std::vector<FitResult> a(n), b(n);
    o.threads = 1;
    CHECK(fit_boxes(boxes.data(), nullptr, n, o, a.data()).ok());
    o.threads = 2;
    CHECK(fit_boxes(boxes.data(), nullptr, n, o, b.data()).ok());
    CHECK(std::memcmp(a.data(), b.data(), sizeof(FitResult) * n) == 0);
    // A fit's result does not depend on the batch it shares: fit box 5 alone.
    std::vector<FitResult> one(1);
    CHECK(fit_boxes(boxes.data() + 5 * K * K, nullptr, 1, o, one.data()).ok());
    CHECK(std::memcmp(&one[0], &a[5], sizeof(FitResult)) == 0);
}

static void test_bad_input() {
    FitOptions o;
    std::vector<float> box(49, 1.0f);
    FitResult r;
    o.box = 6;
    CHECK(fit_boxes(box.data(), nullptr, 1, o, &r).status == Status::invalid_argument);
    o.box = 7;
    o.psf_sigma = 0.0f;
    CHECK(fit_boxes(box.data(), nullptr, 1, o, &r).status == Status::invalid_argument);
    o.psf_sigma = 1.3f;
    CHECK(fit_boxes(nullptr, nullptr, 1, o, &r).status == Status::invalid_argument);
    // All-NaN box: not fitted, never NaN claimed as converged.
    std::vector<float> nan_box(49, std::nanf(""));
    CHECK(fit_boxes(nan_box.data(), nullptr, 1, o, &r).ok());
    CHECK(r.status == FitStatus::not_fitted);
    // Flat and all-zero boxes: finite or a non-converged status.
    for (float level : {0.0f, 50.0f}) {
        std::vector<float> flat(49, level);
        CHECK(fit_boxes(flat.data(), nullptr, 1, o, &r).ok());
        if (r.status == FitStatus::converged) CHECK(std::isfinite(r.x) && std::isfinite(r.crlb_x));
    }
    ImageStack s;
    Camera cam;
    LocalizeOptions lo;
    std::vector<Localization> out;
    CHECK(localize(s, cam, lo, 0, out).status == Status::invalid_argument);  // null data
}

static void test_tiny_images() {
    for (int rows : {1, 2, 3, 5})
        for (int cols : {1, 2, 4, 9}) {
            std::vector<float> img(size_t(rows) * cols), w1(img.size()), w2(img.size()), scratch(2 * img.size());
            for (size_t i = 0; i < img.size(); ++i) img[i] = float((i * 7919) % 13);
            CHECK(wavelet_filter(img.data(), rows, cols, w1.data(), w2.data(), scratch.data()).ok());
            std::vector<Peak> peaks;
            CHECK(find_local_maxima(w2.data(), rows, cols, -1e30f, 0.0f, 0, peaks).ok());
            for (const Peak& p : peaks) CHECK(p.row >= 0 && p.row < rows && p.col >= 0 && p.col < cols);
            std::vector<uint16_t> movie(img.size(), 100);
            movie[0] = 5000;
            const ImageStack s = contiguous_stack(movie.data(), PixelType::u16, 1, rows, cols);
            CHECK(s.stride_col == 2 && s.stride_row == 2 * cols && s.stride_frame == 2 * cols * rows);
            Camera cam;
            cam.baseline = 100;
            LocalizeOptions lo;
            lo.fit.box = 3;
            std::vector<Localization> out;
            CHECK(localize(s, cam, lo, 0, out).ok());
        }
}

static void test_localize_threads() {
    const int frames = 6, size = 48;
    std::vector<uint16_t> movie(size_t(frames) * size * size);
    std::mt19937 rng(11);
    for (auto& v : movie) { std::poisson_distribution<int> p(20); v = uint16_t(100 + p(rng)); }
    for (int f = 0; f < frames; ++f)
        for (int r = 0; r < size; ++r)
            for (int c = 0; c < size; ++c)
                movie[(size_t(f) * size + r) * size + c] +=
                    uint16_t(2000 * frac(c, 10 + 3 * f + 0.3, 1.3) * frac(r, 20.6, 1.3) +
                             1500 * frac(c, 1.2, 1.3) * frac(r, 45.1, 1.3));  // one spot at a corner
    const ImageStack s = contiguous_stack(movie.data(), PixelType::u16, frames, size, size);
    Camera cam;
    cam.baseline = 100;
    LocalizeOptions lo;
    std::vector<Localization> a, b;
    lo.fit.threads = 1;
    CHECK(localize(s, cam, lo, 10, a).ok());
    lo.fit.threads = 2;
    CHECK(localize(s, cam, lo, 10, b).ok());
    CHECK(a.size() == b.size());
    CHECK(a.size() >= size_t(frames));
    if (a.size() == b.size()) CHECK(std::memcmp(a.data(), b.data(), sizeof(Localization) * a.size()) == 0);
    for (const auto& l : a) CHECK(l.frame >= 10 && l.frame < 10 + frames);

    // localize == detect_boxes + fit_boxes (what an embedding tool does to screen spots before fitting).
    Detections det;
    CHECK(detect_boxes(s, cam, lo, 10, det).ok());
    CHECK(det.size() == a.size() && det.boxes.size() == det.size() * 49 && det.variance.empty());
    std::vector<FitResult> fits(det.size());
    CHECK(fit_boxes(det.boxes.data(), nullptr, int64_t(det.size()), lo.fit, fits.data()).ok());
    for (size_t k = 0; k < det.size() && k < a.size(); ++k) {
        CHECK(det.frame[k] == a[k].frame && det.peak_row[k] == a[k].peak_row && det.peak_col[k] == a[k].peak_col);
        CHECK(fits[k].x + float(det.peak_col[k] - 3) == a[k].fit.x);
        CHECK(fits[k].photons == a[k].fit.photons);
    }
}

int main() {
    test_noise_free_recovery();
    test_thread_determinism();
    test_bad_input();
    test_tiny_images();
    test_localize_threads();
    if (failures) {
        std::fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    std::puts("spotcore core tests passed");
    return 0;
}
