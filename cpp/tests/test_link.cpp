// C++ test of link (spotcore/link.h): the hashed-grid search against a brute-force reference of the same rule
// (every open event scanned), the per-event outputs against sums over the labels, bad input.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "spotcore/spotcore.h"

#include "check.h"

using namespace spotcore;

struct Table {
    std::vector<int64_t> f;
    std::vector<double> x, y, sd, photons;
    LinkRows rows(bool weighted) const {
        LinkRows r;
        r.frame = f.data();
        r.x = x.data();
        r.y = y.data();
        r.sd_x = weighted ? sd.data() : nullptr;
        r.sd_y = weighted ? sd.data() : nullptr;
        r.n = int64_t(f.size());
        return r;
    }
};

// The rule of link, by scanning every open event for every localization.
// Equal elements (LinkEvents' columns have their own allocator).
template <typename A, typename B>
static bool same(const A& a, const B& b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin());
}

static std::vector<int64_t> link_reference(const Table& t, bool weighted, const LinkOptions& o) {
    struct Ev {
        double w, sx, sy, mx, my;
        int64_t last, id;
    };
    std::vector<Ev> evs;
    std::vector<int64_t> out(t.f.size());
    size_t a = 0;
    int64_t next = 0;
    while (a < t.f.size()) {
        size_t b = a;
        while (b < t.f.size() && t.f[b] == t.f[a]) ++b;
        struct C {
            double q;
            size_t i, e;
        };
        std::vector<C> cs;
        for (size_t i = a; i < b; ++i)
            for (size_t e = 0; e < evs.size(); ++e) {
                if (t.f[a] - evs[e].last > o.max_dark_frames + 1) continue;
                // The conditions of a sweep over x: the event within [x - r, x + r], then |dy|, then the distance.
                const double mx = evs[e].mx, dx = t.x[i] - mx, dy = t.y[i] - evs[e].my;
                if (!(mx >= t.x[i] - o.radius && mx <= t.x[i] + o.radius && dy <= o.radius && dy >= -o.radius))
                    continue;
                const double d2 = dx * dx + dy * dy;
                if (!(d2 <= o.radius * o.radius)) continue;
                double q = d2;
                if (o.gate > 0) {
                    const double v = t.sd[i] * t.sd[i];
                    q = dx * dx / (v + 1.0 / evs[e].w) + dy * dy / (v + 1.0 / evs[e].w);
                    if (!(q <= o.gate * o.gate)) continue;
                }
                cs.push_back({q, i, e});
            }
        std::sort(cs.begin(), cs.end(), [&](const C& p, const C& q) {
            if (p.q != q.q) return p.q < q.q;
            if (p.i != q.i) return p.i < q.i;
            return evs[p.e].id < evs[q.e].id;
        });
        std::vector<char> lt(b - a, 0), et(evs.size(), 0);
        for (const C& c : cs) {
            if (lt[c.i - a] || et[c.e]) continue;
            lt[c.i - a] = et[c.e] = 1;
            const double w = weighted ? 1.0 / (t.sd[c.i] * t.sd[c.i]) : 1.0;
            Ev& ev = evs[c.e];
            ev.w += w;
            ev.sx += w * t.x[c.i];
            ev.sy += w * t.y[c.i];
            ev.mx = ev.sx / ev.w;
            ev.my = ev.sy / ev.w;
            ev.last = t.f[a];
            out[c.i] = ev.id;
        }
        for (size_t i = a; i < b; ++i)
            if (!lt[i - a]) {
                const double w = weighted ? 1.0 / (t.sd[i] * t.sd[i]) : 1.0;
                evs.push_back({w, w * t.x[i], w * t.y[i], t.x[i], t.y[i], t.f[a], next});
                out[i] = next++;
            }
        a = b;
    }
    return out;
}

