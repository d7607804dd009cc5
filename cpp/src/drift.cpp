#include "spotcore/drift.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "simd.h"
#include "spotcore/fit.h"

namespace spotcore {
namespace {

// Bin and fractions of a point whose (fx, fy) (bin units) is inside the grid, i.e. > -1: the floor by
// truncation of fx + 1 > 0 (no libm call on baseline x86-64).
inline void bin_of(double fx, double fy, int64_t& i, int64_t& j, double& tx, double& ty) {
    j = int64_t(fx + 1.0) - 1;
    i = int64_t(fy + 1.0) - 1;
    tx = fx - double(j);
    ty = fy - double(i);
}

// The 3x3 bilinear values of one point from the 4x4 bins around it (row q at b + q * stride; the point lies
// in the bin at row 1, column 1, fractions tx, ty): c[q] lane a = the value at offset (a - 1, q - 1) bins.
SPOTCORE_INLINE void block3x3(const float* b, int64_t stride, float tx, float ty, f32x4 c[3]) {
    const f32x4 wx0 = {1 - tx, 1 - tx, 1 - tx, 1 - tx}, wx1 = {tx, tx, tx, tx};
    const f32x4 wy0 = {1 - ty, 1 - ty, 1 - ty, 1 - ty}, wy1 = {ty, ty, ty, ty};
    f32x4 r[4];
    for (int q = 0; q < 4; ++q) {
        const f32x4 v = load4(b + q * stride);
        r[q] = wx0 * v + wx1 * __builtin_shufflevector(v, v, 1, 2, 3, 3);
    }
    for (int q = 0; q < 3; ++q) c[q] = wy0 * r[q] + wy1 * r[q + 1];
}

// Bilinear value of the image at (x, y) px; 0 outside the grid (the border bins fade to 0 over one bin).
inline double sample_at(const float* img, const DriftGrid& g, double fx, double fy) {  // fx, fy in bins
    if (!(fx > -1.0 && fy > -1.0 && fx < double(g.nx) && fy < double(g.ny))) return 0.0;  // NaN too
    int64_t i, j;
    double tx, ty;
    bin_of(fx, fy, i, j, tx, ty);
    const bool j0 = j >= 0, j1 = j + 1 < g.nx, i0 = i >= 0, i1 = i + 1 < g.ny;
    double v = 0.0;
    if (i0) {
        const float* r = img + i * g.nx;
        if (j0) v += (1 - ty) * (1 - tx) * r[j];
        if (j1) v += (1 - ty) * tx * r[j + 1];
    }
    if (i1) {
        const float* r = img + (i + 1) * g.nx;
        if (j0) v += ty * (1 - tx) * r[j];
        if (j1) v += ty * tx * r[j + 1];
    }
    return v;
}

inline double sample(const float* img, const DriftGrid& g, double x, double y) {
    return sample_at(img, g, (x - g.x0) / g.bin, (y - g.y0) / g.bin);
}

// The sums of sample() at points (u[p] + su[a], v[p] + sv[b]) (in bins) of every trial of a search, a, b < side,
// sv increasing: out[a * side + b]. Each sum term by term and in point order as one loop per trial would make it;
// a point's x interpolation of a row is shared by the trials of one su (~3x fewer instructions).
void search_scores(const float* img, const DriftGrid& g, const double* u, const double* v, int64_t n,
                   const double* su, const double* sv, int64_t side, double* out, std::vector<double>& rows) {
    const double nx1 = double(g.nx - 1), ny1 = double(g.ny - 1);
    std::fill(out, out + side * side, 0.0);
    for (int64_t p = 0; p < n; ++p)
        for (int64_t a = 0; a < side; ++a) {
            double* o = out + a * side;
            const double fx = u[p] + su[a];
            if (!(fx >= 0.0 && fx < nx1)) {
                for (int64_t b = 0; b < side; ++b) o[b] += sample_at(img, g, fx, v[p] + sv[b]);
                continue;
            }
            const int64_t j = int64_t(fx);
            const double tx = fx - double(j);
            const double lo = v[p] + sv[0], hi = v[p] + sv[side - 1];
            if (!(hi >= 0.0 && lo < ny1)) {  // no trial's row inside the grid (NaN too)
                for (int64_t b = 0; b < side; ++b) o[b] += sample_at(img, g, fx, v[p] + sv[b]);
                continue;
            }
            // The rows of the trials inside the grid (lo < ny1, hi >= 0 here: the conversions fit).
            const int64_t i0 = lo >= 0.0 ? int64_t(lo) : 0, i1 = hi < ny1 ? int64_t(hi) : g.ny - 2;
            rows.resize(size_t(std::max<int64_t>(i1 - i0 + 2, 0)));
            for (int64_t i = i0; i <= i1 + 1 && i1 >= i0; ++i) {
                const float* r = img + i * g.nx + j;
                rows[size_t(i - i0)] = (1 - tx) * r[0] + tx * r[1];
            }
            for (int64_t b = 0; b < side; ++b) {
                const double fy = v[p] + sv[b];
                if (fy >= 0.0 && fy < ny1) {
                    const int64_t i = int64_t(fy);
                    const double ty = fy - double(i);
                    o[b] += (1 - ty) * rows[size_t(i - i0)] + ty * rows[size_t(i - i0 + 1)];
                } else {
                    o[b] += sample_at(img, g, fx, fy);
                }
            }
        }
}

// The 13 numbers of drift_stencil for one segment, any step h: nine bilinear samples per point, in double.
void generic_stencil(const float* img, const DriftGrid& g, const double* x, const double* y, int64_t first,
                     int64_t last, double cx, double cy, double h, double* out) {
    std::fill(out, out + 13, 0.0);
    const double inv2h = 1.0 / (2 * h);
    for (int64_t p = first; p < last; ++p) {
        const double px = x[p] + cx, py = y[p] + cy;
        const double fx = (px - g.x0) / g.bin, fy = (py - g.y0) / g.bin;
        if (!(fx > -1.0 && fy > -1.0 && fx < double(g.nx) && fy < double(g.ny))) continue;
        double v[9];  // v[3(a+1) + (b+1)] = image(px + a h, py + b h)
        for (int a = -1; a <= 1; ++a)
            for (int b = -1; b <= 1; ++b) v[3 * (a + 1) + (b + 1)] = sample(img, g, px + a * h, py + b * h);
        for (int k = 0; k < 9; ++k) out[k] += v[k];
        const double gx = (v[7] - v[1]) * inv2h, gy = (v[5] - v[3]) * inv2h;
        out[9] += gx * gx;
        out[10] += gx * gy;
        out[11] += gy * gy;
        out[12] += 1.0;
    }
}

// Below: one bin is the shared fast kernel.
void newton_stencil(const float* img, const DriftGrid& g, const double* x, const double* y, int64_t first,
                    int64_t last, double cx, double cy, double h, double* out);  // stencil less out[9..11]

// One Newton step from a stencil (finite differences); at most one step long. Returns the move.
void newton_move(const double* s, double h, double& dx, double& dy) {
    const double gx = (s[7] - s[1]) / (2 * h), gy = (s[5] - s[3]) / (2 * h);
    const double hxx = (s[7] - 2 * s[4] + s[1]) / (h * h), hyy = (s[5] - 2 * s[4] + s[3]) / (h * h);
    const double hxy = (s[8] - s[6] - s[2] + s[0]) / (4 * h * h);
    const double det = hxx * hyy - hxy * hxy;
    dx = dy = 0.0;
    if (hxx < 0 && det > 0) {  // a maximum: Newton
        dx = -(hyy * gx - hxy * gy) / det;
        dy = -(-hxy * gx + hxx * gy) / det;
    } else {  // not concave here: go to the best stencil point
        int best = 4;
        for (int k = 0; k < 9; ++k)
            if (s[k] > s[best]) best = k;
        dx = (best / 3 - 1) * h;
        dy = (best % 3 - 1) * h;
    }
    const double len = std::hypot(dx, dy);
    if (!(len <= h)) {  // trust region of one step (NaN too)
        const double f = len > 0 && std::isfinite(len) ? h / len : 0.0;
        dx *= f;
        dy *= f;
    }
}

double refine(const float* img, const DriftGrid& g, const double* x, const double* y, int64_t first, int64_t last,
              double& cx, double& cy, double h, int iterations) {
    double s[13];
    for (int it = 0; it < iterations; ++it) {
        newton_stencil(img, g, x, y, first, last, cx, cy, h, s);
        double dx, dy;
        newton_move(s, h, dx, dy);
        cx += dx;
        cy += dy;
        if (std::hypot(dx, dy) < 1e-2 * h) break;
    }
    double score = 0.0;
    for (int64_t p = first; p < last; ++p) score += sample(img, g, x[p] + cx, y[p] + cy);
    return score;
}


// np.interp: the linear interpolation of (t[k], v[k]) at f, constant beyond the ends; t increasing.
inline double interp(const std::vector<double>& t, const std::vector<double>& v, double f) {
    if (f <= t.front()) return v.front();
    if (f >= t.back()) return v.back();
    const size_t k = size_t(std::upper_bound(t.begin(), t.end(), f) - t.begin());  // t[k-1] <= f < t[k]
    const double a = (f - t[k - 1]) / (t[k] - t[k - 1]);
    return v[k - 1] + a * (v[k] - v[k - 1]);
}

double median(std::vector<double> v) {
    if (v.empty()) return 0.0;
    const size_t h = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + h, v.end());
    const double hi = v[h];
    if (v.size() % 2) return hi;
    return 0.5 * (hi + *std::max_element(v.begin(), v.begin() + h));
}

// ---- Sparse densities (DriftDensity): tile ty stores bin rows ty*T - 1 .. ty*T + T + 1, likewise columns.
constexpr int64_t kT = kDriftTile, kSide = kDriftTileSide, kStride = kDriftTileStride;
constexpr int64_t kTileFloats = kSide * kStride;
static_assert((kT & (kT - 1)) == 0, "the tile side is a power of two (masks below)");

// Bin (i, j) of a sparse density; 0 outside the grid and in tiles not stored.
inline float bin_value(const DriftDensity& d, int64_t i, int64_t j) {
    if (i < 0 || j < 0 || i >= d.grid.ny || j >= d.grid.nx) return 0.0f;
    const int64_t ty = i / kT, tx = j / kT;
    const int32_t t = d.tile[size_t(ty * d.tiles_x + tx)];
    if (t < 0) return 0.0f;
    return d.data[size_t(t * kTileFloats + (i - ty * kT + 1) * kStride + (j - tx * kT + 1))];
}


// May throw std::bad_alloc. Bins are added to the core of their tile (each bin once, in point order; a tile is
// stored from the first weight it receives), then every stored tile's border is copied from its neighbours'
// cores.
// Point p is (x[p * ps], y[p * ps]) (ps = 2: interleaved); segment k's points are moved by offsets[2k], [2k + 1]
// (none when null).
SPOTCORE_CLONES void build_density(const double* x, const double* y, int64_t ps, const int64_t* starts,
                                   const int64_t* ends, int64_t n_segments, int64_t first, int64_t every,
                                   const double* offsets, const DriftGrid& g, DriftDensity& d, int64_t step = 1) {
    d.grid = g;
    d.tiles_x = (g.nx + kT - 1) / kT;
    d.tiles_y = (g.ny + kT - 1) / kT;
    const int64_t nt = d.tiles_x * d.tiles_y, tiles_x = d.tiles_x;
    d.tile.assign(size_t(nt), -1);
    int32_t* tile = d.tile.data();
    d.data.clear();
    int64_t points = 0;
    for (int64_t k = first; k < n_segments; k += every) points += (ends[k] - starts[k] + step - 1) / step;
    // Room for a tile per 16 points (address space only until written): no copies while the tiles come.
    d.data.reserve(size_t(kTileFloats) * size_t(std::min(nt, std::max<int64_t>(points / 16, 16))));
    const double inv = 1.0 / g.bin, nx = double(g.nx), ny = double(g.ny);
    const uint64_t nx1 = uint64_t(g.nx - 1), ny1 = uint64_t(g.ny - 1);
    // The core of tile (r, c) (bins r*T .. r*T + T - 1) is stored from row 1, column 1.
    auto core = [&](uint64_t bi, uint64_t bj) -> float* {
        const uint64_t r = bi / kT, c = bj / kT;
        int32_t& t = tile[r * uint64_t(tiles_x) + c];
        if (t < 0) {
            t = int32_t(d.data.size() / size_t(kTileFloats));
            d.data.resize(d.data.size() + size_t(kTileFloats), 0.0f);
        }
        return d.data.data() + size_t(t) * size_t(kTileFloats) + size_t((bi % kT + 1) * kStride + bj % kT + 1);
    };
    for (int64_t k = first; k < n_segments; k += every) {
        const double ox = (offsets ? offsets[2 * k] : 0.0) - g.x0, oy = (offsets ? offsets[2 * k + 1] : 0.0) - g.y0;
        for (int64_t p = starts[k]; p < ends[k]; p += step) {
            const double fx = (x[p * ps] + ox) * inv, fy = (y[p * ps] + oy) * inv;
            if (!(fx > -1.0 && fy > -1.0 && fx < nx && fy < ny)) continue;
            int64_t i, j;
            double tx, ty;
            bin_of(fx, fy, i, j, tx, ty);
            const float fx1 = float(tx), fy1 = float(ty), fx0 = 1 - fx1, fy0 = 1 - fy1;
            const float w00 = fy0 * fx0, w01 = fy0 * fx1, w10 = fy1 * fx0, w11 = fy1 * fx1;
            const uint64_t ui = uint64_t(i), uj = uint64_t(j);
            // The 2x2 bins in one tile's core (most points): i, j in range and neither the last of its tile.
            if (ui < ny1 && uj < nx1 && ((ui + 1) & (kT - 1)) && ((uj + 1) & (kT - 1))) {
                float* b = core(ui, uj);
                b[0] += w00;
                b[1] += w01;
                b[kStride] += w10;
                b[kStride + 1] += w11;
                continue;
            }
            if (i >= 0 && j >= 0) *core(uint64_t(i), uint64_t(j)) += w00;
            if (i >= 0 && j + 1 < g.nx) *core(uint64_t(i), uint64_t(j + 1)) += w01;
            if (i + 1 < g.ny && j >= 0) *core(uint64_t(i + 1), uint64_t(j)) += w10;
            if (i + 1 < g.ny && j + 1 < g.nx) *core(uint64_t(i + 1), uint64_t(j + 1)) += w11;
        }
    }
    // Borders: stored row q of tile (r, c) is bin row r*T - 1 + q (likewise columns); rows 0, T + 1, T + 2
    // and columns 0, T + 1, T + 2 are copied from the neighbours' cores (0 outside the grid or where not
    // stored: a core's bins outside the grid are never written).
    const float* data = d.data.data();
    auto core_of = [&](int64_t r, int64_t c) -> const float* {  // core bin (0, 0) of tile (r, c), or null
        if (r < 0 || c < 0 || r >= d.tiles_y || c >= tiles_x) return nullptr;
        const int32_t u = tile[r * tiles_x + c];
        return u < 0 ? nullptr : data + size_t(u) * size_t(kTileFloats) + size_t(kStride + 1);
    };
    auto bin = [](const float* core, int64_t i, int64_t j) { return core ? core[i * kStride + j] : 0.0f; };
    for (int64_t r = 0; r < d.tiles_y; ++r)
        for (int64_t c = 0; c < tiles_x; ++c) {
            const int32_t t = tile[r * tiles_x + c];
            if (t < 0) continue;
            float* dst = d.data.data() + size_t(t) * size_t(kTileFloats);
            const float* nb[3][3];  // nb[dr + 1][dc + 1]: tile (r + dr, c + dc)
            for (int dr = -1; dr <= 1; ++dr)
                for (int dc = -1; dc <= 1; ++dc) nb[dr + 1][dc + 1] = core_of(r + dr, c + dc);
            // Stored row q, its source: the row above's last core row, the row below's first two.
            const int64_t rows[3][3] = {{0, 0, kT - 1}, {kT + 1, 2, 0}, {kT + 2, 2, 1}};  // q, nb row, core row
            for (const auto& w : rows) {
                float* o = dst + w[0] * kStride;
                const int64_t i = w[2];
                o[0] = bin(nb[w[1]][0], i, kT - 1);
                for (int64_t a = 0; a < kT; ++a) o[a + 1] = bin(nb[w[1]][1], i, a);
                o[kT + 1] = bin(nb[w[1]][2], i, 0);
                o[kT + 2] = bin(nb[w[1]][2], i, 1);
            }
            for (int64_t q = 1; q <= kT; ++q) {
                float* o = dst + q * kStride;
                o[0] = bin(nb[1][0], q - 1, kT - 1);
                o[kT + 1] = bin(nb[1][2], q - 1, 0);
                o[kT + 2] = bin(nb[1][2], q - 1, 1);
            }
        }
}

typedef double f64x2 __attribute__((vector_size(16)));
SPOTCORE_INLINE f64x2 lo2(f32x4 v) { return __builtin_convertvector(__builtin_shufflevector(v, v, 0, 1), f64x2); }
SPOTCORE_INLINE f64x2 hi2(f32x4 v) { return __builtin_convertvector(__builtin_shufflevector(v, v, 2, 3), f64x2); }

// Where the 4x4 bins around a point in bin (i, j) lie (rows i - 1 .. i + 2, columns j - 1 .. j + 2): a pointer
// into the image and its row stride, or `slow` filled bin by bin (0 outside the grid or where not stored).
struct DenseBins {
    const float* img;
    int64_t nx, ny;
    SPOTCORE_INLINE const float* block(int64_t i, int64_t j, float* slow, int64_t& stride) const {
        if (i >= 1 && j >= 1 && i + 2 < ny && j + 2 < nx) {
            stride = nx;
            return img + (i - 1) * nx + (j - 1);
        }
        for (int q = 0; q < 4; ++q)
            for (int a = 0; a < 4; ++a) {
                const int64_t bi = i - 1 + q, bj = j - 1 + a;
                slow[4 * q + a] = bi >= 0 && bj >= 0 && bi < ny && bj < nx ? img[bi * nx + bj] : 0.0f;
            }
        stride = 4;
        return slow;
    }
};
struct SparseBins {
    const DriftDensity& d;  // its slow path only
    const float* data = d.data.data();
    const int32_t* tile = d.tile.data();
    const uint64_t rows = uint64_t(d.tiles_y * kT), cols = uint64_t(d.tiles_x * kT), tiles_x = uint64_t(d.tiles_x);
    SPOTCORE_INLINE const float* block(int64_t i, int64_t j, float* slow, int64_t& stride) const {
        const uint64_t ui = uint64_t(i), uj = uint64_t(j);  // i = -1: huge, not < rows
        const int32_t t = ui < rows && uj < cols ? tile[(ui / kT) * tiles_x + uj / kT] : -1;
        if (t >= 0) {  // bin (i - 1, j - 1) is stored at row i mod T, column j mod T of the tile
            stride = kStride;
            return data + size_t(t) * size_t(kTileFloats) + size_t((ui % kT) * kStride + uj % kT);
        }
        for (int q = 0; q < 4; ++q)  // a tile not stored: its bins can be in a neighbour's core
            for (int a = 0; a < 4; ++a) slow[4 * q + a] = bin_value(d, i - 1 + q, j - 1 + a);
        stride = 4;
        return slow;
    }
};

// The 13 numbers of drift_stencil for one segment, step one bin; point p is (x[p ps], y[p ps]). The bilinear
// weights in float (one 4-wide vector per row of the 4x4 block); sums in float over blocks of 16 points, then
// in double, in point order. Without kGradients, out[9..11] are 0 (the Newton steps need only out[0..8] and
// out[12]; the other sums are the same bytes).
template <bool kGradients, class Bins>
SPOTCORE_INLINE void stencil_sums(const Bins bins, const DriftGrid& g, const double* x, const double* y, int64_t ps,
                                  int64_t first, int64_t last, double cx, double cy, double* out, int64_t step) {
    const double inv = 1.0 / g.bin, nx = double(g.nx), ny = double(g.ny);
    const double ox = cx - g.x0, oy = cy - g.y0;
    f64x2 acc[4][2] = {};  // acc[q][0]: lanes x offset -1, 0; acc[q][1]: +1, unused; y offset q - 1; q = 3: gradients
    int64_t cnt = 0;
    for (int64_t p0 = first; p0 < last; p0 += 16 * step) {
        f32x4 part[4] = {};  // part[3] = (gx^2, gx gy, gy^2, unused), gradients times 2h
        for (int64_t p = p0, p1 = std::min(last, p0 + 16 * step); p < p1; p += step) {
            const double fx = (x[p * ps] + ox) * inv, fy = (y[p * ps] + oy) * inv;
            if (!(fx > -1.0 && fy > -1.0 && fx < nx && fy < ny)) continue;
            ++cnt;
            int64_t i, j;
            double txd, tyd;
            bin_of(fx, fy, i, j, txd, tyd);
            float slow[16];
            int64_t stride;
            const float* blk = bins.block(i, j, slow, stride);
            f32x4 c[3];  // lanes: x offset -1, 0, +1 (3: unused); y offset q - 1
            block3x3(blk, stride, float(txd), float(tyd), c);
            for (int q = 0; q < 3; ++q) part[q] += c[q];
            if (!kGradients) continue;
            // g = (gx, gy, gx, gy): gx = c[1][2] - c[1][0], gy = c[2][1] - c[0][1]; lane 3 of part[3] is not read.
            const f32x4 g = __builtin_shufflevector(c[1], c[2], 2, 5, 2, 5) -
                            __builtin_shufflevector(c[1], c[0], 0, 5, 0, 5);
            part[3] += __builtin_shufflevector(g, g, 0, 0, 1, 1) * __builtin_shufflevector(g, g, 0, 1, 1, 1);
        }
        for (int q = 0; q < 4; ++q) {
            acc[q][0] += lo2(part[q]);
            acc[q][1] += hi2(part[q]);
        }
    }
    for (int q = 0; q < 3; ++q) {
        out[q] = acc[q][0][0];
        out[3 + q] = acc[q][0][1];
        out[6 + q] = acc[q][1][0];
    }
    const double s = 1.0 / (4 * g.bin * g.bin);
    out[9] = acc[3][0][0] * s;
    out[10] = acc[3][0][1] * s;
    out[11] = acc[3][1][0] * s;
    out[12] = double(cnt);
}

SPOTCORE_CLONES void sparse_stencil(const DriftDensity& d, const double* x, const double* y, int64_t ps, int64_t first,
                                    int64_t last, double cx, double cy, double* out, int64_t step = 1) {
    stencil_sums<true>(SparseBins{d}, d.grid, x, y, ps, first, last, cx, cy, out, step);
}

// sparse_stencil without the gradient sums (out[9..11] = 0): the Newton steps whose variance is not kept.
SPOTCORE_CLONES void sparse_newton_sums(const DriftDensity& d, const double* x, const double* y, int64_t ps,
                                        int64_t first, int64_t last, double cx, double cy, double* out, int64_t step) {
    stencil_sums<false>(SparseBins{d}, d.grid, x, y, ps, first, last, cx, cy, out, step);
}

SPOTCORE_CLONES void dense_stencil(const float* img, const DriftGrid& g, const double* x, const double* y,
                                   int64_t first, int64_t last, double cx, double cy, double* out) {
    stencil_sums<true>(DenseBins{img, g.nx, g.ny}, g, x, y, 1, first, last, cx, cy, out, 1);
}

SPOTCORE_CLONES void dense_newton_sums(const float* img, const DriftGrid& g, const double* x, const double* y,
                                       int64_t first, int64_t last, double cx, double cy, double* out) {
    stencil_sums<false>(DenseBins{img, g.nx, g.ny}, g, x, y, 1, first, last, cx, cy, out, 1);
}

void stencil(const float* img, const DriftGrid& g, const double* x, const double* y, int64_t first, int64_t last,
             double cx, double cy, double h, double* out) {
    if (h == g.bin)
        dense_stencil(img, g, x, y, first, last, cx, cy, out);
    else
        generic_stencil(img, g, x, y, first, last, cx, cy, h, out);
}

void newton_stencil(const float* img, const DriftGrid& g, const double* x, const double* y, int64_t first,
                    int64_t last, double cx, double cy, double h, double* out) {
    if (h == g.bin)
        dense_newton_sums(img, g, x, y, first, last, cx, cy, out);
    else
        generic_stencil(img, g, x, y, first, last, cx, cy, h, out);
}

// Round 2 of one segment: Newton steps from c (its points (x, y) moved by c; interleaved) on the stencil of
// `img`, c updated; the variance from the last stencil (sandwich H^-1 S H^-1). Leaves var at inf where the
// score is not concave; where the move from the start exceeds `travel` (another maximum, e.g. a neighbouring
// site of a periodic structure) stops on that circle, and with `drop` leaves var at inf.
void align_segment(const DriftDensity& img, const double* xy, int64_t first, int64_t last, int64_t step,
                   int iterations, double travel, bool drop, double* c, double* var) {
    const double h = img.grid.bin;
    const double sx = c[0], sy = c[1];
    double cx = sx, cy = sy;
    var[0] = var[1] = INFINITY;
    for (int it = 0; it < iterations; ++it) {
        double s[13];
        if (drop)  // the last pass: its variance is kept
            sparse_stencil(img, xy, xy + 1, 2, first, last, cx, cy, s, step);
        else
            sparse_newton_sums(img, xy, xy + 1, 2, first, last, cx, cy, s, step);
        const double gx = (s[7] - s[1]) / (2 * h), gy = (s[5] - s[3]) / (2 * h);
        const double hxx = (s[7] - 2 * s[4] + s[1]) / (h * h), hyy = (s[5] - 2 * s[4] + s[3]) / (h * h);
        const double hxy = (s[8] - s[6] - s[2] + s[0]) / (4 * h * h);
        const double det = hxx * hyy - hxy * hxy;
        double dx, dy;
        if (hxx < 0 && det > 0) {
            dx = -(hyy * gx - hxy * gy) / det;
            dy = -(-hxy * gx + hxx * gy) / det;
            // Sandwich: Cov = H^-1 S H^-1, S = sum of the per-point gradient outer products.
            const double a = hyy / det, b = -hxy / det, d = hxx / det;  // H^-1 = [[a, b], [b, d]]
            var[0] = a * a * s[9] + 2 * a * b * s[10] + b * b * s[11];
            var[1] = b * b * s[9] + 2 * b * d * s[10] + d * d * s[11];
        } else {  // not concave: a step towards the best stencil point
            int best = 0;
            for (int k = 1; k < 9; ++k)
                if (s[k] > s[best]) best = k;
            dx = (best / 3 - 1) * h;
            dy = (best % 3 - 1) * h;
            var[0] = var[1] = INFINITY;
        }
        const double len = std::hypot(dx, dy);
        if (len > h) {
            dx *= h / len;
            dy *= h / len;
        }
        if (!std::isfinite(dx) || !std::isfinite(dy)) {
            var[0] = var[1] = INFINITY;
            break;
        }
        cx += dx;
        cy += dy;
        const double dist = std::hypot(cx - sx, cy - sy);
        if (dist > travel) {  // left the basin it started in: not this segment's own maximum
            if (drop) {
                var[0] = var[1] = INFINITY;
            } else {  // a coarse pass: stop on the edge, the next pass goes on from there
                cx = sx + (cx - sx) * (travel / dist);
                cy = sy + (cy - sy) * (travel / dist);
            }
            break;
        }
        if (std::hypot(dx, dy) < 0.1 * h) break;  // 0.25: 4x the z drift error in tests/test_astig_drift.py
    }
    c[0] = cx;
    c[1] = cy;
}

// All x, y finite and frame non-decreasing: in blocks without an early exit, on the bits (vectorized; this
// runs on one thread before round 1). NaN and inf have all exponent bits set.
SPOTCORE_CLONES bool finite_and_sorted(const double* x, const double* y, const int64_t* frame, int64_t n) {
    constexpr uint64_t kExp = uint64_t(0x7ff) << 52;
    for (int64_t b = 0; b < n; b += 4096) {
        const int64_t e = std::min(n, b + 4096);
        uint64_t bad = 0;
        for (int64_t p = b; p < e; ++p) {
            uint64_t u, v;
            std::memcpy(&u, x + p, 8);
            std::memcpy(&v, y + p, 8);
            bad |= uint64_t((u & kExp) == kExp) | uint64_t((v & kExp) == kExp);
        }
        for (int64_t p = std::max<int64_t>(b, 1); p < e; ++p) bad |= uint64_t(frame[p] < frame[p - 1]);
        if (bad) return false;
    }
    return true;
}

Result check_segments(const double* x, const double* y, const int64_t* starts, const int64_t* ends,
                      int64_t n_segments) {
    if (n_segments < 0) return Result::invalid("drift: number of segments must be >= 0");
    if (n_segments == 0) return Result::success();
    if (!x || !y || !starts || !ends) return Result::invalid("drift: points and segment bounds must not be null");
    for (int64_t k = 0; k < n_segments; ++k)
        if (starts[k] < 0 || ends[k] < starts[k])
            return Result::invalid("drift: segment " + std::to_string(k) + " has bounds [" +
                                   std::to_string(starts[k]) + ", " + std::to_string(ends[k]) + ")");
    return Result::success();
}

}  // namespace

