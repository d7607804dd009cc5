#include <limits>
#include <string>
#include <vector>

#include "common.h"

static_assert(sizeof(bool) == 1, "inside is written as bytes into a numpy bool array");

namespace {

using Int64Array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

// A 1D integer array (any integer dtype; an empty sequence of any dtype) as int64.
Int64Array index_array(const py::object& o, const char* name) {
    py::array a = py::array::ensure(o);
    if (!a) throw py::type_error(std::string("cut_boxes: ") + name + " must be a 1D integer array");
    if (a.ndim() != 1) throw py::value_error(std::string("cut_boxes: ") + name + " must be 1D");
    const char kind = a.dtype().kind();
    if (a.size() > 0 && kind != 'i' && kind != 'u')
        throw py::type_error(std::string("cut_boxes: ") + name + " must be an integer array, got dtype " +
                             std::string(py::str(a.dtype())));
    return Int64Array::ensure(a);
}

// int64 coordinates as the core's int32; a value no int32 holds is outside any image.
std::vector<int32_t> narrow(const Int64Array& a, const char* what, int64_t extent) {
    std::vector<int32_t> out(size_t(a.size()));
    const int64_t* p = a.data();
    for (size_t k = 0; k < out.size(); ++k) {
        if (p[k] < std::numeric_limits<int32_t>::min() || p[k] > std::numeric_limits<int32_t>::max())
            throw py::value_error("cut_boxes: centre " + std::to_string(k) + ": " + what + " " + std::to_string(p[k]) +
                                  " is outside the image (" + std::to_string(extent) + " " + what + "s)");
        out[k] = int32_t(p[k]);
    }
    return out;
}

}  // namespace

void bind_boxes(py::module_& m) {
    m.def(
        "cut_boxes",
        [](py::array stack, py::object camera, py::object frames, py::object rows, py::object cols,
           spotcore::BoxOptions options, int32_t threads) {
            const spotcore::ImageStack s = stack_view(stack, "cut_boxes");
            const CameraArgs c = camera_args(camera, s, "cut_boxes");
            const Int64Array f = index_array(frames, "frames"), r64 = index_array(rows, "rows"),
                             c64 = index_array(cols, "cols");
            if (f.size() != r64.size() || f.size() != c64.size())
                throw py::value_error("cut_boxes: frames, rows and cols must have the same length, got " +
                                      std::to_string(f.size()) + ", " + std::to_string(r64.size()) + ", " +
                                      std::to_string(c64.size()));
            raise_if_failed(spotcore::check_box_options(options));  // before sizing the outputs
            const std::vector<int32_t> rr = narrow(r64, "row", s.rows), cc = narrow(c64, "col", s.cols);
            const py::ssize_t n = f.size(), k = options.size;
            FloatImage boxes({n, k, k});
            py::object variance = py::none();
            float* var = nullptr;
            if (c.cam.variance_map) {
                FloatImage v({n, k, k});
                var = v.mutable_data();
                variance = v;
            }
            py::array_t<bool> inside({n, k, k});
            spotcore::Result res;
            {
                py::gil_scoped_release release;
                res = spotcore::cut_boxes(s, c.cam, f.data(), rr.data(), cc.data(), int64_t(n), options, threads,
                                          boxes.mutable_data(), var, reinterpret_cast<uint8_t*>(inside.mutable_data()));
            }
            raise_if_failed(res);
            return py::make_tuple(boxes, variance, inside);
        },
        py::arg("stack"), py::arg("camera"), py::arg("frames"), py::arg("rows"), py::arg("cols"), py::arg("options"),
        py::arg("threads"),
        "Photon boxes (n, size, size) float32 centred on (frames[k], rows[k], cols[k]), with the read-noise "
        "variance (or None without a variance map) and the inside mask (n, size, size) bool.");
}