// link's events and labels == the reference's labels, and the per-event outputs == sums over the labels.
static void check_against_reference(const Table& t, bool weighted, const LinkOptions& o) {
    const std::vector<int64_t> want = link_reference(t, weighted, o);
    const int64_t n = int64_t(t.f.size());
    LinkRows rows = t.rows(weighted);
    const double* sums[2] = {t.photons.data(), t.x.data()};
    rows.sum_of = sums;
    rows.n_sums = 2;
    std::vector<int64_t> got(size_t(n), -7);
    int64_t n_got = -1;
    LinkEvents ev;
    CHECK(link(rows, o, got.data(), &n_got, &ev).ok());
    CHECK(got == want);
    const int64_t m = n ? *std::max_element(want.begin(), want.end()) + 1 : 0;
    CHECK(n_got == m);
    // The same events without the labels, and the same labels without the events.
    LinkEvents ev2;
    int64_t n2 = -1;
    CHECK(link(rows, o, nullptr, &n2, &ev2).ok() && n2 == m && ev2.x == ev.x && ev2.sums == ev.sums);
    std::vector<int64_t> got3(size_t(n), -7);
    CHECK(link(rows, o, got3.data(), &n2, nullptr).ok() && got3 == want);
    if (!(ev.count.size() == size_t(m) && ev.sums.size() == 2 && ev.sums[0].size() == size_t(m))) {
        CHECK(false);
        return;
    }
    // Per-event sums in row order, as link accumulates them (then the means are bit-identical).
    const size_t events_n = size_t(m);
    std::vector<int64_t> first(events_n, -1), last(events_n), count(events_n, 0);
    std::vector<double> w(events_n, 0.0), sx(events_n, 0.0), sy(events_n, 0.0), mx(events_n), my(events_n);
    std::vector<double> photons(events_n, 0.0), xsum(events_n, 0.0);
    for (int64_t i = 0; i < n; ++i) {
        const size_t e = size_t(want[size_t(i)]);
        const double wi = weighted ? 1.0 / (t.sd[size_t(i)] * t.sd[size_t(i)]) : 1.0;
        if (count[e] == 0) first[e] = t.f[size_t(i)];
        last[e] = t.f[size_t(i)];
        count[e] += 1;
        w[e] += wi;
        sx[e] += wi * t.x[size_t(i)];
        sy[e] += wi * t.y[size_t(i)];
        mx[e] = count[e] == 1 ? t.x[size_t(i)] : sx[e] / w[e];
        my[e] = count[e] == 1 ? t.y[size_t(i)] : sy[e] / w[e];
        photons[e] += t.photons[size_t(i)];
        xsum[e] += t.x[size_t(i)];
    }
    CHECK(same(ev.first_frame, first) && same(ev.last_frame, last) && same(ev.count, count));
    CHECK(same(ev.x, mx) && same(ev.y, my));
    CHECK(same(ev.sums[0], photons) && same(ev.sums[1], xsum));
    bool sd_ok = true;
    for (size_t e = 0; e < size_t(m); ++e) sd_ok = sd_ok && ev.sd_x[e] == std::sqrt(1.0 / w[e]) && ev.sd_y[e] == std::sqrt(1.0 / w[e]);
    CHECK(sd_ok);
}

static void test_small_example() {
    // Two emitters 1 px apart, three frames, then a 2-frame gap.
    Table t;
    t.f = {0, 0, 1, 1, 2, 5};
    t.x = {10.0, 11.0, 10.02, 11.01, 9.99, 10.0};
    t.y = {5.0, 5.0, 5.01, 4.99, 5.0, 5.0};
    std::vector<int64_t> ev(t.f.size());
    int64_t n_ev = 0;
    LinkOptions o;
    o.radius = 0.3;
    o.max_dark_frames = 1;
    CHECK(link(t.rows(false), o, ev.data(), &n_ev).ok());
    CHECK(n_ev == 3);
    CHECK(ev[0] == 0 && ev[1] == 1 && ev[2] == 0 && ev[3] == 1 && ev[4] == 0 && ev[5] == 2);
    o.max_dark_frames = 2;  // frames 3 and 4 missed: event 0 continues in frame 5
    CHECK(link(t.rows(false), o, ev.data(), &n_ev).ok() && n_ev == 2 && ev[5] == 0);
    // Two localizations at the same distance from one event: the lower row takes it.
    Table tie;
    tie.f = {0, 1, 1};
    tie.x = {1.0, 0.9, 1.1};
    tie.y = {1.0, 1.0, 1.0};
    CHECK(link(tie.rows(false), o, ev.data(), &n_ev).ok() && n_ev == 2 && ev[1] == 0 && ev[2] == 1);
}

