// Linking localizations of consecutive frames into events (one blink of one emitter).
#pragma once
#include <cstddef>
#include <new>
#include <utility>
#include <vector>

#include "spotcore/types.h"

namespace spotcore {

// The allocator of LinkEvents' columns: resize leaves new elements uninitialized (link writes every one;
// zeroing them would fault in every page of the capacity).
template <typename T>
struct EventAllocator {
    using value_type = T;
    EventAllocator() = default;
    template <typename U>
    EventAllocator(const EventAllocator<U>&) noexcept {}
    T* allocate(size_t n) {
        if (n > size_t(-1) / sizeof(T)) throw std::bad_array_new_length();
        return static_cast<T*>(::operator new(n * sizeof(T)));
    }
    void deallocate(T* p, size_t) noexcept { ::operator delete(p); }
    template <typename U>
    void construct(U* p) noexcept {
        ::new (static_cast<void*>(p)) U;
    }
    template <typename U, typename... Args>
    void construct(U* p, Args&&... args) {
        ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
    friend bool operator==(const EventAllocator&, const EventAllocator&) { return true; }
    friend bool operator!=(const EventAllocator&, const EventAllocator&) { return false; }
};
template <typename T>
using EventColumn = std::vector<T, EventAllocator<T>>;

struct LinkOptions {
    // Largest distance (px) between a localization and the position of an open event that can join it. > 0.
    double radius = 0.5;
    // > 0: a localization also joins an event only when dx^2/(vx + vx_e) + dy^2/(vy + vy_e) <= gate^2, with
    // its variances vx = sd_x^2, vy = sd_y^2 and those of the event's weighted mean (needs sd_x/sd_y). 0: the
    // radius alone.
    double gate = 0.0;
    // Frames an event may miss and still continue (0: only the next frame). >= 0.
    int32_t max_dark_frames = 1;
    // OpenMP threads (0: OpenMP default; >= 0). The frame sweep is sequential; a second thread, on large
    // tables, faults in the output pages ahead of it. The output does not depend on it.
    int32_t threads = 0;
};

// The localizations to link: n rows sorted by frame.
struct LinkRows {
    const int64_t* frame = nullptr;  // non-decreasing (else invalid_argument)
    const double* x = nullptr;       // px, finite (else invalid_argument)
    const double* y = nullptr;
    // null (no gate, unweighted means), or the rows' uncertainties: standard deviations (px), > 0 with a
    // square that is finite and > 0 (else invalid_argument). Required when options.gate > 0.
    const double* sd_x = nullptr;
    const double* sd_y = nullptr;
    int64_t n = 0;
    // Columns summed per event into LinkEvents::sums (any values, NaN included): n_sums pointers to n values.
    const double* const* sum_of = nullptr;
    int n_sums = 0;
};

// Per-event results of link, indexed by event: first and last frame, number of localizations, weighted mean
// position (weights 1/sd^2, or 1 without uncertainties) and the uncertainty of that mean (sqrt(1/sum of
// weights); without uncertainties: 1/sqrt(n), in units of the unknown per-localization uncertainty), and the
// sums of the sum_of columns (in row order).
// Each column's capacity is the number of rows (an upper bound on the events): address space, the pages past
// the last event are not touched.
struct LinkEvents {
    EventColumn<int64_t> first_frame, last_frame, count;
    EventColumn<double> x, y, sd_x, sd_y;
    std::vector<EventColumn<double>> sums;  // sums[k][e]: sum of sum_of[k] over the rows of event e
};

// Validates options (radius finite and > 0, gate finite and >= 0, max_dark_frames >= 0, threads >= 0). Called
// by link.
Result check_link_options(const LinkOptions& options);

// Links the rows into events. Frame by frame, every event whose last frame is within max_dark_frames + 1
// frames is open; its position is the weighted mean of its members. The candidate pairs (localization, open
// event) within `radius` (and the gate) are taken greedily from the closest (ties: lower localization, then
// lower event index), each event and each localization at most once per frame; a localization left over
// starts a new event. The open events are kept in a hashed grid of cells 2 * radius wide, so a localization
// looks at the events of 2 x 2 cells: O(rows) on spread-out data. Deterministic, the sweep on one thread
// (options.threads); memory O(open events + rows of the last max_dark_frames + 1 frames) besides the outputs.
//   event:    null, or n outputs: the event index of each row, 0.. in order of the events' first rows.
//   n_events: the number of events.
//   events:   null, or filled with the per-event results (cleared first). event and events not both null.
Result link(const LinkRows& rows, const LinkOptions& options, int64_t* event, int64_t* n_events,
            LinkEvents* events = nullptr);

}  // namespace spotcore
