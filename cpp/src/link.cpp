#include "spotcore/link.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <new>
#include <string>
#include <vector>

namespace spotcore {
namespace {

// An open event. The fields a candidate search reads come first (one cache line).
struct alignas(64) OpenEvent {
    double mx, my;        // weighted mean position
    uint64_t cell;        // grid cell of (mx, my)
    int64_t next;         // next slot of the same bucket (-1: none)
    int64_t id;           // < 0: a free slot
    int64_t last_frame;
    double wx, wy;        // sums of weights, per axis
    double swx, swy;      // sums of weight * position
    int64_t first_frame, count;
    int64_t prev;         // previous slot of the same bucket (-1: none)
};

struct Candidate {
    double q;         // squared distance, or the gate statistic
    int64_t loc, ev;  // ev: the event's id (ties are broken by ids, which do not depend on where events are kept)
    int64_t slot;
    bool operator<(const Candidate& o) const {
        if (q != o.q) return q < o.q;
        if (loc != o.loc) return loc < o.loc;
        return ev < o.ev;
    }
};

// A vector with an inlined append (std::vector::push_back was not inlined in the big loop).
template <typename T>
struct Buffer {
    std::vector<T> items;
    size_t size = 0;
    void push(const T& v) {
        if (size == items.size()) items.resize(std::max<size_t>(64, 2 * size));
        items[size++] = v;
    }
    T* begin() { return items.data(); }
    T* end() { return items.data() + size; }
};

// Grid coordinate of v: v / cell size, clamped to [-2^30, 2^30] (far or non-finite values share a border
// cell), shifted by 2^31 and truncated (a floor: no libm call, no SSE4.1 in the baseline ISA). Every step is
// monotone in v, so a position within [lo, hi] has a coordinate within [coordinate(lo), coordinate(hi)].
// inv_size: finite, > 0.
constexpr double kCellLimit = 1073741824.0;  // 2^30
inline uint64_t coordinate(double v, double inv_size) {
    double c = v * inv_size;
    c = c > -kCellLimit ? c : -kCellLimit;  // also a NaN mean (weights overflowed)
    c = c < kCellLimit ? c : kCellLimit;
    return uint64_t(int64_t(c + 2.0 * kCellLimit));  // < 2^32 (a signed conversion: one instruction)
}
inline uint64_t cell_key(uint64_t column, uint64_t row) { return column << 32 | row; }

// The open events in slots (reused after an event closes), chained per bucket of a hash of their grid cell
// (cell size 2 * radius: a localization's candidates lie in the 2 x 2 cells around it, rarely 3 x 3).
// An event moves by a fraction of the radius when it takes a localization, so it rarely changes cell.
// At most one open event per 8 buckets: a localization looks into 4 buckets, and a bucket holding another
// cell's event costs a mispredicted branch.
class OpenGrid {
  public:
    explicit OpenGrid(double cell_size) : inv_size_(std::min(1.0 / std::min(cell_size, DBL_MAX), DBL_MAX)) {
        rehash(9);
    }

    std::vector<OpenEvent>& slots() { return slots_; }
    double inv_size() const { return inv_size_; }
    uint64_t cell_of(double x, double y) const { return cell_key(coordinate(x, inv_size_), coordinate(y, inv_size_)); }
    int64_t head(uint64_t cell) const { return head_[bucket(cell)]; }

    // Room for k more events (then add has no branch on whether a slot is free: that was a misprediction
    // per event, as closing and opening alternate).
    void reserve(size_t k) {
        while (free_.size() < k) {
            free_.push_back(int64_t(slots_.size()));
            slots_.push_back(OpenEvent{});
            slots_.back().id = -1;
        }
    }

    int64_t add(const OpenEvent& ev) {  // after reserve
        const int64_t s = free_.back();
        free_.pop_back();
        slots_[size_t(s)] = ev;
        place(s);
        if (++n_open_ * 8 > int64_t(head_.size())) rehash(bits_ + 1);
        return s;
    }

    void remove(int64_t s) {
        unlink(s);
        slots_[size_t(s)].id = -1;
        free_.push_back(s);
        --n_open_;
    }

    // After the event's mean changed.
    void moved(int64_t s) {
        const OpenEvent& ev = slots_[size_t(s)];
        if (cell_of(ev.mx, ev.my) == ev.cell) return;
        unlink(s);
        place(s);
    }

