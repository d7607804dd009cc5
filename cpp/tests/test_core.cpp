// C++ test of the core, run by `meson test` (and under ASan/UBSan in CI): thread determinism,
// exact recovery of noise-free spots, status codes for bad input, tiny images, the box cutter.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <vector>

#include "spotcore/spotcore.h"

#include "check.h"

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

// A noisy uint16 movie with spots everywhere, some at the edges and some close pairs (so that masking and
// both border rules matter).
static std::vector<uint16_t> busy_movie(int frames, int rows, int cols) {
    std::vector<uint16_t> movie(size_t(frames) * rows * cols);
    std::mt19937 rng(21);
    for (auto& v : movie) { std::poisson_distribution<int> p(20); v = uint16_t(100 + p(rng)); }
    std::uniform_real_distribution<double> ux(-1.0, cols), uy(-1.0, rows);
    for (int f = 0; f < frames; ++f)
        for (int k = 0; k < 30; ++k) {
            const double x = ux(rng), y = uy(rng), x2 = x + 2.5, y2 = y + 1.5;  // a spot and a close neighbour
            for (int r = 0; r < rows; ++r)
                for (int c = 0; c < cols; ++c)
                    movie[(size_t(f) * rows + r) * cols + c] += uint16_t(
                        1500 * frac(c, x, 1.3) * frac(r, y, 1.3) + (k % 3 == 0) * 1200 * frac(c, x2, 1.3) * frac(r, y2, 1.3));
        }
    return movie;
}

static bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

struct Cut {
    std::vector<float> boxes, variance;
    std::vector<uint8_t> inside;
};

static Result cut(const ImageStack& s, const Camera& cam, const std::vector<int64_t>& f, const std::vector<int32_t>& r,
                  const std::vector<int32_t>& c, const BoxOptions& o, int threads, Cut& out, bool with_variance = true) {
    const size_t KK = size_t(o.size) * size_t(o.size);
    out.boxes.assign(f.size() * KK, -1.0f);
    out.variance.assign(with_variance ? f.size() * KK : 0, -1.0f);
    out.inside.assign(f.size() * KK, 7);
    return cut_boxes(s, cam, f.data(), r.data(), c.data(), int64_t(f.size()), o, threads, out.boxes.data(),
                     with_variance ? out.variance.data() : nullptr, out.inside.data());
}

// cut_boxes with detection's options gives detect_boxes' fit boxes, bit for bit (scalar and sCMOS camera).
static void test_cut_boxes_equal_detect_boxes() {
    const int frames = 5, rows = 57, cols = 50;
    const auto movie = busy_movie(frames, rows, cols);
    const ImageStack s = contiguous_stack(movie.data(), PixelType::u16, frames, rows, cols);
    std::vector<float> off(rows * cols), gain(rows * cols), var(rows * cols);
    for (int p = 0; p < rows * cols; ++p) { off[p] = 95.0f + p % 7; gain[p] = 1.9f + 0.01f * (p % 23); var[p] = 1.0f + p % 5; }
    for (int scmos = 0; scmos < 2; ++scmos)
        for (bool mask : {true, false})
            for (int box : {3, 7, 11}) {
                Camera cam;
                cam.baseline = 100;
                cam.sensitivity = 0.5;
                if (scmos) { cam.offset_map = off.data(); cam.gain_map = gain.data(); cam.variance_map = var.data(); cam.qe = 0.8; }
                LocalizeOptions lo;
                lo.detect.threshold = 1.0f;
                lo.fit.box = box;
                lo.mask_neighbours = mask;
                Detections det;
                CHECK(detect_boxes(s, cam, lo, 100, det).ok());
                CHECK(det.size() > size_t(frames) * 10);
                CHECK(det.screen_boxes.empty());
                std::vector<int64_t> f(det.frame);
                for (auto& v : f) v -= 100;
                Cut c;
                CHECK(cut(s, cam, f, det.peak_row, det.peak_col, BoxOptions{box, BoxBorder::nan, mask}, 2, c).ok());
                CHECK(same_bits(c.boxes, det.boxes));
                if (scmos) CHECK(same_bits(c.variance, det.variance));
                // inside == "not NaN" with the NaN border.
                bool inside_ok = true;
                for (size_t i = 0; i < c.boxes.size(); ++i) inside_ok &= c.inside[i] == uint8_t(!std::isnan(c.boxes[i]));
                CHECK(inside_ok);
            }
}

