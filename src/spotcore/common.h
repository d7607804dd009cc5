// Shared helpers of the bindings: status -> Python exception, array checks.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "spotcore/spotcore.h"

namespace py = pybind11;

inline void raise_if_failed(const spotcore::Result& r) {
    if (r.ok()) return;
    if (r.status == spotcore::Status::invalid_argument) throw py::value_error(r.message);
    if (r.status == spotcore::Status::out_of_memory) throw std::bad_alloc();
    throw std::runtime_error(r.message);
}

using FloatImage = py::array_t<float, py::array::c_style | py::array::forcecast>;

void bind_options(py::module_& m);
void bind_camera(py::module_& m);
void bind_filter(py::module_& m);
void bind_detect(py::module_& m);
void bind_fit(py::module_& m);
void bind_boxes(py::module_& m);
void bind_localize(py::module_& m);
void bind_drift(py::module_& m);
void bind_link(py::module_& m);
void bind_multi(py::module_& m);
void bind_frame_fit(py::module_& m);

// A 3D numpy array (u1, u2, i2, u4, i4, f4, f8 in native byte order, any strides) as an ImageStack; the
// array must outlive it. fn names the caller in error messages.
spotcore::ImageStack stack_view(const py::array& stack, const char* fn);

// A camera read from any Python object with attributes baseline, sensitivity, em_gain, qe and
// offset_map, gain_map, variance_map (None or 2D arrays of the frame shape). Holds the converted maps.
struct CameraMap {
    FloatImage array;
    bool present = false;
    const float* data() const { return present ? array.data() : nullptr; }
};
struct CameraArgs {
    CameraMap offset, gain, variance;
    spotcore::Camera cam;
};
CameraArgs camera_args(const py::object& camera, const spotcore::ImageStack& stack, const char* fn);

template <typename T>
py::array_t<T> to_numpy(const std::vector<T>& v) {
    py::array_t<T> a(py::ssize_t(v.size()));
    if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
    return a;
}

// Flat record for numpy (one row per fit / localization).
struct FitRecord {
    int64_t frame;
    int32_t peak_row, peak_col;
    float x, y, photons, background, sigma_x, sigma_y;
    float uncertainty_x, uncertainty_y, uncertainty_photons, uncertainty_background;
    float uncertainty_sigma_x, uncertainty_sigma_y;
    float loglik, chi2;
    int32_t iterations, status;
    float z, uncertainty_z;  // astigmatic model, nm; NaN otherwise
};

inline FitRecord to_record(const spotcore::FitResult& f, int64_t frame, int32_t row, int32_t col) {
    return FitRecord{frame, row, col, f.x, f.y, f.photons, f.background, f.sigma_x, f.sigma_y,
                     f.crlb_x, f.crlb_y, f.crlb_photons, f.crlb_background, f.crlb_sigma_x, f.crlb_sigma_y,
                     f.loglik, f.chi2, f.iterations, int32_t(f.status), f.z, f.crlb_z};
}
