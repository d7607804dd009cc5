// Cutting photon boxes around given centres: the one box cutter of the core (detect_boxes uses it too).
#pragma once
#include "spotcore/types.h"

namespace spotcore {

// Pixels of a box outside the image: NaN, or the value of the nearest edge pixel (clamped coordinates).
enum class BoxBorder : int32_t { nan = 0, edge = 1 };

// Largest box side cut_boxes accepts (boxes are odd, 1..kMaxBoxSize; fits need 3..31, see FitOptions).
constexpr int32_t kMaxBoxSize = 63;

struct BoxOptions {
    int32_t size = 7;  // odd side, 1..kMaxBoxSize
    BoxBorder border = BoxBorder::nan;
    // Pixels closer to another centre of the same frame than to their own are NaN (and inside = 0), as
    // detection masks its fit boxes; ties stay. Applies with either border.
    bool mask_neighbours = false;
};

// Validates options (size odd and in 1..kMaxBoxSize, known border). Called by cut_boxes.
Result check_box_options(const BoxOptions& options);

// Cuts size x size photon boxes (row-major, box after box, in input order), box k centred on pixel
// (rows[k], cols[k]) of frame frames[k] (0-based index into `stack`), converting ADU -> photons with
// `camera` exactly as detection does (each frame with a centre is converted once).
// The centres must lie inside the image; they need not be sorted, and may repeat.
//   boxes:    n * size * size floats.
//   variance: null, or n * size * size floats: the per-pixel read-noise variance in photons^2
//             (variance_map / gain^2 / qe^2), same border rule and mask as boxes; 0 on image pixels when
//             the camera has no variance_map.
//   inside:   null, or n * size * size bytes: 1 for a pixel inside the image and not masked, else 0.
// threads: 0 = OpenMP default. The output does not depend on it.
Result cut_boxes(const ImageStack& stack, const Camera& camera, const int64_t* frames, const int32_t* rows,
                 const int32_t* cols, int64_t n, const BoxOptions& options, int32_t threads, float* boxes,
                 float* variance, uint8_t* inside);

}  // namespace spotcore