// Brute-force reference of one box: every other centre of the frame, clamped coordinates for edge.
static void reference_box(const std::vector<float>& photons, const std::vector<float>* pixvar, int rows, int cols,
                          const std::vector<int64_t>& f, const std::vector<int32_t>& r, const std::vector<int32_t>& c,
                          size_t k, const BoxOptions& o, float* box, float* var, uint8_t* ins) {
    const int K = o.size, half = K / 2;
    const float* img = photons.data() + size_t(f[k]) * rows * cols;
    std::vector<uint8_t> masked(size_t(K) * K, 0);
    for (size_t m = 0; m < f.size() && o.mask_neighbours; ++m) {  // every other centre, in input order
        if (m == k || f[m] != f[k]) continue;
        const int dr = r[m] - r[k], dc = c[m] - c[k];
        if (std::abs(dr) >= 2 * K || std::abs(dc) >= 2 * K) continue;  // nearer to it than to us: none
        for (int i = 0; i < K; ++i)
            for (int j = 0; j < K; ++j) {
                const int y = i - half, x = j - half;
                if ((y - dr) * (y - dr) + (x - dc) * (x - dc) < y * y + x * x) masked[size_t(i) * K + j] = 1;
            }
    }
    for (int i = 0; i < K; ++i)
        for (int j = 0; j < K; ++j) {
            const int rr = r[k] - half + i, cc = c[k] - half + j;
            const bool in = rr >= 0 && rr < rows && cc >= 0 && cc < cols;
            const int p = std::min(std::max(rr, 0), rows - 1) * cols + std::min(std::max(cc, 0), cols - 1);
            const bool hidden = masked[size_t(i) * K + j];
            const bool take = (in || o.border == BoxBorder::edge) && !hidden;
            box[i * K + j] = take ? img[p] : std::nanf("");
            var[i * K + j] = take ? (pixvar ? (*pixvar)[size_t(p)] : 0.0f) : std::nanf("");
            ins[i * K + j] = uint8_t(in && !hidden);
        }
}

static bool same_or_both_nan(float a, float b) { return a == b || (std::isnan(a) && std::isnan(b)); }