Result check_drift_grid(const DriftGrid& g) {
    if (!(g.bin > 0) || !std::isfinite(g.bin)) return Result::invalid("drift grid: bin must be > 0 and finite");
    if (!std::isfinite(g.x0) || !std::isfinite(g.y0)) return Result::invalid("drift grid: origin must be finite");
    if (g.nx < 1 || g.ny < 1) return Result::invalid("drift grid: nx and ny must be >= 1");
    if (g.nx > kMaxDriftBins / g.ny)
        return Result::invalid("drift grid: " + std::to_string(g.nx) + " x " + std::to_string(g.ny) +
                               " bins is more than " + std::to_string(kMaxDriftBins));
    return Result::success();
}

Result check_drift_track_options(const DriftTrackOptions& o) {
    if (!(o.radius >= 0) || !std::isfinite(o.radius)) return Result::invalid("drift track: radius must be >= 0");
    if (!(o.coarse_step > 0) || !std::isfinite(o.coarse_step))
        return Result::invalid("drift track: coarse_step must be > 0");
    if (!(o.step > 0) || !std::isfinite(o.step)) return Result::invalid("drift track: step must be > 0");
    if (o.iterations < 0 || o.iterations > 1000) return Result::invalid("drift track: iterations must be 0..1000");
    if (!(o.drop >= 0 && o.drop <= 1)) return Result::invalid("drift track: drop must be in [0, 1]");
    if (o.radius / o.coarse_step > 1000) return Result::invalid("drift track: radius / coarse_step must be <= 1000");
    return Result::success();
}