static void test_bad_input() {
    Table t;
    t.f = {1, 0};
    t.x = {0, 0};
    t.y = {0, 0};
    t.sd = {0.1, 0.1};
    std::vector<int64_t> ev(2);
    int64_t n_ev = 0;
    LinkOptions o;
    CHECK(link(t.rows(false), o, ev.data(), &n_ev).status == Status::invalid_argument);  // unsorted
    t.f = {0, 1};
    CHECK(link(t.rows(true), o, ev.data(), &n_ev).ok() && n_ev == 1);
    for (double bad : {std::nan(""), HUGE_VAL, -HUGE_VAL}) {
        t.x[1] = bad;
        CHECK(link(t.rows(false), o, ev.data(), &n_ev).status == Status::invalid_argument);
        t.x[1] = 0;
        t.y[0] = bad;
        CHECK(link(t.rows(false), o, ev.data(), &n_ev).status == Status::invalid_argument);
        t.y[0] = 0;
    }
    // Uncertainties: > 0 with a square that is finite and > 0.
    for (double bad : {0.0, -0.1, std::nan(""), HUGE_VAL, 1e200, 1e-170}) {
        t.sd[1] = bad;
        CHECK(link(t.rows(true), o, ev.data(), &n_ev).status == Status::invalid_argument);
    }
    t.sd[1] = 0.1;
    LinkRows half = t.rows(true);
    half.sd_y = nullptr;
    CHECK(link(half, o, ev.data(), &n_ev).status == Status::invalid_argument);
    LinkOptions bad = o;
    bad.radius = 0;
    CHECK(link(t.rows(false), bad, ev.data(), &n_ev).status == Status::invalid_argument);
    bad = o;
    bad.radius = std::nan("");
    CHECK(link(t.rows(false), bad, ev.data(), &n_ev).status == Status::invalid_argument);
    bad = o;
    bad.gate = 3;  // needs uncertainties
    CHECK(link(t.rows(false), bad, ev.data(), &n_ev).status == Status::invalid_argument);
    CHECK(link(t.rows(true), bad, ev.data(), &n_ev).ok());
    bad = o;
    bad.max_dark_frames = -1;
    CHECK(link(t.rows(false), bad, ev.data(), &n_ev).status == Status::invalid_argument);
    bad = o;
    bad.threads = -1;
    CHECK(link(t.rows(false), bad, ev.data(), &n_ev).status == Status::invalid_argument);
    CHECK(link(t.rows(false), o, nullptr, &n_ev, nullptr).status == Status::invalid_argument);
    CHECK(link(t.rows(false), o, ev.data(), nullptr).status == Status::invalid_argument);
    LinkRows sums = t.rows(false);
    sums.n_sums = 1;  // without columns
    LinkEvents events;
    CHECK(link(sums, o, ev.data(), &n_ev, &events).status == Status::invalid_argument);
    LinkRows none = t.rows(false);
    none.n = 0;
    CHECK(link(none, o, ev.data(), &n_ev, &events).ok() && n_ev == 0 && events.x.empty());
    none.n = -1;
    CHECK(link(none, o, ev.data(), &n_ev).status == Status::invalid_argument);
}

// Random scenes, dense enough that localizations compete for events.
static Table random_scene(uint64_t seed, int frames, int per_frame, double width, double offset) {
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<double> U(0.0, width), V(0.02, 0.15), P(100.0, 3000.0);
    Table t;
    for (int fr = 0; fr < frames; ++fr)
        for (int k = 0; k < per_frame; ++k) {
            t.f.push_back(fr - 50 + (fr % 7 == 3 ? 2 : 0));
            t.x.push_back(offset + U(rng) - width / 2);
            t.y.push_back(offset + U(rng));
            t.sd.push_back(V(rng));
            t.photons.push_back(P(rng));
        }
    std::sort(t.f.begin(), t.f.end());
    return t;
}