// Both border rules, the inside mask, variance, unsorted and repeated centres, thread counts.
static void test_cut_boxes_reference() {
    const int frames = 4, rows = 23, cols = 31;
    const auto movie = busy_movie(frames, rows, cols);
    const ImageStack s = contiguous_stack(movie.data(), PixelType::u16, frames, rows, cols);
    std::vector<float> gain(rows * cols), var(rows * cols), pixvar(rows * cols);
    for (int p = 0; p < rows * cols; ++p) { gain[p] = 2.0f + 0.02f * (p % 11); var[p] = 2.0f + p % 7; }
    std::mt19937 rng(5);
    std::uniform_int_distribution<int> uf(0, frames - 1), ur(0, rows - 1), uc(0, cols - 1);
    std::vector<int64_t> f;
    std::vector<int32_t> r, c;
    for (int k = 0; k < 300; ++k) { f.push_back(uf(rng)); r.push_back(ur(rng)); c.push_back(uc(rng)); }
    f.push_back(f[3]); r.push_back(r[3]); c.push_back(c[3]);  // a repeated centre: ties stay, both boxes cut
    r[0] = 0; c[0] = 0; r[1] = rows - 1; c[1] = cols - 1; r[2] = 0; c[2] = cols - 1;  // corners
    for (int scmos = 0; scmos < 2; ++scmos) {
        Camera cam;
        cam.baseline = 100;
        cam.sensitivity = 0.5;
        if (scmos) { cam.gain_map = gain.data(); cam.variance_map = var.data(); cam.qe = 0.9; }
        std::vector<float> photons(size_t(frames) * rows * cols);
        CHECK(to_photons(s, cam, 1, photons.data()).ok());
        const float qe2 = float(cam.qe * cam.qe);
        for (int p = 0; p < rows * cols; ++p) pixvar[p] = scmos ? var[p] / (gain[p] * gain[p]) / qe2 : 0.0f;
        for (BoxBorder border : {BoxBorder::nan, BoxBorder::edge})
            for (bool mask : {false, true})
                for (int size : {1, 5, 9, 63}) {
                    if (size == 63 && mask) continue;  // every centre masks every box: slow, nothing new
                    const BoxOptions o{size, border, mask};
                    const size_t KK = size_t(size) * size;
                    Cut a;
                    CHECK(cut(s, cam, f, r, c, o, 1, a).ok());
                    std::vector<float> rb(KK), rv(KK);
                    std::vector<uint8_t> ri(KK);
                    bool ok = true;
                    for (size_t k = 0; k < f.size(); ++k) {
                        reference_box(photons, &pixvar, rows, cols, f, r, c, k, o, rb.data(), rv.data(), ri.data());
                        for (size_t i = 0; i < KK; ++i)
                            ok &= same_or_both_nan(a.boxes[k * KK + i], rb[i]) && same_or_both_nan(a.variance[k * KK + i], rv[i]) &&
                                  a.inside[k * KK + i] == ri[i];
                    }
                    CHECK(ok);
                    // Edge rule: the clamped pixel itself, and no NaN unless masked.
                    if (border == BoxBorder::edge && !mask) {
                        bool finite = true;
                        for (float v : a.boxes) finite &= std::isfinite(v);
                        CHECK(finite);
                    }
                    // Any thread count, and any order of the centres, give the same boxes.
                    Cut b;
                    CHECK(cut(s, cam, f, r, c, o, 3, b).ok());
                    CHECK(same_bits(a.boxes, b.boxes) && same_bits(a.variance, b.variance) && a.inside == b.inside);
                    std::vector<size_t> perm(f.size());
                    std::iota(perm.begin(), perm.end(), size_t(0));
                    std::shuffle(perm.begin(), perm.end(), rng);
                    std::vector<int64_t> pf(f.size());
                    std::vector<int32_t> pr(f.size()), pc(f.size());
                    for (size_t k = 0; k < f.size(); ++k) { pf[k] = f[perm[k]]; pr[k] = r[perm[k]]; pc[k] = c[perm[k]]; }
                    Cut p;
                    CHECK(cut(s, cam, pf, pr, pc, o, 2, p).ok());
                    bool perm_ok = true;
                    for (size_t k = 0; k < f.size(); ++k)
                        perm_ok &= std::memcmp(&p.boxes[k * KK], &a.boxes[perm[k] * KK], KK * sizeof(float)) == 0 &&
                                   std::memcmp(&p.inside[k * KK], &a.inside[perm[k] * KK], KK) == 0;
                    CHECK(perm_ok);
                    // variance and inside are optional outputs.
                    Cut q;
                    CHECK(cut_boxes(s, cam, f.data(), r.data(), c.data(), int64_t(f.size()), o, 2,
                                    (q.boxes.resize(a.boxes.size()), q.boxes.data()), nullptr, nullptr).ok());
                    CHECK(same_bits(q.boxes, a.boxes));
                }
    }
}