Result drift_histogram(const double* x, const double* y, const double* w, int64_t n, const DriftGrid& g,
                       float* image) {
    Result r = check_drift_grid(g);
    if (!r.ok()) return r;
    if (n < 0) return Result::invalid("drift_histogram: n must be >= 0");
    if (n == 0) return Result::success();
    if (!x || !y || !image) return Result::invalid("drift_histogram: x, y and image must not be null");
    for (int64_t k = 0; k < n; ++k) {
        const double fx = (x[k] - g.x0) / g.bin, fy = (y[k] - g.y0) / g.bin;
        if (!(fx > -1.0 && fy > -1.0 && fx < double(g.nx) && fy < double(g.ny))) continue;
        const double wk = w ? w[k] : 1.0;
        if (!std::isfinite(wk)) continue;
        int64_t i, j;
        double tx, ty;
        bin_of(fx, fy, i, j, tx, ty);
        if (i >= 0) {
            float* row = image + i * g.nx;
            if (j >= 0) row[j] += float(wk * (1 - ty) * (1 - tx));
            if (j + 1 < g.nx) row[j + 1] += float(wk * (1 - ty) * tx);
        }
        if (i + 1 < g.ny) {
            float* row = image + (i + 1) * g.nx;
            if (j >= 0) row[j] += float(wk * ty * (1 - tx));
            if (j + 1 < g.nx) row[j + 1] += float(wk * ty * tx);
        }
    }
    return Result::success();
}

