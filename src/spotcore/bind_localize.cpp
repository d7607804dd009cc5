#include <cstring>
#include <vector>

#include "common.h"

namespace {

// (n, k, k) float32 copy of n*k*k floats.
FloatImage box_array(const std::vector<float>& v, py::ssize_t n, py::ssize_t k) {
    FloatImage a({n, k, k});
    if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(float));
    return a;
}

}  // namespace

// Options are taken by value: the core reads a copy that no other Python thread can change meanwhile.
void bind_localize(py::module_& m) {
    m.def(
        "localize",
        [](py::array stack, py::object camera, spotcore::LocalizeOptions options, int64_t first_frame) {
            const spotcore::ImageStack s = stack_view(stack, "localize");
            const CameraArgs c = camera_args(camera, s, "localize");
            std::vector<spotcore::Localization> locs;
            spotcore::Result r;
            {
                py::gil_scoped_release release;
                r = spotcore::localize(s, c.cam, options, first_frame, locs);
            }
            raise_if_failed(r);
            py::array_t<FitRecord> out(py::ssize_t(locs.size()));
            auto* rec = out.mutable_data();
            for (size_t i = 0; i < locs.size(); ++i)
                rec[i] = to_record(locs[i].fit, locs[i].frame, locs[i].peak_row, locs[i].peak_col);
            return out;
        },
        py::arg("stack"), py::arg("camera"), py::arg("options"), py::arg("first_frame"),
        "Fused convert/filter/detect/fit over a (frames, rows, cols) stack; returns the FitRecord structured "
        "array (x, y in image pixels, frame = first_frame + index).");
    m.def(
        "detect_boxes",
        [](py::array stack, py::object camera, spotcore::LocalizeOptions options, int64_t first_frame) {
            const spotcore::ImageStack s = stack_view(stack, "detect_boxes");
            const CameraArgs c = camera_args(camera, s, "detect_boxes");
            spotcore::Detections det;
            spotcore::Result r;
            {
                py::gil_scoped_release release;
                r = spotcore::detect_boxes(s, c.cam, options, first_frame, det);
            }
            raise_if_failed(r);
            const py::ssize_t n = py::ssize_t(det.size()), k = options.fit.box;
            py::object variance = py::none(), screen = py::none();
            if (c.cam.variance_map) variance = box_array(det.variance, n, k);
            if (options.screen.size > 0) screen = box_array(det.screen_boxes, n, options.screen.size);
            return py::make_tuple(to_numpy(det.frame), to_numpy(det.peak_row), to_numpy(det.peak_col),
                                  box_array(det.boxes, n, k), variance, screen);
        },
        py::arg("stack"), py::arg("camera"), py::arg("options"), py::arg("first_frame"),
        "Detection half of localize: (frame int64, peak_row int32, peak_col int32, boxes (n, box, box) photons, "
        "variance (n, box, box) or None, screen boxes (n, s, s) or None).");
}