static void test_cut_boxes_bad_input() {
    std::vector<uint16_t> movie(2 * 8 * 9, 120);
    const ImageStack s = contiguous_stack(movie.data(), PixelType::u16, 2, 8, 9);
    Camera cam;
    std::vector<int64_t> f{0, 1};
    std::vector<int32_t> r{3, 7}, c{0, 8};
    std::vector<float> boxes(2 * 49);
    BoxOptions o;
    auto status = [&](const BoxOptions& opt, int64_t n = 2) {
        return cut_boxes(s, cam, f.data(), r.data(), c.data(), n, opt, 1, boxes.data(), nullptr, nullptr).status;
    };
    CHECK(status(o) == Status::ok);
    for (int size : {0, -1, 6, 65, 1 << 30}) {
        BoxOptions bad = o;
        bad.size = size;
        CHECK(status(bad) == Status::invalid_argument);
    }
    BoxOptions bad_border = o;
    bad_border.border = static_cast<BoxBorder>(5);
    CHECK(status(bad_border) == Status::invalid_argument);
    CHECK(status(o, -1) == Status::invalid_argument);
    for (int which = 0; which < 6; ++which) {
        std::vector<int64_t> ff(f);
        std::vector<int32_t> rr(r), cc(c);
        if (which == 0) ff[1] = 2;
        if (which == 1) ff[0] = -1;
        if (which == 2) rr[1] = 8;
        if (which == 3) rr[0] = -1;
        if (which == 4) cc[1] = 9;
        if (which == 5) cc[0] = -2147483647 - 1;
        const Result res = cut_boxes(s, cam, ff.data(), rr.data(), cc.data(), 2, o, 1, boxes.data(), nullptr, nullptr);
        CHECK(res.status == Status::invalid_argument && res.message.find("centre") != std::string::npos);
    }
    CHECK(cut_boxes(s, cam, nullptr, r.data(), c.data(), 2, o, 1, boxes.data(), nullptr, nullptr).status == Status::invalid_argument);
    CHECK(cut_boxes(s, cam, f.data(), r.data(), c.data(), 2, o, 1, nullptr, nullptr, nullptr).status == Status::invalid_argument);
    CHECK(cut_boxes(s, cam, nullptr, nullptr, nullptr, 0, o, 1, nullptr, nullptr, nullptr).ok());  // nothing to cut
    Camera bad_cam;
    bad_cam.qe = 0.0;
    CHECK(cut_boxes(s, bad_cam, f.data(), r.data(), c.data(), 2, o, 1, boxes.data(), nullptr, nullptr).status == Status::invalid_argument);
    ImageStack null_stack = s;
    null_stack.data = nullptr;
    CHECK(cut_boxes(null_stack, cam, f.data(), r.data(), c.data(), 2, o, 1, boxes.data(), nullptr, nullptr).status == Status::invalid_argument);
}

// to_photons == frame_to_photons per frame, for any stride and thread count.
static void test_to_photons() {
    const int frames = 5, rows = 13, cols = 17;
    std::vector<double> movie(size_t(frames) * rows * cols);
    for (size_t i = 0; i < movie.size(); ++i) movie[i] = 100.0 + double((i * 7919) % 1000) * 0.37;
    ImageStack s = contiguous_stack(movie.data(), PixelType::f64, frames, rows, cols);
    s.data = movie.data() + (rows - 1) * cols;  // rows reversed: negative stride
    s.stride_row = -s.stride_row;
    std::vector<float> off(rows * cols, 99.0f), gain(rows * cols);
    for (int p = 0; p < rows * cols; ++p) gain[p] = 1.5f + 0.01f * p;
    for (int maps = 0; maps < 2; ++maps) {
        Camera cam;
        cam.baseline = 100;
        cam.sensitivity = 0.45;
        cam.em_gain = 3;
        cam.qe = 0.9;
        if (maps) { cam.offset_map = off.data(); cam.gain_map = gain.data(); }
        std::vector<float> all1(movie.size()), all2(movie.size()), one(size_t(rows) * cols);
        CHECK(to_photons(s, cam, 1, all1.data()).ok());
        CHECK(to_photons(s, cam, 3, all2.data()).ok());
        CHECK(same_bits(all1, all2));
        for (int f = 0; f < frames; ++f) {
            CHECK(frame_to_photons(s, f, cam, one.data()).ok());
            CHECK(std::memcmp(one.data(), all1.data() + size_t(f) * rows * cols, one.size() * sizeof(float)) == 0);
        }
    }
    Camera cam;
    CHECK(to_photons(s, cam, 1, nullptr).status == Status::invalid_argument);
    cam.sensitivity = -1;
    std::vector<float> out(movie.size());
    CHECK(to_photons(s, cam, 1, out.data()).status == Status::invalid_argument);
}

