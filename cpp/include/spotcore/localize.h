// The fused pipeline: convert -> wavelet filter -> threshold -> local maxima -> fit, for a chunk of
// frames, in one call with no allocation per spot.
#pragma once
#include <vector>
#include "spotcore/boxes.h"
#include "spotcore/detect.h"
#include "spotcore/fit.h"
#include "spotcore/types.h"

namespace spotcore {

struct Localization {
    int64_t frame;
    int32_t peak_row, peak_col;
    FitResult fit;  // x, y in image pixels (centre of pixel (0,0) is (0,0))
};

struct LocalizeOptions {
    DetectOptions detect;
    FitOptions fit;  // fit.threads also sets the threads of detection
    // Ignore the pixels of a box that are closer to another detected peak than to its own.
    bool mask_neighbours = true;
    // detect_boxes only: also cut boxes of screen.size around each detection from the same converted
    // frame (e.g. edge-filled, unmasked patches for a classifier). screen.size == 0: none.
    BoxOptions screen{0, BoxBorder::nan, false};
};

// The detection half of localize: every peak of every frame with its fit box, ready for fit_boxes.
struct Detections {
    std::vector<int64_t> frame;            // first_frame + index in the stack
    std::vector<int32_t> peak_row, peak_col;
    std::vector<float> boxes;              // size() * box * box photons; NaN outside the image and, with
                                           // mask_neighbours, on pixels nearer to another peak
    std::vector<float> variance;           // same layout (photons^2) if the camera has a variance map
    std::vector<float> screen_boxes;       // size() * screen.size^2 photons when options.screen.size > 0
    size_t size() const { return frame.size(); }
};
// Convert, filter, threshold, find maxima and cut boxes (options.fit.box; and options.screen) for every
// frame; appends to `out` ordered by frame, then peak raster order. localize() = detect_boxes() +
// fit_boxes(). The fit boxes are those cut_boxes gives for the peaks with {fit.box, nan, mask_neighbours}.
Result detect_boxes(const ImageStack& stack, const Camera& camera, const LocalizeOptions& options,
                    int64_t first_frame, Detections& out);
// Localize every frame of `stack`; frame numbers in the output are first_frame + index.
// Output is appended to `out` ordered by frame, then by peak raster order, for any thread count.
// options.screen is not used.
Result localize(const ImageStack& stack, const Camera& camera, const LocalizeOptions& options,
                int64_t first_frame, std::vector<Localization>& out);

// Converts one frame to photons (float32, rows*cols), as detection does.
Result frame_to_photons(const ImageStack& stack, int64_t frame, const Camera& camera, float* photons);
// Converts every frame (out: frames*rows*cols float32, frame after frame), as frame_to_photons does.
// threads: 0 = OpenMP default; the output does not depend on it.
Result to_photons(const ImageStack& stack, const Camera& camera, int32_t threads, float* out);

}  // namespace spotcore
