#include "spotcore/link.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#include <algorithm>
#include <atomic>
#include <cfloat>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "spotcore/fit.h"  // thread_count

namespace spotcore {
namespace {

// What the search reads of an open event: one cache line. The rest (id, frames, count) is in dense arrays
// by slot.
struct alignas(64) Mean {
    double mx, my;        // weighted mean position
    double wx, wy;        // sums of weights, per axis
    double swx, swy;      // sums of weight * position
    uint64_t cell;        // grid cell of (mx, my)
    int32_t next, prev;   // slots of the same bucket (-1: none)
};

struct Candidate {
    double q;         // squared distance, or the gate statistic
    int64_t loc, ev;  // ev: the event's id (ties are broken by ids, which do not depend on where events are kept)
    int32_t slot;
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
// At most one open event per 4 buckets: a localization looks into 4 buckets, and a bucket holding another
// cell's event costs a mispredicted branch (1 per 8 buckets: as fast, the table twice as large).
class OpenEvents {
  public:
    static constexpr size_t kMaxSlots = INT32_MAX;

    std::vector<Mean> mean;                               // by slot
    std::vector<int64_t> id, first_frame, last_frame, count;  // by slot; id < 0: a free slot

    static double inv_cell_size(double cell_size) { return std::min(1.0 / std::min(cell_size, DBL_MAX), DBL_MAX); }
    static uint64_t hash(uint64_t cell) { return cell * 0x9E3779B97F4A7C15ull; }

    explicit OpenEvents(double cell_size) : inv_size_(inv_cell_size(cell_size)) {
        rehash(9);
    }

    double inv_size() const { return inv_size_; }
    size_t open() const { return size_t(n_open_); }
    uint64_t cell_of(double x, double y) const { return cell_key(coordinate(x, inv_size_), coordinate(y, inv_size_)); }
    int32_t head(uint64_t cell) const { return head_[bucket(cell)]; }
    int32_t head_of_hash(uint64_t h) const { return head_[size_t(h >> (64 - bits_))]; }

    // Room for k more events (then add has no branch on whether a slot is free: that was a misprediction
    // per event, as closing and opening alternate). k + open() <= kMaxSlots.
    void reserve(size_t k) {
        while (free_.size() < k) {
            free_.push_back(int32_t(mean.size()));
            mean.push_back(Mean{});
            for (auto* v : {&id, &first_frame, &last_frame, &count}) v->push_back(-1);
        }
    }

    // After reserve: a new event of one localization.
    int32_t add(int64_t event_id, int64_t frame, double x, double y, double wx, double wy) {
        const int32_t s = free_.back();
        free_.pop_back();
        Mean& m = mean[size_t(s)];
        m.mx = x;
        m.my = y;
        m.wx = wx;
        m.wy = wy;
        m.swx = wx * x;
        m.swy = wy * y;
        id[size_t(s)] = event_id;
        first_frame[size_t(s)] = last_frame[size_t(s)] = frame;
        count[size_t(s)] = 1;
        place(s);
        if (++n_open_ * 4 > int64_t(head_.size())) rehash(bits_ + 1);
        return s;
    }

    // The event takes a localization.
    void extend(int32_t s, int64_t frame, double x, double y, double wx, double wy) {
        Mean& m = mean[size_t(s)];
        m.wx += wx;
        m.wy += wy;
        m.swx += wx * x;
        m.swy += wy * y;
        m.mx = m.swx / m.wx;
        m.my = m.swy / m.wy;
        last_frame[size_t(s)] = frame;
        count[size_t(s)] += 1;
        if (cell_of(m.mx, m.my) != m.cell) {
            unlink(s);
            place(s);
        }
    }

    void remove(int32_t s) {
        unlink(s);
        id[size_t(s)] = -1;
        free_.push_back(s);
        --n_open_;
    }