// Screening boxes of detect_boxes == cut_boxes with the same options; localize ignores them.
static void test_screen_boxes() {
    const int frames = 4, rows = 40, cols = 45;
    const auto movie = busy_movie(frames, rows, cols);
    const ImageStack s = contiguous_stack(movie.data(), PixelType::u16, frames, rows, cols);
    Camera cam;
    cam.baseline = 100;
    LocalizeOptions lo;
    lo.detect.threshold = 1.0f;
    Detections plain;
    CHECK(detect_boxes(s, cam, lo, 0, plain).ok());
    for (const BoxOptions screen : {BoxOptions{15, BoxBorder::edge, false}, BoxOptions{9, BoxBorder::nan, true},
                                    BoxOptions{1, BoxBorder::edge, true}}) {
        lo.screen = screen;
        for (int threads : {1, 2}) {
            lo.fit.threads = threads;
            Detections det;
            CHECK(detect_boxes(s, cam, lo, 0, det).ok());
            CHECK(det.size() == plain.size() && same_bits(det.boxes, plain.boxes));  // fit boxes unchanged
            Cut c;
            CHECK(cut(s, cam, det.frame, det.peak_row, det.peak_col, screen, 2, c, false).ok());
            CHECK(same_bits(c.boxes, det.screen_boxes));
        }
    }
    lo.screen.size = 4;
    Detections det;
    const Result bad = detect_boxes(s, cam, lo, 0, det);
    CHECK(bad.status == Status::invalid_argument && bad.message.find("screen") != std::string::npos);
    std::vector<Localization> a, b;
    CHECK(localize(s, cam, lo, 0, a).ok());  // screen is not used (nor checked) by localize
    lo.screen.size = 0;
    CHECK(localize(s, cam, lo, 0, b).ok());
    CHECK(a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(Localization)) == 0);
}

// A hot pixel drives a fitted sigma to its lower bound: not "converged" (issue 16.6), for each estimator.
static void test_sigma_at_bound_is_unreliable() {
    const int K = 7;
    std::vector<float> box(K * K, 20.0f);
    box[3 * K + 3] = 5000.0f;
    for (Estimator e : {Estimator::lsq, Estimator::mle})
        for (Model m : {Model::gauss, Model::elliptical}) {
            FitOptions o;
            o.estimator = e;
            o.model = m;
            FitResult r;
            CHECK(fit_boxes(box.data(), nullptr, 1, o, &r).ok());
            CHECK(r.status != FitStatus::converged);
            if (r.status == FitStatus::unreliable) CHECK(std::min(r.sigma_x, r.sigma_y) <= 0.2f);
        }
}

// Astigmatic spots: widths from the calibration at z (Huang et al. 2008), both axes' coefficients differ.
static Astigmatism test_astigmatism(int set) {
    Astigmatism a;
    if (set == 1) {
        a.s0_x = 1.1f; a.c_x = -250.0f; a.d_x = 350.0f; a.a_x = 0.1f; a.b_x = 0.05f;
        a.s0_y = 1.25f; a.c_y = 320.0f; a.d_y = 420.0f; a.a_y = -0.1f; a.b_y = 0.02f;
    }
    return a;
}

static double astig_sigma(double z, double s0, double c, double d, double A, double B) {
    const double u = (z - c) / d;
    return s0 * std::sqrt(1.0 + u * u + A * u * u * u + B * u * u * u * u);
}

static std::vector<float> astig_boxes(int n, int K, const Astigmatism& a, bool noise, std::vector<double>& xs,
                                      std::vector<double>& ys, std::vector<double>& zs) {
    std::mt19937 rng(7);
    std::uniform_real_distribution<double> off(-0.5, 0.5), zdist(-450.0, 450.0);
    std::vector<float> boxes(size_t(n) * K * K);
    const double c = (K - 1) / 2.0;
    for (int k = 0; k < n; ++k) {
        const double x = c + off(rng), y = c + off(rng), z = zdist(rng);
        xs.push_back(x);
        ys.push_back(y);
        zs.push_back(z);
        const double sx = astig_sigma(z, a.s0_x, a.c_x, a.d_x, a.a_x, a.b_x);
        const double sy = astig_sigma(z, a.s0_y, a.c_y, a.d_y, a.a_y, a.b_y);
        for (int i = 0; i < K; ++i)
            for (int j = 0; j < K; ++j) {
                const double mu = 20.0 + 4000.0 * frac(j, x, sx) * frac(i, y, sy);
                float v = float(mu);
                if (noise) { std::poisson_distribution<int> p(mu); v = float(p(rng)); }
                boxes[size_t(k) * K * K + i * K + j] = v;
            }
    }
    return boxes;
}