static void test_against_reference() {
    for (double gate : {0.0, 4.0})
        for (int dark : {0, 2})
            for (bool weighted : {false, true}) {
                if (gate > 0 && !weighted) continue;
                LinkOptions o;
                o.radius = 0.45;
                o.gate = gate;
                o.max_dark_frames = dark;
                check_against_reference(random_scene(7, 300, 12, 8.0, 0.0), weighted, o);
                // Many events per frame (the hash table grows), far from the origin.
                check_against_reference(random_scene(8, 20, 900, 40.0, 5e4), weighted, o);
            }
    // Localizations on top of each other: equal distances, ties broken by row and event.
    Table same;
    for (int fr = 0; fr < 40; ++fr)
        for (int k = 0; k < 5; ++k) {
            same.f.push_back(fr);
            same.x.push_back(3.0 + 0.1 * (k % 2));
            same.y.push_back(4.0);
            same.sd.push_back(0.05);
            same.photons.push_back(k);
        }
    LinkOptions o;
    o.radius = 0.3;
    check_against_reference(same, false, o);
    check_against_reference(same, true, o);
}

// Coordinates and radii at the limits of the grid: clamped cells, bounds rounded over many cells.
static void test_extreme_coordinates() {
    LinkOptions o;
    Table t;
    const double xs[] = {1e300, -1e300, 1e15, 1e15 + 0.125, 3e9, 3e9, 0.0, -0.0, 5e-324, 1e-300};
    for (int fr = 0; fr < 6; ++fr)
        for (double v : xs) {
            t.f.push_back(fr);
            t.x.push_back(v);
            t.y.push_back(fr % 2 ? v : -v);
            t.sd.push_back(0.1);
            t.photons.push_back(1.0);
        }
    for (double radius : {1e-300, 1e-9, 0.2, 1.0, 1e9, 1e300, 1.7e308}) {
        o.radius = radius;
        check_against_reference(t, false, o);
        check_against_reference(t, true, o);
    }
    // radius + |x| overflows: every open event is scanned.
    Table huge;
    for (int fr = 0; fr < 4; ++fr)
        for (double v : {1e308, -1e308, 0.0, 5.0}) {
            huge.f.push_back(fr);
            huge.x.push_back(v);
            huge.y.push_back(v);
            huge.sd.push_back(1.0);
            huge.photons.push_back(1.0);
        }
    o.radius = 1e308;
    check_against_reference(huge, false, o);
    // Localizations half-way between cell edges (cells are 2 radius wide), events one radius away: the
    // search bounds (a little over the radius, by more than the cells' rounding far from 0) span 3 cells.
    Table edge;
    const double c = 1000.00005, r = 5e-5;
    const double pos[][2] = {{c, c}, {c - r, c}, {c + r, c}, {c, c - r}, {c, c + r}};
    for (int fr = 0; fr < 5; ++fr)
        for (int k = 0; k < 5; ++k) {
            edge.f.push_back(fr);
            edge.x.push_back(pos[(k + fr) % 5][0]);
            edge.y.push_back(pos[(k + fr) % 5][1]);
            edge.sd.push_back(0.1);
            edge.photons.push_back(1.0);
        }
    o.radius = r;
    check_against_reference(edge, false, o);
    check_against_reference(edge, true, o);
}

