#include "spotcore/link.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <string>
#include <vector>

namespace spotcore {
namespace {

struct OpenEvent {
    double wx, wy, swx, swy;  // sums of weights and of weight * position, per axis
    double mx, my;            // weighted mean position
    int64_t last_frame, id, count, first_frame;
};

struct Candidate {
    double q;  // squared distance, or the gate statistic
    int64_t loc, ev;  // ev: the event's id (ties are broken by ids, which do not depend on the order of `open`)
    int64_t index;    // of the event in `open`
    bool operator<(const Candidate& o) const {
        if (q != o.q) return q < o.q;
        if (loc != o.loc) return loc < o.loc;
        return ev < o.ev;
    }
};


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
            int64_t n, const LinkOptions& options, int64_t* event, int64_t* n_events, LinkEvents* events) {
    Result r = check_link_options(options);
    if (!r.ok()) return r;
    if (n < 0) return Result::invalid("link: n must be >= 0");
    if (n > 0 && (!frame || !x || !y || !event)) return Result::invalid("link: null input or output");
    if (!n_events) return Result::invalid("link: null n_events");
    const bool weighted = var_x != nullptr;
    if ((var_x == nullptr) != (var_y == nullptr)) return Result::invalid("link: give both var_x and var_y, or neither");
    if (options.gate > 0 && !weighted) return Result::invalid("link: gate > 0 needs var_x and var_y");
    for (int64_t i = 0; i < n; ++i) {
        if (i > 0 && frame[i] < frame[i - 1])
            return Result::invalid("link: frames must be sorted (row " + std::to_string(i) + " has frame " +
                                   std::to_string(frame[i]) + " after " + std::to_string(frame[i - 1]) + ")");
        if (!std::isfinite(x[i]) || !std::isfinite(y[i]))
            return Result::invalid("link: row " + std::to_string(i) + " has a non-finite x or y");
        if (weighted && !(std::isfinite(var_x[i]) && var_x[i] > 0 && std::isfinite(var_y[i]) && var_y[i] > 0))
            return Result::invalid("link: row " + std::to_string(i) + " has a variance that is not finite and > 0");
    }
    *n_events = 0;
    const double r2 = options.radius * options.radius, g2 = options.gate * options.gate;
    const bool gated = options.gate > 0;
    // An event stays open while (frame - last_frame) <= max_dark_frames + 1.
    const uint64_t window = uint64_t(options.max_dark_frames) + 1;
    try {
        if (events) *events = LinkEvents();
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
        // The open events, kept sorted by their mean x (insertion sort after the small moves of each frame):
        // a sweep over this frame's localizations sorted by x finds those within `radius` in x.
        std::vector<OpenEvent> open, merged;
        std::vector<Candidate> cand;
        std::vector<char> loc_taken, ev_taken;
        std::vector<int64_t> by_x;
        std::vector<std::pair<double, int64_t>> keyed;
        int64_t next_id = 0;
        for (int64_t a = 0; a < n;) {
            const int64_t f = frame[a];
            int64_t b = a + 1;
            while (b < n && frame[b] == f) ++b;
            // Close the events that are too old.
            size_t keep = 0;
            for (size_t e = 0; e < open.size(); ++e) {
                if (uint64_t(f) - uint64_t(open[e].last_frame) <= window)
                    open[keep++] = open[e];
                else
                    close(open[e]);
            }
            open.resize(keep);
            for (size_t e = 1; e < open.size(); ++e) {  // nearly sorted: means moved by a fraction of radius
                if (!(open[e].mx < open[e - 1].mx)) continue;
                OpenEvent t = open[e];
                size_t j = e;
                while (j > 0 && (t.mx < open[j - 1].mx || (t.mx == open[j - 1].mx && t.id < open[j - 1].id))) {
                    open[j] = open[j - 1];
                    --j;
                }
                open[j] = t;
            }
            // (x, row) pairs sorted in place: contiguous keys, no indirect loads in the comparisons.
            keyed.resize(size_t(b - a));
            for (int64_t i = a; i < b; ++i) keyed[size_t(i - a)] = {x[i], i};
            std::sort(keyed.begin(), keyed.end(), [](const std::pair<double, int64_t>& p,
                                                     const std::pair<double, int64_t>& q) {
                return p.first != q.first ? p.first < q.first : p.second < q.second;
            });
            by_x.resize(size_t(b - a));
            for (size_t k = 0; k < keyed.size(); ++k) by_x[k] = keyed[k].second;
            cand.clear();
            size_t lo = 0;
            for (int64_t i : by_x) {
                while (lo < open.size() && open[lo].mx < x[i] - options.radius) ++lo;
                for (size_t e = lo; e < open.size() && open[e].mx <= x[i] + options.radius; ++e) {
                    const OpenEvent& ev = open[e];
                    const double ddx = x[i] - ev.mx, ddy = y[i] - ev.my;
                    if (ddy > options.radius || ddy < -options.radius) continue;
                    const double d2 = ddx * ddx + ddy * ddy;
                    if (d2 > r2) continue;
                    double q = d2;
                    if (gated) {
                        // Mahalanobis distance of the difference (variances add: independent errors).
                        q = ddx * ddx / (var_x[i] + 1.0 / ev.wx) + ddy * ddy / (var_y[i] + 1.0 / ev.wy);
                        if (q > g2) continue;
                    }
                    cand.push_back({q, i, ev.id, int64_t(e)});
                }
            }
            loc_taken.assign(size_t(b - a), 0);
            ev_taken.assign(open.size(), 0);
            // Closest pairs first matters only where a localization or an event is in two candidates; in the
            // common frame none is, every candidate is taken, and the sort (a third of the time) is skipped.
            bool conflict = false;
            for (const Candidate& c : cand) {
                char& lt = loc_taken[size_t(c.loc - a)];
                char& et = ev_taken[size_t(c.index)];
                if (lt || et) {
                    conflict = true;
                    break;
                }
                lt = et = 1;
            }
            if (conflict) std::sort(cand.begin(), cand.end());
            std::fill(loc_taken.begin(), loc_taken.end(), 0);
            std::fill(ev_taken.begin(), ev_taken.end(), 0);
            for (const Candidate& c : cand) {
                char& lt = loc_taken[size_t(c.loc - a)];
                char& et = ev_taken[size_t(c.index)];
                if (lt || et) continue;
                lt = et = 1;
                OpenEvent& ev = open[size_t(c.index)];
                const double wx = weighted ? 1.0 / var_x[c.loc] : 1.0, wy = weighted ? 1.0 / var_y[c.loc] : 1.0;
                ev.wx += wx;
                ev.wy += wy;
                ev.swx += wx * x[c.loc];
                ev.swy += wy * y[c.loc];
                ev.mx = ev.swx / ev.wx;
                ev.my = ev.swy / ev.wy;
                ev.last_frame = f;
                ev.count += 1;
                event[c.loc] = ev.id;
            }
            // New events: ids in row order (events numbered by first row); merged into `open` in x order.
            for (int64_t i = a; i < b; ++i) {
                if (loc_taken[size_t(i - a)]) continue;
                event[i] = next_id++;
                if (events) {
                    events->first_frame.push_back(0);
                    events->last_frame.push_back(0);
                    events->count.push_back(0);
                    events->x.push_back(0);
                    events->y.push_back(0);
                    events->var_x.push_back(0);
                    events->var_y.push_back(0);
                }
            }
            // Merged into `open` from the back, in place (no copy of the open events each frame): the fresh
            // ones (in x order) go after the open events of equal mean x, as a forward merge would put them.
            merged.clear();
            for (int64_t i : by_x) {
                if (loc_taken[size_t(i - a)]) continue;
                const double wx = weighted ? 1.0 / var_x[i] : 1.0, wy = weighted ? 1.0 / var_y[i] : 1.0;
                merged.push_back(OpenEvent{wx, wy, wx * x[i], wy * y[i], x[i], y[i], f, event[i], 1, f});
            }
            if (!merged.empty()) {
                size_t e = open.size(), m = merged.size(), out = open.size() + merged.size();
                open.resize(out);
                while (m > 0) {
                    if (e > 0 && merged[m - 1].mx < open[e - 1].mx)
                        open[--out] = open[--e];
                    else
                        open[--out] = merged[--m];
                }
            }
            a = b;
        }
        for (const OpenEvent& ev : open) close(ev);
        *n_events = next_id;
    } catch (const std::bad_alloc&) {
        return {Status::out_of_memory, "out of memory in link"};
    }
    return Result::success();
}

}  // namespace spotcore