static void test_astigmatic() {
    const int K = 11;
    for (int set : {0, 1})
        for (Estimator e : {Estimator::lsq, Estimator::mle}) {
            std::vector<double> xs, ys, zs;
            const int n = 53;
            FitOptions o;
            o.model = Model::astigmatic;
            o.estimator = e;
            o.box = K;
            o.tolerance = 1e-5f;
            o.astigmatism = test_astigmatism(set);
            auto boxes = astig_boxes(n, K, o.astigmatism, false, xs, ys, zs);
            std::vector<FitResult> r(n);
            CHECK(fit_boxes(boxes.data(), nullptr, n, o, r.data()).ok());
            for (int k = 0; k < n; ++k) {
                CHECK(r[k].status == FitStatus::converged);
                CHECK(std::fabs(r[k].x - xs[k]) < 2e-3);
                CHECK(std::fabs(r[k].y - ys[k]) < 2e-3);
                CHECK(std::fabs(r[k].z - zs[k]) < 0.5);
                CHECK(std::fabs(r[k].photons - 4000.0) < 4.0);
                CHECK(std::fabs(r[k].background - 20.0) < 0.05);
                CHECK(r[k].crlb_z > 0 && std::isfinite(r[k].crlb_z));
                const Astigmatism& a = o.astigmatism;
                CHECK(std::fabs(r[k].sigma_x - astig_sigma(zs[k], a.s0_x, a.c_x, a.d_x, a.a_x, a.b_x)) < 1e-3);
            }
        }
    // Thread and batch determinism with noise.
    {
        std::vector<double> xs, ys, zs;
        const int n = 203;
        FitOptions o;
        o.model = Model::astigmatic;
        o.box = K;
        o.astigmatism = test_astigmatism(1);
        auto boxes = astig_boxes(n, K, o.astigmatism, true, xs, ys, zs);
        std::vector<FitResult> a(n), b(n), one(1);
        o.threads = 1;
        CHECK(fit_boxes(boxes.data(), nullptr, n, o, a.data()).ok());
        o.threads = 2;
        CHECK(fit_boxes(boxes.data(), nullptr, n, o, b.data()).ok());
        CHECK(std::memcmp(a.data(), b.data(), sizeof(FitResult) * n) == 0);
        CHECK(fit_boxes(boxes.data() + 9 * K * K, nullptr, 1, o, one.data()).ok());
        CHECK(std::memcmp(&one[0], &a[9], sizeof(FitResult)) == 0);
        // A spot far beyond the range is flagged, with z at the end of the range.
        o.astigmatism.z_min = -200.0f;
        o.astigmatism.z_max = 200.0f;
        std::vector<double> x2, y2, z2;
        auto far = astig_boxes(40, K, o.astigmatism, false, x2, y2, z2);
        std::vector<FitResult> rf(40);
        CHECK(fit_boxes(far.data(), nullptr, 40, o, rf.data()).ok());
        for (int k = 0; k < 40; ++k)
            if (std::fabs(z2[k]) > 300.0) CHECK(rf[k].status == FitStatus::z_out_of_range);
        // 2D models leave z empty.
        o.model = Model::gauss;
        CHECK(fit_boxes(boxes.data(), nullptr, 1, o, one.data()).ok());
        CHECK(std::isnan(one[0].z) && std::isnan(one[0].crlb_z));
    }
    // Calibrations that give no real width, or no range, are invalid input.
    FitOptions o;
    o.model = Model::astigmatic;
    o.astigmatism.b_x = -1.0f;  // q < 0 far from the focus
    CHECK(check_fit_options(o).status == Status::invalid_argument);
    o.astigmatism = Astigmatism();
    o.astigmatism.z_max = o.astigmatism.z_min;
    CHECK(check_fit_options(o).status == Status::invalid_argument);
    o.astigmatism = Astigmatism();
    o.astigmatism.d_y = std::nanf("");
    CHECK(check_fit_options(o).status == Status::invalid_argument);
}

int main() {
    test_noise_free_recovery();
    test_sigma_at_bound_is_unreliable();
    test_thread_determinism();
    test_astigmatic();
    test_bad_input();
    test_tiny_images();
    test_localize_threads();
    test_cut_boxes_equal_detect_boxes();
    test_cut_boxes_reference();
    test_cut_boxes_bad_input();
    test_to_photons();
    test_screen_boxes();
    if (std::strcmp(version(), SPOTCORE_VERSION) != 0 || !*version()) ++failures;
    if (failures) {
        std::fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    std::puts("spotcore core tests passed");
    return 0;
}