Result drift_stencil(const float* image, const DriftGrid& g, const double* x, const double* y,
                     const int64_t* starts, const int64_t* ends, int64_t n_segments, const double* centres,
                     double step, int32_t threads, double* out) {
    Result r = check_drift_grid(g);
    if (!r.ok()) return r;
    r = check_segments(x, y, starts, ends, n_segments);
    if (!r.ok()) return r;
    if (!(step > 0) || !std::isfinite(step)) return Result::invalid("drift_stencil: step must be > 0");
    if (n_segments == 0) return Result::success();
    if (!image || !centres || !out) return Result::invalid("drift_stencil: image, centres and out must not be null");
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(thread_count(threads)) if (n_segments > 1)
#endif
    for (int64_t k = 0; k < n_segments; ++k)
        stencil(image, g, x, y, starts[k], ends[k], centres[2 * k], centres[2 * k + 1], step, out + 13 * k);
    (void)threads;
    return Result::success();
}

Result drift_density(const double* x, const double* y, const int64_t* starts, const int64_t* ends,
                     int64_t n_segments, int64_t first, int64_t every, const DriftGrid& grid, DriftDensity* out) {
    Result r = check_drift_grid(grid);
    if (!r.ok()) return r;
    r = check_segments(x, y, starts, ends, n_segments);
    if (!r.ok()) return r;
    if (!out || first < 0 || every < 1) return Result::invalid("drift_density: out must not be null, first >= 0, every >= 1");
    try {
        build_density(x, y, 1, starts, ends, n_segments, first, every, nullptr, grid, *out);
    } catch (const std::bad_alloc&) {
        return {Status::out_of_memory, "out of memory in drift_density"};
    }
    return Result::success();
}

