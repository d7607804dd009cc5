// Helpers shared by the core's sources (not installed): input checks, the camera conversion and the one
// box cutter behind both detect_boxes and cut_boxes.
#pragma once
#include <cstddef>
#include <cstdint>
#include <new>
#include <vector>

#include "spotcore/boxes.h"
#include "spotcore/types.h"

namespace spotcore {
namespace detail {

Result check_stack(const ImageStack& s);
Result check_camera(const Camera& c);

// Frame `frame` of a checked stack to photons (rows*cols float32). No checks.
void convert_frame(const ImageStack& s, int64_t frame, const Camera& cam, float* out);

// Read-noise variance of every pixel in photons^2 (variance_map / gain^2 / qe^2), rows*cols; needs
// cam.variance_map. The same for every frame, so computed once per call.
void pixel_variance(const Camera& cam, int64_t rows, int64_t cols, float* out);

// A box centre in one frame; its box goes to output slot `slot`.
struct BoxCentre {
    int32_t row, col;
    int64_t slot;
};

// Cuts the boxes of one frame. centres: `count` centres inside the image, sorted by (row, col) (the
// neighbour mask relies on it). photons: the converted frame; variance: pixel_variance or null (zeros).
// Box of centre c goes to boxes + c.slot * size^2, likewise variance_out and inside (both nullable).
void cut_frame(const float* photons, const float* variance, int64_t rows, int64_t cols, const BoxCentre* centres,
               size_t count, const BoxOptions& options, float* boxes, float* variance_out, uint8_t* inside);

// One thread's buffers for the fused per-frame pass (the converted frame and the wavelet filter's work
// arrays). allocate() is false when memory ran out; the thread then reports its frames as failed.
struct FrameBuffers {
    std::vector<float> photons, w1, w2, scratch;
    bool allocate(int64_t npix) noexcept {
        try {
            photons.resize(size_t(npix));
            w1.resize(size_t(npix));
            w2.resize(size_t(npix));
            scratch.resize(size_t(2 * npix));
        } catch (const std::bad_alloc&) {
            return false;
        }
        return true;
    }
};

// Raises a flag that any thread of a parallel region may raise (an allocation failed, say).
inline void raise_shared_flag(bool& flag) {
#ifdef _OPENMP
#pragma omp atomic write
#endif
    flag = true;
}

}  // namespace detail
}  // namespace spotcore