  private:
    size_t bucket(uint64_t cell) const { return size_t((cell * 0x9E3779B97F4A7C15ull) >> (64 - bits_)); }
    void place(int64_t s) {  // into the bucket of its current mean
        OpenEvent& ev = slots_[size_t(s)];
        ev.cell = cell_of(ev.mx, ev.my);
        int64_t& h = head_[bucket(ev.cell)];
        ev.prev = -1;
        ev.next = h;
        if (h >= 0) slots_[size_t(h)].prev = s;
        h = s;
    }
    void unlink(int64_t s) {
        const OpenEvent& ev = slots_[size_t(s)];
        if (ev.prev >= 0)
            slots_[size_t(ev.prev)].next = ev.next;
        else
            head_[bucket(ev.cell)] = ev.next;
        if (ev.next >= 0) slots_[size_t(ev.next)].prev = ev.prev;
    }
    void rehash(int bits) {
        bits_ = bits;
        head_.assign(size_t(1) << bits, -1);
        for (size_t s = 0; s < slots_.size(); ++s)
            if (slots_[s].id >= 0) place(int64_t(s));
    }

    double inv_size_;
    std::vector<OpenEvent> slots_;
    std::vector<int64_t> free_, head_;
    int bits_ = 0;
    int64_t n_open_ = 0;
};

// The per-event outputs. Capacity follows the events per row so far (extrapolated to all rows): fresh memory
// is touched once, instead of the copies and zero-filling of doubling.
void resize_events(LinkEvents& e, size_t m) {
    for (auto* v : {&e.first_frame, &e.last_frame, &e.count}) v->resize(m);
    for (auto* v : {&e.x, &e.y, &e.var_x, &e.var_y}) v->resize(m);
    for (std::vector<double>& v : e.sums) v.resize(m, 0.0);
}
void grow_events(LinkEvents& e, size_t needed, int64_t rows_done, int64_t rows) {
    if (needed > e.x.capacity()) {
        const double per_row = double(needed) / double(std::max<int64_t>(rows_done, 1));
        const size_t m = std::max(needed, size_t(std::min(per_row * 1.05 * double(rows), double(rows))) + 1024);
        for (auto* v : {&e.first_frame, &e.last_frame, &e.count}) v->reserve(m);
        for (auto* v : {&e.x, &e.y, &e.var_x, &e.var_y}) v->reserve(m);
        for (std::vector<double>& v : e.sums) v.reserve(m);
    }
    resize_events(e, needed);
}

// Two lanes of doubles (GCC/Clang vector extension, as in simd.h): GCC does not vectorize an "any bad"
// reduction over comparisons of doubles by itself.
typedef double f64x2 __attribute__((vector_size(16)));
typedef int64_t i64x2 __attribute__((vector_size(16)));
inline f64x2 load2(const double* p) {
    f64x2 v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

// The first bad row of [a, b) (non-finite x or y, bad variance) as an error; success if none.
Result check_rows(const double* x, const double* y, const double* var_x, const double* var_y, int64_t a, int64_t b) {
    // Branch-free first: the row is searched for only when something is wrong. v - v is 0 unless v is NaN or
    // inf; a variance is good when 0 < v <= DBL_MAX (false for NaN).
    i64x2 bad = {0, 0};
    int64_t i = a;
    const f64x2 zero = {0.0, 0.0}, big = {DBL_MAX, DBL_MAX};
    for (; i + 2 <= b; i += 2) {
        const f64x2 vx = load2(x + i), vy = load2(y + i);
        bad |= (vx - vx != zero) | (vy - vy != zero);
        if (var_x) {
            const f64x2 ux = load2(var_x + i), uy = load2(var_y + i);
            bad |= ~((ux > zero) & (ux <= big) & (uy > zero) & (uy <= big));
        }
    }
    bool any = (bad[0] | bad[1]) != 0;
    for (; i < b; ++i) {
        any |= !(x[i] - x[i] == 0.0) || !(y[i] - y[i] == 0.0);
        if (var_x) any |= !(var_x[i] > 0.0 && var_x[i] <= DBL_MAX && var_y[i] > 0.0 && var_y[i] <= DBL_MAX);
    }
    if (!any) return Result::success();
    for (i = a; i < b; ++i) {
        if (!std::isfinite(x[i]) || !std::isfinite(y[i]))
            return Result::invalid("link: row " + std::to_string(i) + " has a non-finite x or y");
        if (var_x && !(std::isfinite(var_x[i]) && var_x[i] > 0 && std::isfinite(var_y[i]) && var_y[i] > 0))
            return Result::invalid("link: row " + std::to_string(i) + " has a variance that is not finite and > 0");
    }
    return Result::success();
}

}  // namespace

Result check_link_options(const LinkOptions& o) {
    if (!(std::isfinite(o.radius) && o.radius > 0))
        return Result::invalid("link: radius must be a finite number > 0, got " + std::to_string(o.radius));
    if (!(std::isfinite(o.gate) && o.gate >= 0))
        return Result::invalid("link: gate must be a finite number >= 0, got " + std::to_string(o.gate));
    if (o.max_dark_frames < 0)
        return Result::invalid("link: max_dark_frames must be >= 0, got " + std::to_string(o.max_dark_frames));
    return Result::success();
}

Result link(const int64_t* frame, const double* x, const double* y, const double* var_x, const double* var_y,
            int64_t n, const LinkOptions& options, int64_t* event, int64_t* n_events, LinkEvents* events,
            const double* const* sum_of, int n_sums) {
    Result r = check_link_options(options);
    if (!r.ok()) return r;
    if (n < 0) return Result::invalid("link: n must be >= 0");
    if (n > 0 && (!frame || !x || !y)) return Result::invalid("link: null input");
    if (!n_events) return Result::invalid("link: null n_events");
    if (!event && !events) return Result::invalid("link: give event or events (or both)");
    if (n_sums < 0 || (n_sums > 0 && !sum_of)) return Result::invalid("link: bad sum_of / n_sums");
    for (int k = 0; k < n_sums && n > 0; ++k)
        if (!sum_of[k]) return Result::invalid("link: null column in sum_of");
    const bool weighted = var_x != nullptr;
    if ((var_x == nullptr) != (var_y == nullptr)) return Result::invalid("link: give both var_x and var_y, or neither");
    if (options.gate > 0 && !weighted) return Result::invalid("link: gate > 0 needs var_x and var_y");
    *n_events = 0;
    const double radius = options.radius, r2 = radius * radius, g2 = options.gate * options.gate;
    const bool gated = options.gate > 0;
    // An event stays open while (frame - last_frame) <= max_dark_frames + 1.
    const uint64_t window = uint64_t(options.max_dark_frames) + 1;
    try {
        if (events) {
            *events = LinkEvents();
            events->sums.assign(size_t(n_sums), {});
        }
        auto close = [&](const OpenEvent& ev) {
            if (!events) return;
            const size_t k = size_t(ev.id);
            events->first_frame[k] = ev.first_frame;
            events->last_frame[k] = ev.last_frame;
            events->count[k] = ev.count;
            events->x[k] = ev.mx;
            events->y[k] = ev.my;
            events->var_x[k] = 1.0 / ev.wx;
            events->var_y[k] = 1.0 / ev.wy;
        };
        OpenGrid grid(2.0 * radius);
        std::vector<OpenEvent>& slots = grid.slots();
        const double inv_size = grid.inv_size();
        // (frame, slot) of every event when it took a localization, in frame order: the events to close are
        // at its front (an entry whose event has taken a localization since is stale and skipped).
        struct Touch {
            int64_t frame, slot;
        };
        Buffer<Touch> touched;
        size_t touched_front = 0;
        Buffer<Candidate> cand;
        std::vector<int64_t> expired, fresh;
        std::vector<char> loc_taken, ev_taken;
        int64_t next_id = 0;
        for (int64_t a = 0; a < n;) {
            const int64_t f = frame[a];
            if (a > 0 && f < frame[a - 1])
                return Result::invalid("link: frames must be sorted (row " + std::to_string(a) + " has frame " +
                                       std::to_string(f) + " after " + std::to_string(frame[a - 1]) + ")");
            int64_t b = a + 1;
            while (b < n && frame[b] == f) ++b;
            r = check_rows(x, y, var_x, var_y, a, b);
            if (!r.ok()) return r;

            // Close the events that are too old. Most entries are stale (the event went on): the live ones are
            // gathered without a branch each.
            expired.resize(touched.size - touched_front);
            size_t n_expired = 0;
            for (; touched_front < touched.size &&
                   uint64_t(f) - uint64_t(touched.items[touched_front].frame) > window;
                 ++touched_front) {
                const Touch t = touched.items[touched_front];
                const OpenEvent& ev = slots[size_t(t.slot)];
                expired[n_expired] = t.slot;
                n_expired += ev.id >= 0 && ev.last_frame == t.frame;
            }
            for (size_t k = 0; k < n_expired; ++k) {
                close(slots[size_t(expired[k])]);
                grid.remove(expired[k]);
            }
            if (touched_front > 4096 && touched_front * 2 > touched.size) {
                std::copy(touched.begin() + touched_front, touched.end(), touched.begin());
                touched.size -= touched_front;
                touched_front = 0;
            }

            // Candidates: every (localization, open event) pair within the radius (and the gate). The
            // conditions are those of a sweep over x (an event within [x - radius, x + radius], then |dy|,
            // then the distance), so that rounding cannot make two implementations disagree.
            cand.size = 0;
            for (int64_t i = a; i < b; ++i) {
                const double xi = x[i], yi = y[i];
                auto consider = [&](int64_t s) {
                    const OpenEvent& ev = slots[size_t(s)];
                    const double ddx = xi - ev.mx, ddy = yi - ev.my;
                    if (!(ev.mx >= xi - radius && ev.mx <= xi + radius && ddy <= radius && ddy >= -radius)) return;
                    const double d2 = ddx * ddx + ddy * ddy;
                    if (!(d2 <= r2)) return;
                    double q = d2;
                    if (gated) {
                        // Mahalanobis distance of the difference (variances add: independent errors).
                        q = ddx * ddx / (var_x[i] + 1.0 / ev.wx) + ddy * ddy / (var_y[i] + 1.0 / ev.wy);
                        if (!(q <= g2)) return;
                    }
                    cand.push({q, i, ev.id, s});
                };
                auto visit = [&](uint64_t cell) {
                    for (int64_t s = grid.head(cell); s >= 0; s = slots[size_t(s)].next)
                        if (slots[size_t(s)].cell == cell) consider(s);
                };
                // The cells of [x - R, x + R] x [y - R, y + R], R a little above the radius: |fl(y - my)| <=
                // radius allows |y - my| up to radius * (1 + 2^-52), and the bounds themselves are rounded.
                const double rx = radius + (radius + std::fabs(xi)) * 1e-12;
                const double ry = radius + (radius + std::fabs(yi)) * 1e-12;
                const uint64_t c0 = coordinate(xi - rx, inv_size), c1 = coordinate(xi + rx, inv_size);
                const uint64_t r0 = coordinate(yi - ry, inv_size), r1 = coordinate(yi + ry, inv_size);
                if (c1 - c0 <= 1 && r1 - r0 <= 1) {
                    // Always the 2 x 2 cells (no unpredictable loop counts); most buckets are empty, and the
                    // others are gathered without a branch each.
                    const uint64_t cells[4] = {cell_key(c0, r0), cell_key(c0 + 1, r0), cell_key(c0, r0 + 1),
                                               cell_key(c0 + 1, r0 + 1)};
                    int64_t heads[4];
                    uint64_t head_cells[4];  // two cells may share a bucket: each walk takes its own cell's events
                    int found = 0;
                    for (int k = 0; k < 4; ++k) {
                        const int64_t h = grid.head(cells[k]);
                        heads[found] = h;
                        head_cells[found] = cells[k];
                        found += h >= 0;
                    }
                    for (int k = 0; k < found; ++k)
                        for (int64_t s = heads[k]; s >= 0; s = slots[size_t(s)].next)
                            if (slots[size_t(s)].cell == head_cells[k]) consider(s);
                } else if (c1 - c0 <= 2 && r1 - r0 <= 2) {
                    for (uint64_t row = r0; row <= r1; ++row)
                        for (uint64_t col = c0; col <= c1; ++col) visit(cell_key(col, row));
                } else {  // coordinates so large (or a radius so small) that rounding spans many cells
                    for (size_t s = 0; s < slots.size(); ++s)
                        if (slots[s].id >= 0) consider(int64_t(s));
                }
            }

            // Closest pairs first matters only where a localization or an event is in two candidates: a pair
            // whose localization and event are in no other candidate is taken whatever the order, and only
            // the others (few) are sorted and taken greedily.
            loc_taken.assign(size_t(b - a), 0);  // first: occurrences among the candidates (0, 1, 2 = more)
            if (ev_taken.size() < slots.size()) ev_taken.resize(slots.size(), 0);
            for (const Candidate& c : cand) {
                char& lt = loc_taken[size_t(c.loc - a)];
                char& et = ev_taken[size_t(c.slot)];
                lt = char(lt + (lt < 2));
                et = char(et + (et < 2));
            }
            auto take = [&](const Candidate& c) {
                OpenEvent& ev = slots[size_t(c.slot)];
                const double wx = weighted ? 1.0 / var_x[c.loc] : 1.0, wy = weighted ? 1.0 / var_y[c.loc] : 1.0;
                ev.wx += wx;
                ev.wy += wy;
                ev.swx += wx * x[c.loc];
                ev.swy += wy * y[c.loc];
                ev.mx = ev.swx / ev.wx;
                ev.my = ev.swy / ev.wy;
                ev.last_frame = f;
                ev.count += 1;
                if (event) event[c.loc] = ev.id;
                if (events)
                    for (int k = 0; k < n_sums; ++k) events->sums[size_t(k)][size_t(ev.id)] += sum_of[k][c.loc];
                grid.moved(c.slot);
                touched.push({f, c.slot});
            };
            size_t n_conflicting = 0;
            for (const Candidate& c : cand) {
                if (loc_taken[size_t(c.loc - a)] == 1 && ev_taken[size_t(c.slot)] == 1) {
                    take(c);  // loc_taken stays 1: taken
                    ev_taken[size_t(c.slot)] = 0;
                } else {
                    cand.items[n_conflicting++] = c;
                }
            }
            cand.size = n_conflicting;
            if (n_conflicting > 0) {
                std::sort(cand.begin(), cand.end());
                for (const Candidate& c : cand) loc_taken[size_t(c.loc - a)] = ev_taken[size_t(c.slot)] = 0;
                for (const Candidate& c : cand) {
                    char& lt = loc_taken[size_t(c.loc - a)];
                    char& et = ev_taken[size_t(c.slot)];
                    if (lt || et) continue;
                    lt = et = 1;
                    take(c);
                }
                for (const Candidate& c : cand) ev_taken[size_t(c.slot)] = 0;
            }

            // New events from the localizations left over, numbered in row order (events are numbered by
            // first row). Gathered without a branch per row (taken or not is random).
            fresh.resize(size_t(b - a));
            size_t n_fresh = 0;
            for (int64_t i = a; i < b; ++i) {
                fresh[n_fresh] = i;
                n_fresh += !loc_taken[size_t(i - a)];
            }
            if (events) grow_events(*events, size_t(next_id) + n_fresh, b, n);
            grid.reserve(n_fresh);
            for (size_t k = 0; k < n_fresh; ++k) {
                const int64_t i = fresh[k], id = next_id++;
                if (event) event[i] = id;
                if (events)
                    for (int c = 0; c < n_sums; ++c) events->sums[size_t(c)][size_t(id)] = 0.0 + sum_of[c][i];
                const double wx = weighted ? 1.0 / var_x[i] : 1.0, wy = weighted ? 1.0 / var_y[i] : 1.0;
                OpenEvent ev{};
                ev.mx = x[i];
                ev.my = y[i];
                ev.id = id;
                ev.first_frame = ev.last_frame = f;
                ev.count = 1;
                ev.wx = wx;
                ev.wy = wy;
                ev.swx = wx * x[i];
                ev.swy = wy * y[i];
                touched.push({f, grid.add(ev)});
            }
            a = b;
        }
        for (const OpenEvent& ev : slots)
            if (ev.id >= 0) close(ev);
        *n_events = next_id;
    } catch (const std::bad_alloc&) {
        return {Status::out_of_memory, "out of memory in link"};
    }
    return Result::success();
}

}  // namespace spotcore