Result drift_density_stencil(const DriftDensity& d, const double* x, const double* y, const int64_t* starts,
                             const int64_t* ends, int64_t n_segments, const double* centres, int32_t threads,
                             double* out) {
    Result r = check_drift_grid(d.grid);
    if (!r.ok()) return r;
    if (d.tiles_x != (d.grid.nx + kT - 1) / kT || d.tiles_y != (d.grid.ny + kT - 1) / kT ||
        d.tile.size() != size_t(d.tiles_x * d.tiles_y))
        return Result::invalid("drift_density_stencil: the density's tiles do not match its grid");
    for (int32_t t : d.tile)
        if (t >= 0 && (size_t(t) + 1) * size_t(kTileFloats) > d.data.size())
            return Result::invalid("drift_density_stencil: a tile index is past the density's data");
    r = check_segments(x, y, starts, ends, n_segments);
    if (!r.ok()) return r;
    if (n_segments == 0) return Result::success();
    if (!centres || !out) return Result::invalid("drift_density_stencil: centres and out must not be null");
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(thread_count(threads)) if (n_segments > 1)
#endif
    for (int64_t k = 0; k < n_segments; ++k)
        sparse_stencil(d, x, y, 1, starts[k], ends[k], centres[2 * k], centres[2 * k + 1], out + 13 * k);
    (void)threads;
    return Result::success();
}

