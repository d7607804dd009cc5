// Linking localizations of consecutive frames into events (one blink of one emitter).
#pragma once
#include <vector>

#include "spotcore/types.h"

namespace spotcore {

struct LinkOptions {
    // Largest distance (px) between a localization and the position of an open event that can join it. > 0.
    double radius = 0.5;
    // > 0: a localization also joins an event only when dx^2/(vx + vx_e) + dy^2/(vy + vy_e) <= gate^2, with
    // its variances vx, vy and those of the event's weighted mean (needs var_x/var_y). 0: the radius alone.
    double gate = 0.0;
    // Frames an event may miss and still continue (0: only the next frame). >= 0.
    int32_t max_dark_frames = 1;
};

// Per-event results of link, indexed by event: first and last frame, number of localizations, weighted mean
// position (weights 1/var, or 1 without variances) and the variance of that mean (1/sum of weights; without
// variances: 1/n, in units of the unknown per-localization variance), and the sums of the sum_of columns.
struct LinkEvents {
    std::vector<int64_t> first_frame, last_frame, count;
    std::vector<double> x, y, var_x, var_y;
    std::vector<std::vector<double>> sums;  // sums[k][e]: sum of sum_of[k] over the rows of event e, in row order
};

// Validates options (radius finite and > 0, gate finite and >= 0, max_dark_frames >= 0). Called by link.
Result check_link_options(const LinkOptions& options);

// Links n localizations sorted by frame (non-decreasing; else invalid_argument) into events.
// Frame by frame, every event whose last frame is within max_dark_frames + 1 frames is open; its position is
// the weighted mean of its members (weights 1/var, or 1 without variances). The candidate pairs (localization,
// open event) within `radius` (and the gate) are taken greedily from the closest (ties: lower localization,
// then lower event index), each event and each localization at most once per frame; a localization left
// over starts a new event. The open events are kept in a hashed grid of cells 2 * radius wide, so a
// localization looks at the events of 2 x 2 cells: O(rows) on spread-out data. Deterministic, one thread;
// memory O(open events + rows of the last max_dark_frames + 1 frames) besides the outputs.
//   frame, x, y:  n values; x, y finite (else invalid_argument).
//   var_x, var_y: null (no gate), or n finite variances > 0 (px^2), required when options.gate > 0.
//   event:        null, or n outputs: the event index of each localization, 0.. in order of the events' first rows.
//   n_events:     the number of events.
//   events:       null, or filled with the per-event results (cleared first). event and events not both null.
//   sum_of:       n_sums columns of n values (any, NaN included) summed per event into events->sums.
Result link(const int64_t* frame, const double* x, const double* y, const double* var_x, const double* var_y,
            int64_t n, const LinkOptions& options, int64_t* event, int64_t* n_events, LinkEvents* events = nullptr,
            const double* const* sum_of = nullptr, int n_sums = 0);

}  // namespace spotcore