  private:
    size_t bucket(uint64_t cell) const { return size_t(hash(cell) >> (64 - bits_)); }
    void place(int32_t s) {  // into the bucket of its current mean
        Mean& m = mean[size_t(s)];
        m.cell = cell_of(m.mx, m.my);
        int32_t& h = head_[bucket(m.cell)];
        m.prev = -1;
        m.next = h;
        if (h >= 0) mean[size_t(h)].prev = s;
        h = s;
    }
    void unlink(int32_t s) {
        const Mean& m = mean[size_t(s)];
        if (m.prev >= 0)
            mean[size_t(m.prev)].next = m.next;
        else
            head_[bucket(m.cell)] = m.next;
        if (m.next >= 0) mean[size_t(m.next)].prev = m.prev;
    }
    void rehash(int bits) {
        bits_ = bits;
        head_.assign(size_t(1) << bits, -1);
        for (size_t s = 0; s < mean.size(); ++s)
            if (id[s] >= 0) place(int32_t(s));
    }

    double inv_size_;
    std::vector<int32_t> free_, head_;
    int bits_ = 0;
    int64_t n_open_ = 0;
};

// f(column) for every per-event column of e (8-byte elements).
template <class F>
void each_column(LinkEvents& e, F f) {
    for (auto* v : {&e.first_frame, &e.last_frame, &e.count}) f(*v);
    for (auto* v : {&e.x, &e.y, &e.sd_x, &e.sd_y}) f(*v);
    for (EventColumn<double>& v : e.sums) f(v);
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

inline bool good_sd(double u) { return u > 0.0 && u * u > 0.0 && u * u <= DBL_MAX; }

// Whether rows [a, b) are good: finite x and y, uncertainties (if any) > 0 with a square that is finite and > 0.
bool rows_good(const LinkRows& rows, int64_t a, int64_t b) {
    const double *x = rows.x, *y = rows.y, *sx = rows.sd_x, *sy = rows.sd_y;
    // Branch-free first: the row is searched for only when something is wrong. v - v is 0 unless v is NaN or
    // inf; an uncertainty u is good when u > 0 and 0 < u^2 <= DBL_MAX (all false for NaN).
    i64x2 bad = {0, 0};
    int64_t i = a;
    const f64x2 zero = {0.0, 0.0}, big = {DBL_MAX, DBL_MAX};
    for (; i + 2 <= b; i += 2) {
        const f64x2 vx = load2(x + i), vy = load2(y + i);
        bad |= (vx - vx != zero) | (vy - vy != zero);
        if (sx) {
            const f64x2 ux = load2(sx + i), uy = load2(sy + i), ux2 = ux * ux, uy2 = uy * uy;
            bad |= ~((ux > zero) & (ux2 > zero) & (ux2 <= big) & (uy > zero) & (uy2 > zero) & (uy2 <= big));
        }
    }
    bool any = (bad[0] | bad[1]) != 0;
    for (; i < b; ++i) {
        any |= !(x[i] - x[i] == 0.0) || !(y[i] - y[i] == 0.0);
        if (sx) any |= !(good_sd(sx[i]) && good_sd(sy[i]));
    }
    return !any;
}

// The first bad row of [a, b) as an error; success if none.
Result check_rows(const LinkRows& rows, int64_t a, int64_t b) {
    if (rows_good(rows, a, b)) return Result::success();
    const double *x = rows.x, *y = rows.y, *sx = rows.sd_x, *sy = rows.sd_y;
    for (int64_t i = a; i < b; ++i) {
        if (!std::isfinite(x[i]) || !std::isfinite(y[i]))
            return Result::invalid("link: row " + std::to_string(i) + " has an x or y that is NaN or infinite");
        if (sx && !(good_sd(sx[i]) && good_sd(sy[i])))
            return Result::invalid("link: row " + std::to_string(i) +
                                   " has an uncertainty that is not > 0 with a finite square > 0");
    }
    return Result::success();
}

// What the search needs of a row besides x and y, worked out ahead of the sweep: the hashes of the 2 x 2 grid
// cells its reach falls in (or that it spans more), its variances and weights.
struct RowReach {
    uint64_t hash[4];  // OpenEvents::hash of the cells (c0, r0), (c0 + 1, r0), (c0, r0 + 1), (c0 + 1, r0 + 1)
    uint32_t c0, r0;
    uint32_t wide;     // the reach spans more than 2 x 2 cells (the sweep then works the cells out itself)
    double vx, vy;     // sd^2 (gated), else 0
    double wx, wy;     // weights 1 / sd^2 (weighted), else 1
};

// The reach of [x - R, x + R] x [y - R, y + R], R a little above the radius: |fl(y - my)| <= radius allows
// |y - my| up to radius * (1 + 2^-52), and the bounds themselves are rounded.
struct Reach {
    uint64_t c0, c1, r0, r1;
};
inline Reach reach_of(double xi, double yi, double radius, double inv_size) {
    const double rx = radius + (radius + std::fabs(xi)) * 1e-12;
    const double ry = radius + (radius + std::fabs(yi)) * 1e-12;
    return {coordinate(xi - rx, inv_size), coordinate(xi + rx, inv_size), coordinate(yi - ry, inv_size),
            coordinate(yi + ry, inv_size)};
}

// The work that does not depend on the frame sweep's state, done ahead of it, by the second thread when there
// is one (else by the sweep, block by block; the values are the same):
// - the rows' reach, variances and weights (RowReach), a block of rows at a time into a ring, and whether each
//   block's rows are good (the sweep makes the error of a bad row, in row order);
// - the per-event sums, trailing the sweep (below);
// - faulting in the pages of the outputs just ahead of where the sweep writes (MADV_POPULATE_WRITE: the
//   kernel maps the pages without touching their contents, so the two threads never write the same memory;
//   a fresh 4 KiB page costs ~1.5 us here: up to a quarter of the sweep's time when it fell on the sweep).
struct Ahead {
    static constexpr int64_t kBlock = 1024, kRing = 16;  // rows a block; blocks in the ring (1.25 MiB)
    // Elements (8 bytes) faulted in at a time per column (16 pages), and how far ahead of the sweep.
    static constexpr size_t kStep = 8192, kAhead = 4 * kStep;

    const LinkRows& rows;
    const double radius, inv_size;
    const bool gated;
    std::vector<RowReach> ring;  // min(rows, kBlock * kRing)
    std::vector<char> block_good;
    std::atomic<int64_t> prepared{0}, consumed{0};  // rows prepared; rows the sweep is done with
    // Either thread prepares the next block and sums (the sweep too when the other is behind, e.g. not
    // scheduled on a busy machine): each under its flag, the other thread then does something else.
    std::atomic<bool> preparing{false}, summing{false};
    int64_t next_block = 0;  // under `preparing`

    std::vector<char*> columns;  // 8-byte elements, indexed by event
    size_t events_capacity = 0;
    char* labels = nullptr;      // 8-byte elements, indexed by row
    size_t label_rows = 0;
    std::atomic<int64_t> events_done{0}, rows_done{0};  // the sweep's progress (frames done)
    std::atomic<bool> started{false}, finished{false};

    // The per-event sums, by the second thread trailing the sweep (sums_ahead): over the rows of the frames
    // done, in row order (as the sweep would: an event takes one row a frame), from the rows' labels (the
    // caller's, or a ring of kLabelRing). A frame of more than kLabelRing / 2 rows the sweep sums itself.
    static constexpr int64_t kLabelRing = 65536;
    bool sums_ahead = false;  // set before `started`
    std::vector<double*> sum_columns;
    double* const* sum_to = nullptr;  // sum_columns.data()
    const double* const* sum_of = nullptr;
    int n_sums = 0;
    const int64_t* labels_read = nullptr;  // the caller's labels (mask ~0) or the ring (mask kLabelRing - 1)
    int64_t label_mask = ~int64_t(0);
    std::vector<int64_t> label_ring;
    std::atomic<int64_t> summed{0}, events_summed{0};  // rows summed; events whose first row is among them

    // Sums the rows of a batch of the frames done; false when there are none.
    bool sum_step() {
        const int64_t done = rows_done.load(std::memory_order_acquire);
        const int64_t from = summed.load(std::memory_order_acquire);  // after `done`: see the sweep's own sums
        if (from >= done) return false;
        const int64_t to = std::min(done, from + 4096);
        int64_t next_new = events_summed.load(std::memory_order_relaxed);
        for (int64_t i = from; i < to; ++i) {
            const int64_t e = labels_read[i & label_mask];
            if (e >= next_new) {  // its first row (events are numbered in row order)
                for (int k = 0; k < n_sums; ++k) sum_to[k][e] = 0.0 + sum_of[k][i];
                next_new = e + 1;
            } else {
                for (int k = 0; k < n_sums; ++k) sum_to[k][e] += sum_of[k][i];
            }
        }
        events_summed.store(next_new, std::memory_order_relaxed);
        summed.store(to, std::memory_order_release);
        return true;
    }

    Ahead(const LinkRows& r, double radius_, double inv_size_, bool gated_)
        : rows(r), radius(radius_), inv_size(inv_size_), gated(gated_), block_good(size_t(kRing)) {}

    void prepare_block(int64_t k) {
        const int64_t lo = k * kBlock, hi = std::min(rows.n, lo + kBlock);
        RowReach* out = ring.data() + (lo % (kBlock * kRing));
        block_good[size_t(k % kRing)] = rows_good(rows, lo, hi);
        const double *x = rows.x, *y = rows.y, *sx = rows.sd_x, *sy = rows.sd_y;
        for (int64_t i = lo; i < hi; ++i, ++out) {
            const Reach q = reach_of(x[i], y[i], radius, inv_size);
            out->wide = !(q.c1 - q.c0 <= 1 && q.r1 - q.r0 <= 1);
            out->c0 = uint32_t(q.c0);
            out->r0 = uint32_t(q.r0);
            out->hash[0] = OpenEvents::hash(cell_key(q.c0, q.r0));
            out->hash[1] = OpenEvents::hash(cell_key(q.c0 + 1, q.r0));
            out->hash[2] = OpenEvents::hash(cell_key(q.c0, q.r0 + 1));
            out->hash[3] = OpenEvents::hash(cell_key(q.c0 + 1, q.r0 + 1));
            out->vx = gated ? sx[i] * sx[i] : 0.0;
            out->vy = gated ? sy[i] * sy[i] : 0.0;
            out->wx = sx ? 1.0 / (sx[i] * sx[i]) : 1.0;
            out->wy = sy ? 1.0 / (sy[i] * sy[i]) : 1.0;
        }
    }

    // The next block, if the ring has room and the other thread is not at it.
    bool try_prepare() {
        bool idle = false;
        if (!preparing.compare_exchange_strong(idle, true, std::memory_order_acquire)) return false;
        const int64_t k = next_block;
        const bool room = k * kBlock < rows.n && (k - kRing + 1) * kBlock <= consumed.load(std::memory_order_acquire);
        if (room) {
            prepare_block(k);
            next_block = k + 1;
            prepared.store(std::min(rows.n, (k + 1) * kBlock), std::memory_order_release);
        }
        preparing.store(false, std::memory_order_release);
        return room;
    }
    // A batch of sums, if there is one and the other thread is not at it.
    bool try_sum() {
        bool idle = false;
        if (!summing.compare_exchange_strong(idle, true, std::memory_order_acquire)) return false;
        const bool did = sum_step();
        summing.store(false, std::memory_order_release);
        return did;
    }

    // The sweep, at row i (of block k = i / kBlock): rows before i are done with; block k is prepared (here if
    // the other thread has not). Returns its rows (the first is row k * kBlock) and whether they are good.
    const RowReach* enter(int64_t i, bool& good) {
        const int64_t k = i / kBlock;
        consumed.store(i, std::memory_order_release);
        while (prepared.load(std::memory_order_acquire) <= i)
            if (!try_prepare()) std::this_thread::yield();
        good = block_good[size_t(k % kRing)] != 0;
        return ring.data() + (k * kBlock) % (kBlock * kRing);
    }

    // Faults in elements [from, to) of p; false when the kernel cannot (then nothing more is tried).
    static bool populate(char* p, size_t from, size_t to) {
#if defined(__linux__)
        const uintptr_t page = 4096;
        const uintptr_t a = (uintptr_t(p) + from * 8) & ~(page - 1), b = uintptr_t(p) + to * 8;
        return b <= a || madvise(reinterpret_cast<void*>(a), b - a, kPopulateWrite) == 0;
#else
        (void)p, (void)from, (void)to;
        return false;
#endif
    }

    // The second thread, until the sweep is finished: the next block whenever the ring has room, else the sums,
    // else the pages.
    void run() {
        while (!started.load(std::memory_order_acquire))
            if (finished.load(std::memory_order_acquire)) return;  // the sweep failed before it started
            else std::this_thread::yield();
        size_t events_ready = 0, rows_ready = 0;
        bool faulting = true;
        for (;;) {
            if (finished.load(std::memory_order_acquire)) {
                while (sums_ahead && try_sum()) {
                }
                return;
            }
            if (try_prepare()) continue;
            if (sums_ahead && try_sum()) continue;
            const size_t events_want = std::min(events_capacity, size_t(events_done.load(std::memory_order_relaxed)) + kAhead);
            const size_t rows_want = std::min(label_rows, size_t(rows_done.load(std::memory_order_relaxed)) + kAhead);
            if (faulting && events_ready < events_want) {
                const size_t to = std::min(events_capacity, events_ready + kStep);
                for (char* c : columns) faulting = faulting && populate(c, events_ready, to);
                events_ready = to;
            } else if (faulting && rows_ready < rows_want) {
                const size_t to = std::min(label_rows, rows_ready + kStep);
                faulting = populate(labels, rows_ready, to);
                rows_ready = to;
            } else {
                std::this_thread::sleep_for(std::chrono::microseconds(20));  // the ring holds ~0.5 ms of sweep
            }
        }
    }
#if defined(__linux__)
    static constexpr int kPopulateWrite = 23;  // MADV_POPULATE_WRITE (Linux 5.14); older kernels: EINVAL
#endif
};

}  // namespace

Result check_link_options(const LinkOptions& o) {
    if (!(std::isfinite(o.radius) && o.radius > 0))
        return Result::invalid("link: radius must be a finite number > 0, got " + std::to_string(o.radius));
    if (!(std::isfinite(o.gate) && o.gate >= 0))
        return Result::invalid("link: gate must be a finite number >= 0, got " + std::to_string(o.gate));
    if (o.max_dark_frames < 0)
        return Result::invalid("link: max_dark_frames must be >= 0, got " + std::to_string(o.max_dark_frames));
    if (o.threads < 0) return Result::invalid("link: threads must be >= 0, got " + std::to_string(o.threads));
    return Result::success();
}

namespace {

// The frame sweep of link, after its checks of the arguments (the rows are checked here, frame by frame, with
// the blocks' verdicts from ahead).
Result sweep_frames(const LinkRows& rows, const LinkOptions& options, int64_t* event, int64_t* n_events,
                    LinkEvents* events, Ahead& ahead) {
    const int64_t n = rows.n;
    const int64_t* frame = rows.frame;
    const double *x = rows.x, *y = rows.y;
    const double* const* sum_of = rows.sum_of;
    const double radius = options.radius, r2 = radius * radius, g2 = options.gate * options.gate;
    const bool gated = options.gate > 0;
    // An event stays open while (frame - last_frame) <= max_dark_frames + 1.
    const uint64_t window = uint64_t(options.max_dark_frames) + 1;
    Result r;
    try {
        OpenEvents open(2.0 * radius);
        const double inv_size = open.inv_size();
        // The output columns (their capacity is fixed: they do not move).
        int64_t *out_first = nullptr, *out_last = nullptr, *out_count = nullptr;
        double *out_x = nullptr, *out_y = nullptr, *out_sd_x = nullptr, *out_sd_y = nullptr;
        std::vector<double*>& sums_out = ahead.sum_columns;  // outlives the sweep: the second thread may still sum
        sums_out.clear();
        if (events) {
            out_first = events->first_frame.data();
            out_last = events->last_frame.data();
            out_count = events->count.data();
            out_x = events->x.data();
            out_y = events->y.data();
            out_sd_x = events->sd_x.data();
            out_sd_y = events->sd_y.data();
            for (EventColumn<double>& v : events->sums) sums_out.push_back(v.data());
        }
        double* const* sum_to = sums_out.data();
        const int n_sums_out = int(sums_out.size());  // n_sums with events, else 0
        // Where the labels go: the caller's array, else the ring of the second thread's sums, else nowhere.
        int64_t* const labels = event ? event : ahead.sums_ahead ? ahead.label_ring.data() : nullptr;
        const int64_t label_mask = event ? ~int64_t(0) : Ahead::kLabelRing - 1;
        if (ahead.sums_ahead) {
            ahead.sum_to = sum_to;
            ahead.sum_of = sum_of;
            ahead.n_sums = n_sums_out;
            ahead.labels_read = labels;
            ahead.label_mask = label_mask;
        }
        ahead.started.store(true, std::memory_order_release);
        auto close = [&](int32_t s) {
            if (!events) return;
            const Mean& m = open.mean[size_t(s)];
            const size_t k = size_t(open.id[size_t(s)]);
            out_first[k] = open.first_frame[size_t(s)];
            out_last[k] = open.last_frame[size_t(s)];
            out_count[k] = open.count[size_t(s)];
            out_x[k] = m.mx;
            out_y[k] = m.my;
            out_sd_x[k] = std::sqrt(1.0 / m.wx);
            out_sd_y[k] = std::sqrt(1.0 / m.wy);
        };
        // (frame, slot) of every event when it took a localization, in frame order: the events to close are
        // at its front (an entry whose event has taken a localization since is stale and skipped).
        struct Touch {
            int64_t frame;
            int32_t slot;
        };
        Buffer<Touch> touched;
        size_t touched_front = 0;
        Buffer<Candidate> cand;
        std::vector<int32_t> expired;
        std::vector<int64_t> fresh;
        std::vector<char> loc_taken, ev_taken;
        std::vector<double> weights;  // wx, wy of the frame's rows
        int64_t next_id = 0;
        const RowReach* reach = nullptr;  // rows [block_start, block_end)
        int64_t block_start = 0, block_end = 0;
        bool block_ok = true;
        for (int64_t a = 0; a < n;) {
            const int64_t f = frame[a];
            if (a > 0 && f < frame[a - 1])
                return Result::invalid("link: frames must be sorted (row " + std::to_string(a) + " has frame " +
                                       std::to_string(f) + " after " + std::to_string(frame[a - 1]) + ")");
            int64_t b = a + 1;
            while (b < n && frame[b] == f) ++b;
            if (a >= block_end) {
                reach = ahead.enter(a, block_ok);
                block_start = a / Ahead::kBlock * Ahead::kBlock;
                block_end = std::min(n, block_start + Ahead::kBlock);
            }
            if (!block_ok) {  // a bad row in this block: in this frame?
                r = check_rows(rows, a, b);
                if (!r.ok()) return r;
            }

            // Close the events that are too old. Most entries are stale (the event went on): the live ones are
            // gathered without a branch each.
            expired.resize(touched.size - touched_front);
            size_t n_expired = 0;
            for (; touched_front < touched.size &&
                   uint64_t(f) - uint64_t(touched.items[touched_front].frame) > window;
                 ++touched_front) {
                const Touch t = touched.items[touched_front];
                expired[n_expired] = t.slot;
                n_expired += open.id[size_t(t.slot)] >= 0 && open.last_frame[size_t(t.slot)] == t.frame;
            }
            for (size_t k = 0; k < n_expired; ++k) {
                close(expired[k]);
                open.remove(expired[k]);
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
            weights.resize(2 * size_t(b - a));
            for (int64_t i = a; i < b; ++i) {
                if (i == block_end) {
                    reach = ahead.enter(i, block_ok);
                    block_start = i;
                    block_end = std::min(n, i + Ahead::kBlock);
                    if (!block_ok) {
                        r = check_rows(rows, a, b);
                        if (!r.ok()) return r;
                    }
                }
                const RowReach& ri = reach[i - block_start];
                weights[2 * size_t(i - a)] = ri.wx;
                weights[2 * size_t(i - a) + 1] = ri.wy;
                const double xi = x[i], yi = y[i];
                const double vx = ri.vx, vy = ri.vy;
                auto consider = [&](int32_t s) {
                    const Mean& m = open.mean[size_t(s)];
                    const double ddx = xi - m.mx, ddy = yi - m.my;
                    if (!(m.mx >= xi - radius && m.mx <= xi + radius && ddy <= radius && ddy >= -radius)) return;
                    const double d2 = ddx * ddx + ddy * ddy;
                    if (!(d2 <= r2)) return;
                    double q = d2;
                    if (gated) {
                        // Mahalanobis distance of the difference (variances add: independent errors).
                        q = ddx * ddx / (vx + 1.0 / m.wx) + ddy * ddy / (vy + 1.0 / m.wy);
                        if (!(q <= g2)) return;
                    }
                    cand.push({q, i, open.id[size_t(s)], s});
                };
                auto visit = [&](uint64_t cell) {
                    for (int32_t s = open.head(cell); s >= 0; s = open.mean[size_t(s)].next)
                        if (open.mean[size_t(s)].cell == cell) consider(s);
                };
                if (!ri.wide) {
                    // Always the 2 x 2 cells (no unpredictable loop counts); most buckets are empty, and the
                    // others are gathered without a branch each.
                    const uint64_t c0 = ri.c0, r0 = ri.r0;
                    const uint64_t cells[4] = {cell_key(c0, r0), cell_key(c0 + 1, r0), cell_key(c0, r0 + 1),
                                               cell_key(c0 + 1, r0 + 1)};
                    int32_t heads[4];
                    uint64_t head_cells[4];  // two cells may share a bucket: each walk takes its own cell's events
                    int found = 0;
                    for (int k = 0; k < 4; ++k) {
                        const int32_t h = open.head_of_hash(ri.hash[k]);
                        heads[found] = h;
                        head_cells[found] = cells[k];
                        found += h >= 0;
                    }
                    for (int k = 0; k < found; ++k)
                        for (int32_t s = heads[k]; s >= 0; s = open.mean[size_t(s)].next)
                            if (open.mean[size_t(s)].cell == head_cells[k]) consider(s);
                } else if (const Reach q = reach_of(xi, yi, radius, inv_size); q.c1 - q.c0 <= 2 && q.r1 - q.r0 <= 2) {
                    for (uint64_t row = q.r0; row <= q.r1; ++row)
                        for (uint64_t col = q.c0; col <= q.c1; ++col) visit(cell_key(col, row));
                } else {  // coordinates so large (or a radius so small) that rounding spans many cells
                    for (size_t s = 0; s < open.mean.size(); ++s)
                        if (open.id[s] >= 0) consider(int32_t(s));
                }
            }

            // The frame's sums: by the second thread, once the frame is done (its labels in the ring when the ring
            // has room: rows summed up to b - kLabelRing at least), or here (a frame too large for the ring).
            bool sum_here = !ahead.sums_ahead;
            if (ahead.sums_ahead && !event) {
                sum_here = b - a > Ahead::kLabelRing / 2;
                const int64_t need = sum_here ? a : b - Ahead::kLabelRing;
                while (ahead.summed.load(std::memory_order_acquire) < need)
                    if (!ahead.try_sum()) std::this_thread::yield();
            }
            const int sums_now = sum_here ? n_sums_out : 0;

            // Closest pairs first matters only where a localization or an event is in two candidates: a pair
            // whose localization and event are in no other candidate is taken whatever the order, and only
            // the others (few) are sorted and taken greedily.
            loc_taken.assign(size_t(b - a), 0);  // first: occurrences among the candidates (0, 1, 2 = more)
            if (ev_taken.size() < open.mean.size()) ev_taken.resize(open.mean.size(), 0);
            for (const Candidate& c : cand) {
                char& lt = loc_taken[size_t(c.loc - a)];
                char& et = ev_taken[size_t(c.slot)];
                lt = char(lt + (lt < 2));
                et = char(et + (et < 2));
            }
            auto take = [&](const Candidate& c) {
                const int64_t i = c.loc;
                open.extend(c.slot, f, x[i], y[i], weights[2 * size_t(i - a)], weights[2 * size_t(i - a) + 1]);
                if (labels) labels[i & label_mask] = c.ev;
                for (int k = 0; k < sums_now; ++k) sum_to[k][c.ev] += sum_of[k][i];
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
            if (n_fresh > OpenEvents::kMaxSlots - open.open())
                return Result::invalid("link: more than 2^31 - 1 events open at once (frame " + std::to_string(f) + ")");
            open.reserve(n_fresh);
            for (size_t k = 0; k < n_fresh; ++k) {
                const int64_t i = fresh[k], id = next_id++;
                if (labels) labels[i & label_mask] = id;
                for (int c = 0; c < sums_now; ++c) sum_to[c][id] = 0.0 + sum_of[c][i];
                touched.push({f, open.add(id, f, x[i], y[i], weights[2 * size_t(i - a)], weights[2 * size_t(i - a) + 1])});
            }
            a = b;
            if (ahead.sums_ahead && sum_here) {  // the second thread is waiting for this frame: it is summed
                ahead.events_summed.store(next_id, std::memory_order_relaxed);
                ahead.summed.store(b, std::memory_order_release);
            }
            ahead.events_done.store(next_id, std::memory_order_relaxed);
            ahead.rows_done.store(b, std::memory_order_release);
        }
        for (size_t s = 0; s < open.mean.size(); ++s)
            if (open.id[s] >= 0) close(int32_t(s));
        *n_events = next_id;
    } catch (const std::bad_alloc&) {
        return {Status::out_of_memory, "out of memory in link"};
    }
    return Result::success();
}

}  // namespace

Result link(const LinkRows& rows, const LinkOptions& options, int64_t* event, int64_t* n_events,
            LinkEvents* events) {
    Result r = check_link_options(options);
    if (!r.ok()) return r;
    const int64_t n = rows.n;
    const int64_t* frame = rows.frame;
    const double *x = rows.x, *y = rows.y, *sd_x = rows.sd_x, *sd_y = rows.sd_y;
    const double* const* sum_of = rows.sum_of;
    const int n_sums = rows.n_sums;
    if (n < 0) return Result::invalid("link: n must be >= 0");
    if (n > 0 && (!frame || !x || !y)) return Result::invalid("link: null input");
    if (!n_events) return Result::invalid("link: null n_events");
    if (!event && !events) return Result::invalid("link: give event or events (or both)");
    if (n_sums < 0 || (n_sums > 0 && !sum_of)) return Result::invalid("link: bad sum_of / n_sums");
    for (int k = 0; k < n_sums && n > 0; ++k)
        if (!sum_of[k]) return Result::invalid("link: null column in sum_of");
    const bool weighted = sd_x != nullptr;
    if ((sd_x == nullptr) != (sd_y == nullptr)) return Result::invalid("link: give both sd_x and sd_y, or neither");
    if (options.gate > 0 && !weighted) return Result::invalid("link: gate > 0 needs sd_x and sd_y");
    *n_events = 0;
    // Below this many rows a second thread costs more than it saves.
    constexpr int64_t kHelperRows = 100000;
    Ahead ahead(rows, options.radius, OpenEvents::inv_cell_size(2.0 * options.radius), options.gate > 0);
    try {
        ahead.ring.resize(size_t(std::min<int64_t>(n, Ahead::kBlock * Ahead::kRing)));
        if (n >= kHelperRows && events && n_sums > 0 && !event) ahead.label_ring.resize(size_t(Ahead::kLabelRing));
        // The outputs at their final capacity (rows: at most as many events), so that they never move while
        // the second thread faults in their pages; resize leaves them untouched.
        if (events) {
            *events = LinkEvents();
            events->sums.assign(size_t(n_sums), {});
            each_column(*events, [&](auto& v) {
                v.resize(size_t(n));
                ahead.columns.push_back(reinterpret_cast<char*>(v.data()));
            });
            ahead.events_capacity = size_t(n);
        }
    } catch (const std::bad_alloc&) {
        if (events) *events = LinkEvents();
        return {Status::out_of_memory, "out of memory in link"};
    }
    ahead.labels = reinterpret_cast<char*>(event);
    ahead.label_rows = event ? size_t(n) : 0;

    const int threads = n >= kHelperRows ? std::min(2, thread_count(options.threads)) : 1;
    if (threads < 2) {
        r = sweep_frames(rows, options, event, n_events, events, ahead);
    } else {
#pragma omp parallel num_threads(2)
        {
#ifdef _OPENMP
            const bool sweeper = omp_get_thread_num() == 0;
#else
            const bool sweeper = true;
#endif
            if (sweeper) {
#ifdef _OPENMP
                const bool second = omp_get_num_threads() > 1;  // else (nested, a thread limit) no second thread
                ahead.sums_ahead = second && n_sums > 0 && events && (event || !ahead.label_ring.empty());
#endif
                r = sweep_frames(rows, options, event, n_events, events, ahead);
                ahead.finished.store(true, std::memory_order_release);
            } else {
                ahead.run();
            }
        }
    }
    if (!r.ok()) {
        *n_events = 0;
        if (events) *events = LinkEvents();
        return r;
    }
    if (events) each_column(*events, [m = size_t(*n_events)](auto& v) { v.resize(m); });
    return r;
}

}  // namespace spotcore