Result drift_track(const float* image, const DriftGrid& g, const double* x, const double* y,
                   const int64_t* starts, const int64_t* ends, int64_t n_segments, const DriftTrackOptions& o,
                   double* shifts, double* score) {
    Result r = check_drift_grid(g);
    if (!r.ok()) return r;
    r = check_drift_track_options(o);
    if (!r.ok()) return r;
    r = check_segments(x, y, starts, ends, n_segments);
    if (!r.ok()) return r;
    if (n_segments == 0) return Result::success();
    if (!image || !shifts || !score) return Result::invalid("drift_track: image, shifts and score must not be null");
    const int64_t half = int64_t(std::floor(o.radius / o.coarse_step));
    double px = 0.0, py = 0.0, typical = 0.0;
    try {
        std::vector<double> u, v, su, sv, trials, rows;
        for (int64_t k = 0; k < n_segments; ++k) {
            const int64_t first = starts[k], last = ends[k], count = last - first;
            if (count == 0) {
                shifts[2 * k] = px;
                shifts[2 * k + 1] = py;
                score[k] = 0.0;
                continue;
            }
            double cx = px, cy = py;
            double start = 0.0;  // the score where the previous segment was: a jump shows here, before Newton
            for (int64_t p = first; p < last; ++p) start += sample(image, g, x[p] + px, y[p] + py);
            start /= double(count);
            double s = refine(image, g, x, y, first, last, cx, cy, o.step, o.iterations) / double(count);
            if (typical > 0 && std::min(start, s) < o.drop * typical && half > 0) {
                // Search the square around the previous shift, then refine the best trial.
                u.resize(size_t(count));  // the points in bins, once per search (its trials only add a shift)
                v.resize(size_t(count));
                for (int64_t p = first; p < last; ++p) {
                    u[size_t(p - first)] = (x[p] - g.x0) / g.bin;
                    v[size_t(p - first)] = (y[p] - g.y0) / g.bin;
                }
                const int64_t side = 2 * half + 1;
                su.resize(size_t(side));
                sv.resize(size_t(side));
                trials.resize(size_t(side * side));
                for (int64_t a = -half; a <= half; ++a) {
                    su[size_t(a + half)] = (px + double(a) * o.coarse_step) / g.bin;
                    sv[size_t(a + half)] = (py + double(a) * o.coarse_step) / g.bin;
                }
                search_scores(image, g, u.data(), v.data(), count, su.data(), sv.data(), side, trials.data(), rows);
                double best = -1.0, bx = px, by = py;
                for (int64_t a = -half; a <= half; ++a)
                    for (int64_t b = -half; b <= half; ++b) {
                        const double tx = px + double(a) * o.coarse_step, ty = py + double(b) * o.coarse_step;
                        const double t = trials[size_t((a + half) * side + b + half)];
                        if (t > best) {
                            best = t;
                            bx = tx;
                            by = ty;
                        }
                    }
                double s2 = refine(image, g, x, y, first, last, bx, by, o.step, o.iterations) / double(count);
                if (s2 > 1.05 * s) {  // better by more than noise: a noisy dip alone must not move the track
                    s = s2;
                    cx = bx;
                    cy = by;
                }
            }
            // Running typical score: fast to follow slow changes of density, a jump moves it little.
            typical = typical > 0 ? 0.9 * typical + 0.1 * std::min(s, 2 * typical) : s;
            px = cx;
            py = cy;
            shifts[2 * k] = cx;
            shifts[2 * k + 1] = cy;
            score[k] = s;
        }
    } catch (const std::bad_alloc&) {
        return {Status::out_of_memory, "out of memory in drift_track"};
    }
    return Result::success();
}

Result drift_rts(const double* t, const double* m, const double* r, const uint8_t* breaks, int64_t n, double q,
                 double* xs, double* ps) {
    if (n < 1 || !t || !m || !r || !breaks || !xs || !ps) return Result::invalid("drift_rts: n >= 1 and no null arrays");
    if (!(q >= 0) || !std::isfinite(q)) return Result::invalid("drift_rts: q must be finite and >= 0");
    for (int64_t k = 0; k < n; ++k)
        if (!std::isfinite(t[k]) || !std::isfinite(m[k]) || !(r[k] >= 0) || (k && t[k] < t[k - 1]))
            return Result::invalid("drift_rts: t must be finite and non-decreasing, m finite, r >= 0 or inf");
    try {
        std::vector<double> xp(static_cast<size_t>(n)), pp(static_cast<size_t>(n));  // predictions; xs, ps hold the filtered values first
        double x = m[0], p = INFINITY;
        for (int64_t k = 0; k < n; ++k) {
            if (k) p += breaks[k - 1] ? 1e12 : q * (t[k] - t[k - 1]);
            xp[size_t(k)] = x;
            pp[size_t(k)] = p;
            if (r[k] < INFINITY) {
                if (p == INFINITY) {
                    x = m[k];
                    p = r[k];
                } else {
                    const double g = p + r[k] > 0 ? p / (p + r[k]) : 0.0;  // both exact: keep the state
                    x = x + g * (m[k] - x);
                    p = (1 - g) * p;
                }
            }
            xs[k] = x;
            ps[k] = p;
        }
        for (int64_t k = n - 2; k >= 0; --k) {
            const double pn = pp[size_t(k + 1)];
            if (pn == INFINITY || pn == 0) continue;
            const double a = ps[k] / pn;  // ps[k] is still the filtered variance here
            xs[k] = xs[k] + a * (xs[k + 1] - xp[size_t(k + 1)]);
            ps[k] = ps[k] + a * a * (ps[k + 1] - pn);
        }
    } catch (const std::bad_alloc&) {
        return {Status::out_of_memory, "out of memory in drift_rts"};
    }
    return Result::success();
}