// A table large enough for the second thread (it faults in the output pages) and for columns of their own
// pages: the same events and labels with 1 and 2 threads, and with the labels alone; a bad row far in is
// reported as with one thread, and the outputs are left empty.
static void test_threads() {
    Table t = random_scene(11, 300, 1000, 150.0, 0.0);
    const int64_t n = int64_t(t.f.size());
    LinkRows rows = t.rows(true);
    const double* sums[1] = {t.photons.data()};
    rows.sum_of = sums;
    rows.n_sums = 1;
    LinkOptions o;
    o.radius = 0.3;
    o.gate = 4.0;
    std::vector<int64_t> label1(size_t(n), -7), label2(size_t(n), -7), label3(size_t(n), -7);
    LinkEvents ev1, ev2;
    int64_t m1 = -1, m2 = -1, m3 = -1;
    o.threads = 1;
    CHECK(link(rows, o, label1.data(), &m1, &ev1).ok());
    o.threads = 2;
    CHECK(link(rows, o, label2.data(), &m2, &ev2).ok());
    CHECK(link(rows, o, label3.data(), &m3, nullptr).ok());
    CHECK(m1 > 100000 && m1 == m2 && m2 == m3 && label1 == label2 && label2 == label3);
    CHECK(ev1.first_frame == ev2.first_frame && ev1.last_frame == ev2.last_frame && ev1.count == ev2.count);
    CHECK(ev1.x == ev2.x && ev1.y == ev2.y && ev1.sd_x == ev2.sd_x && ev1.sd_y == ev2.sd_y && ev1.sums == ev2.sums);
    CHECK(ev1.x.size() == size_t(m1) && ev1.sums[0].size() == size_t(m1));
    // Events without labels (the second thread sums from a ring of labels).
    LinkEvents ev3;
    CHECK(link(rows, o, nullptr, &m3, &ev3).ok() && m3 == m1 && ev3.sums == ev1.sums && ev3.x == ev1.x);
    // Frames larger than the ring of rows worked out ahead (16384 rows).
    Table wide = random_scene(12, 3, 40000, 400.0, 0.0);
    std::vector<int64_t> wide1(wide.f.size()), wide2(wide.f.size());
    o.threads = 1;
    CHECK(link(wide.rows(true), o, wide1.data(), &m1, nullptr).ok());
    o.threads = 2;
    CHECK(link(wide.rows(true), o, wide2.data(), &m2, nullptr).ok() && m1 == m2 && wide1 == wide2);
    CHECK(m1 > 40000 && m1 < 120000);
    LinkRows wide_rows = wide.rows(true);
    const double* wide_sums[2] = {wide.photons.data(), wide.x.data()};
    wide_rows.sum_of = wide_sums;
    wide_rows.n_sums = 2;
    LinkEvents wide_ev1, wide_ev2;  // frames too large for the ring of labels: the sweep sums them
    o.threads = 1;
    CHECK(link(wide_rows, o, nullptr, &m1, &wide_ev1).ok());
    o.threads = 2;
    CHECK(link(wide_rows, o, nullptr, &m2, &wide_ev2).ok() && m1 == m2 && wide_ev1.sums == wide_ev2.sums);
    // Small and large frames mixed.
    Table mixed = random_scene(13, 200, 700, 150.0, 0.0);
    for (int k = 0; k < 50000; ++k) {
        mixed.f.push_back(1000);
        mixed.x.push_back(0.003 * k);
        mixed.y.push_back(0.5 + 0.001 * (k % 7));
        mixed.sd.push_back(0.05);
        mixed.photons.push_back(k);
    }
    for (int fr = 1001; fr < 1100; ++fr)
        for (int k = 0; k < 700; ++k) {
            mixed.f.push_back(fr);
            mixed.x.push_back(0.214 * k + 0.001 * fr);
            mixed.y.push_back(0.5 + 0.1 * (fr % 3));
            mixed.sd.push_back(0.05);
            mixed.photons.push_back(fr);
        }
    LinkRows mixed_rows = mixed.rows(true);
    mixed_rows.sum_of = wide_sums;
    mixed_rows.n_sums = 1;
    wide_sums[0] = mixed.photons.data();
    o.threads = 1;
    CHECK(link(mixed_rows, o, nullptr, &m1, &wide_ev1).ok());
    o.threads = 2;
    CHECK(link(mixed_rows, o, nullptr, &m2, &wide_ev2).ok() && m1 == m2 && wide_ev1.sums == wide_ev2.sums);
    CHECK(wide_ev1.count == wide_ev2.count && wide_ev1.x == wide_ev2.x);
    std::vector<double> bad_x = t.x;
    bad_x[size_t(n) - 5] = std::nan("");
    rows.x = bad_x.data();
    for (int threads : {1, 2}) {
        o.threads = threads;
        const Result r = link(rows, o, label1.data(), &m1, &ev1);
        CHECK(r.status == Status::invalid_argument && r.message.find(std::to_string(n - 5)) != std::string::npos);
        CHECK(m1 == 0 && ev1.x.empty() && ev1.sums.empty());
    }
    // A bad uncertainty in a middle block (before the bad x): that row is named, with either thread count.
    std::vector<double> bad_sd = t.sd;
    bad_sd[150001] = 0.0;
    rows.sd_x = bad_sd.data();
    for (int threads : {1, 2}) {
        o.threads = threads;
        const Result r = link(rows, o, label1.data(), &m1, &ev1);
        CHECK(r.status == Status::invalid_argument && r.message.find("row 150001 has an uncertainty") != std::string::npos);
    }
}

int main() {
    test_small_example();
    test_bad_input();
    test_against_reference();
    test_extreme_coordinates();
    test_threads();
    if (failures) {
        std::fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    std::puts("spotcore link tests passed");
    return 0;
}