Result drift_aim(const double* x, const double* y, const int64_t* frame, int64_t n, int64_t ref_end,
                 const DriftGrid& grid1, const int64_t* long_starts, const int64_t* long_ends,
                 const int64_t* long_edges, int64_t n_long, int64_t stride, const int64_t* starts,
                 const int64_t* ends, const int64_t* edges, const double* t, int64_t n_segments,
                 const DriftAimOptions& o, double* shift, double* var, double* xc, DriftAimResult* result) {
    Result r = check_drift_grid(grid1);
    if (!r.ok()) return r;
    if (n < 1 || n_long < 1 || n_segments < 1) return Result::invalid("drift_aim: n, n_long, n_segments must be >= 1");
    if (!x || !y || !frame || !long_starts || !long_ends || !long_edges || !starts || !ends || !edges || !t ||
        !shift || !var || !xc || !result)
        return Result::invalid("drift_aim: null input or output");
    if (ref_end < 1 || ref_end > n) return Result::invalid("drift_aim: ref_end must be in 1..n");
    if (stride < 1) return Result::invalid("drift_aim: stride must be >= 1");
    DriftTrackOptions to;
    to.radius = o.radius;
    to.coarse_step = o.coarse_step;
    to.step = grid1.bin;
    to.iterations = o.track_iterations;
    to.drop = o.drop;
    r = check_drift_track_options(to);
    if (!r.ok()) return r;
    if (o.iterations < 0 || o.iterations > 1000) return Result::invalid("drift_aim: iterations must be 0..1000");
    if (o.passes < 1 || o.passes > 8) return Result::invalid("drift_aim: passes must be 1..8");
    if (o.coarse_stride < 1) return Result::invalid("drift_aim: coarse_stride must be >= 1");
    if (!(o.travel > 0)) return Result::invalid("drift_aim: travel must be > 0");
    if (!(o.bin2 > 0) || !std::isfinite(o.bin2) || !(o.margin2 >= 0) || !std::isfinite(o.margin2) || o.max_bins < 1)
        return Result::invalid("drift_aim: bin2 must be > 0, margin2 >= 0 and max_bins >= 1");
    for (int64_t k = 0; k < n_long; ++k)
        if (long_starts[k] < 0 || long_ends[k] < long_starts[k] || long_ends[k] > n ||
            (k && long_starts[k] < long_ends[k - 1]))
            return Result::invalid("drift_aim: long segment " + std::to_string(k) + " has bad bounds");
    for (int64_t k = 0; k < n_segments; ++k)
        if (starts[k] < 0 || ends[k] < starts[k] || ends[k] > n || (k && starts[k] < ends[k - 1]))
            return Result::invalid("drift_aim: segment " + std::to_string(k) + " has bad bounds");
    if (!finite_and_sorted(x, y, frame, n))
        return Result::invalid("drift_aim: points must be finite and sorted by frame");
    // The per-point loops after round 1 run on the threads of round 2 (each point's value alone: the same for
    // any count). None before round 1: OpenMP's idle threads spin for a while after a parallel region, and
    // round 1 (one thread, a few ms) would share its core with one on a busy machine.
    const int threads = n >= o.parallel_points ? thread_count(o.threads) : 1;
    try {
        double* d1 = xc;  // xc holds the round-1 drift of each point until round 2 makes it x - d1
        // ---- Round 1a: every stride-th point of the long segments against the first ref_end points.
        std::vector<float> img(size_t(grid1.nx * grid1.ny), 0.0f);
        drift_histogram(x, y, nullptr, ref_end, grid1, img.data());
        std::vector<double> xs, ys;
        std::vector<int64_t> ss(static_cast<size_t>(n_long)), se(static_cast<size_t>(n_long));
        std::vector<double> tl;  // mean frame of the used points of each non-empty long segment
        std::vector<int64_t> good_long;
        for (int64_t k = 0; k < n_long; ++k) {
            ss[size_t(k)] = int64_t(xs.size());
            double sum = 0.0;
            for (int64_t p = (long_starts[k] + stride - 1) / stride * stride; p < long_ends[k]; p += stride) {
                xs.push_back(x[p]);
                ys.push_back(y[p]);
                sum += double(frame[p]);
            }
            se[size_t(k)] = int64_t(xs.size());
            tl.push_back(se[size_t(k)] > ss[size_t(k)] ? sum / double(se[size_t(k)] - ss[size_t(k)]) : 0.0);
        }
        // A long segment with far fewer points than the others (the last, cut by the end of the movie) is
        // tracked badly: on a periodic structure it can lock onto a neighbouring site. Such segments take the
        // drift of their neighbours (interpolation) instead.
        {
            std::vector<double> counts;
            for (int64_t k = 0; k < n_long; ++k) counts.push_back(double(se[size_t(k)] - ss[size_t(k)]));
            const double least = std::max(1.0, 0.5 * median(counts));
            std::vector<double> kept;
            for (int64_t k = 0; k < n_long; ++k)
                if (double(se[size_t(k)] - ss[size_t(k)]) >= least) {
                    good_long.push_back(k);
                    kept.push_back(tl[size_t(k)]);
                }
            tl.swap(kept);
        }
        if (good_long.empty()) return Result::invalid("drift_aim: no point in the long segments");
        std::vector<double> sh(size_t(2 * n_long)), sc(static_cast<size_t>(n_long));
        // Tracked up to the last good one: a short last segment would be tracked for nothing (and its low score
        // starts a search of the whole square: ~5 % of a call on the benchmark table).
        r = drift_track(img.data(), grid1, xs.data(), ys.data(), ss.data(), se.data(), good_long.back() + 1, to,
                        sh.data(), sc.data());
        if (!r.ok()) return r;
        std::vector<double> vx, vy;  // the drift (minus the shift) of the good long segments
        for (int64_t k : good_long) {
            vx.push_back(-sh[size_t(2 * k)]);
            vy.push_back(-sh[size_t(2 * k + 1)]);
        }
        // Points are in frame order: one walk over the knots per block of points (the arithmetic of interp(),
        // its search once a block).
        constexpr int64_t kBlock = int64_t(1) << 14;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
        for (int64_t b = 0; b < n; b += kBlock)
        for (int64_t p = b, m = int64_t(tl.size()),
                     k = int64_t(std::upper_bound(tl.begin(), tl.end(), double(frame[b])) - tl.begin());
             p < std::min(n, b + kBlock); ++p) {
            if (p > b && frame[p] == frame[p - 1]) {  // a frame's points share its value
                d1[2 * p] = d1[2 * p - 2];
                d1[2 * p + 1] = d1[2 * p - 1];
                continue;
            }
            const double f = double(frame[p]);
            while (k < m && !(tl[size_t(k)] > f)) ++k;  // k: the first knot after f
            if (f <= tl.front() || k == 0) {
                d1[2 * p] = vx.front();
                d1[2 * p + 1] = vy.front();
            } else if (k == m) {
                d1[2 * p] = vx.back();
                d1[2 * p + 1] = vy.back();
            } else {
                const double a = (f - tl[size_t(k - 1)]) / (tl[size_t(k)] - tl[size_t(k - 1)]);
                d1[2 * p] = vx[size_t(k - 1)] + a * (vx[size_t(k)] - vx[size_t(k - 1)]);
                d1[2 * p + 1] = vy[size_t(k - 1)] + a * (vy[size_t(k)] - vy[size_t(k - 1)]);
            }
        }
        // ---- Round 1b: spans around neighbours that differ by far more than the drift does.
        const size_t m = vx.size();
        if (m > 3) {
            std::vector<double> dxs(m - 1), dys(m - 1);
            for (size_t k = 0; k + 1 < m; ++k) {
                dxs[k] = vx[k + 1] - vx[k];
                dys[k] = vy[k + 1] - vy[k];
            }
            const double mdx = median(dxs), mdy = median(dys);
            std::vector<double> ax(m - 1), ay(m - 1);
            for (size_t k = 0; k + 1 < m; ++k) {
                ax[k] = std::abs(dxs[k] - mdx);
                ay[k] = std::abs(dys[k] - mdy);
            }
            const double lim_x = std::max(6 * 1.4826 * median(ax), o.coarse_step);
            const double lim_y = std::max(6 * 1.4826 * median(ay), o.coarse_step);
            std::vector<std::pair<int64_t, int64_t>> spans;  // frame bounds
            for (size_t k = 0; k + 1 < m; ++k) {
                if (!(ax[k] > lim_x || ay[k] > lim_y)) continue;
                const int64_t lo = long_edges[std::max<int64_t>(good_long[k] - 1, 0)];
                const int64_t hi = long_edges[std::min<int64_t>(good_long[k + 1] + 2, n_long)];
                if (!spans.empty() && lo <= spans.back().second)
                    spans.back().second = std::max(spans.back().second, hi);
                else
                    spans.emplace_back(lo, hi);
            }
            if (!spans.empty()) {
                // The points corrected by 1a, filled span by span below (untouched pages cost nothing).
                std::unique_ptr<double[]> x0(new double[size_t(n)]), y0(new double[size_t(n)]);
                // The reference: every stride-th corrected point (as 1a's segments; still ~10x 1a's reference).
                std::vector<double> xr, yr;
                for (int64_t p = 0; p < n; p += stride) {
                    xr.push_back(x[p] - d1[2 * p]);
                    yr.push_back(y[p] - d1[2 * p + 1]);
                }
                std::fill(img.begin(), img.end(), 0.0f);
                drift_histogram(xr.data(), yr.data(), nullptr, int64_t(xr.size()), grid1, img.data());
                for (const auto& span : spans) {
                    std::vector<int64_t> ks_s, ks_e;
                    std::vector<double> ts;
                    for (int64_t k = 0; k < n_segments; ++k)
                        if (edges[k] >= span.first && edges[k + 1] <= span.second && ends[k] > starts[k]) {
                            ks_s.push_back(starts[k]);
                            ks_e.push_back(ends[k]);
                            ts.push_back(t[k]);
                        }
                    if (ks_s.size() < 2) continue;
                    for (int64_t p = ks_s.front(); p < ks_e.back(); ++p) {  // spans are disjoint: 1a's d1 here
                        x0[size_t(p)] = x[p] - d1[2 * p];
                        y0[size_t(p)] = y[p] - d1[2 * p + 1];
                    }
                    std::vector<double> s2(2 * ks_s.size()), c2(ks_s.size());
                    r = drift_track(img.data(), grid1, x0.get(), y0.get(), ks_s.data(), ks_e.data(),
                                    int64_t(ks_s.size()), to, s2.data(), c2.data());
                    if (!r.ok()) return r;
                    std::vector<double> ux(ks_s.size()), uy(ks_s.size());
                    for (size_t k = 0; k < ks_s.size(); ++k) {
                        ux[k] = -s2[2 * k];
                        uy[k] = -s2[2 * k + 1];
                    }
                    for (int64_t p = ks_s.front(); p < ks_e.back(); ++p) {
                        d1[2 * p] += interp(ts, ux, double(frame[p]));
                        d1[2 * p + 1] += interp(ts, uy, double(frame[p]));
                    }
                }
            }
        }
        img.clear();
        img.shrink_to_fit();
        // ---- Round 2: each fold's density; every segment against the other fold's. Coarse to fine: round 1
        // can be off by more than the fine kernel (its reference spans the first frames, its long segments
        // are interpolated), and a reference blurred by those errors pulls the fine Newton steps nowhere; so
        // passes with bins of bin2 * 2^(passes-1) ... bin2, each starting from the previous pass's result.
        // Each segment's mean round-1 drift (the output is it minus round 2's shift).
        std::vector<double> mean1(size_t(2 * n_segments));
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
        for (int64_t k = 0; k < n_segments; ++k) {
            double mx = 0.0, my = 0.0;
            for (int64_t p = starts[k]; p < ends[k]; ++p) {
                mx += d1[2 * p];
                my += d1[2 * p + 1];
            }
            const double cnt = double(std::max<int64_t>(ends[k] - starts[k], 1));
            mean1[size_t(2 * k)] = mx / cnt;
            mean1[size_t(2 * k + 1)] = my / cnt;
        }
        // The round-1-corrected points, interleaved (in place of d1: the output xc): one stream for the
        // densities and the stencils. They are not moved between passes: segment k's points are read moved by
        // its shift so far, at[2k..2k+1].
        double lo_x = INFINITY, hi_x = -INFINITY, lo_y = INFINITY, hi_y = -INFINITY;  // min, max: exact in any order
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads) reduction(min : lo_x, lo_y) reduction(max : hi_x, hi_y)
#endif
        for (int64_t p = 0; p < n; ++p) {
            const double u = x[p] - d1[2 * p], v = y[p] - d1[2 * p + 1];
            xc[2 * p] = u;
            xc[2 * p + 1] = v;
            lo_x = std::min(lo_x, u);
            hi_x = std::max(hi_x, u);
            lo_y = std::min(lo_y, v);
            hi_y = std::max(hi_y, v);
        }
        const double wx = hi_x - lo_x + 2 * o.margin2, wy = hi_y - lo_y + 2 * o.margin2;
        if (!(wx < 1e9 && wy < 1e9))  // bins computed below must fit int64
            return Result::invalid("drift_aim: the points span more than 1e9 px");
        // at: the shifts so far, read by this pass's densities; moved: this pass's result (the next pass's at).
        std::vector<double> at(size_t(2 * n_segments), 0.0), moved(at.size());
        {  // Room for the fine pass's tiles from the first pass on: the coarse passes reuse its pages (no page
           // faults of their own; ~1,000 a call on the benchmark table).
            const double bin0 = std::max(o.bin2, std::sqrt(wx * wy / double(o.max_bins)));
            const int64_t tiles = ((int64_t(std::ceil(wx / bin0)) + kT) / kT) * ((int64_t(std::ceil(wy / bin0)) + kT) / kT);
            for (DriftDensity& d : result->density)
                d.data.reserve(size_t(kTileFloats) * size_t(std::min(tiles, std::max<int64_t>(n / 32, 16))));
        }
        for (int pass = o.passes - 1; pass >= 0; --pass) {
            DriftGrid& grid2 = result->grid2;
            grid2.x0 = lo_x - o.margin2;
            grid2.y0 = lo_y - o.margin2;
            grid2.bin = std::max(o.bin2 * double(int64_t(1) << pass), std::sqrt(wx * wy / double(o.max_bins)));
            grid2.nx = int64_t(std::ceil(wx / grid2.bin)) + 1;
            grid2.ny = int64_t(std::ceil(wy / grid2.bin)) + 1;
            r = check_drift_grid(grid2);
            if (!r.ok()) return r;
            // Coarse passes only bring segments into the basin of the fine one: every coarse_stride-th point.
            const int64_t step = pass == 0 ? 1 : o.coarse_stride;
            const bool last = pass == 0;
            std::atomic<bool> out_of_memory{false};
            std::atomic<bool> built[2];
            std::atomic<int64_t> next[2];  // per density f: the next of the segments aligned on it (k % 2 == 1 - f)
            for (int f = 0; f < 2; ++f) {
                built[f] = false;
                next[f] = 0;
            }
            constexpr int64_t kChunk = 4;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
#endif
            {
#ifdef _OPENMP
                const int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
                const int t = 0, nt = 1;
#endif
                // Fold f's density is built by thread f % nt (a single pass in point order: deterministic), which
                // then aligns the other fold's segments on it: the density stays in that core's cache. Then it
                // helps with the other density's segments. No barrier: on a busy machine a thread that is not
                // running holds no one up. Each segment is aligned alone: the result does not depend on threads.
                for (int g = 0; g < 2; ++g) {
                    const int f = (t + g) % 2;
                    if (t == f % nt) {
                        try {  // bad_alloc must not leave a parallel region
                            build_density(xc, xc + 1, 2, starts, ends, n_segments, f, 2, at.data(),
                                          grid2, result->density[f], step);
                        } catch (const std::bad_alloc&) {
                            out_of_memory = true;
                        }
                        built[f].store(true, std::memory_order_release);
                    } else {
                        while (!built[f].load(std::memory_order_acquire)) std::this_thread::yield();
                    }
                    if (out_of_memory) break;
                    const int64_t parity = 1 - f, count = (n_segments - parity + 1) / 2;
                    for (int64_t i0; (i0 = next[f].fetch_add(kChunk)) < count;)
                        for (int64_t i = i0; i < std::min(count, i0 + kChunk); ++i) {
                            const int64_t k = 2 * i + parity;
                            double* v = var + 2 * k;
                            v[0] = v[1] = INFINITY;
                            double c[2] = {at[size_t(2 * k)], at[size_t(2 * k + 1)]};
                            if (ends[k] > starts[k])
                                align_segment(result->density[f], xc, starts[k], ends[k], step, o.iterations,
                                              o.travel, last, c, v);
                            moved[size_t(2 * k)] = c[0];
                            moved[size_t(2 * k + 1)] = c[1];
                        }
                }
            }
            if (out_of_memory) throw std::bad_alloc();
            at.swap(moved);
        }
        for (int64_t k = 0; k < 2 * n_segments; ++k) shift[k] = mean1[size_t(k)] - at[size_t(k)];
    } catch (const std::bad_alloc&) {
        return {Status::out_of_memory, "out of memory in drift_aim"};
    }
    return Result::success();
}

}  // namespace spotcore
