// Stacks and cameras from Python objects (shared by every binding that reads a movie), and to_photons.
#include <string>

#include "common.h"

namespace {

spotcore::PixelType pixel_type(const py::array& a, const char* fn) {
    const py::dtype dt = a.dtype();
    if (dt.byteorder() == '>') throw py::type_error(std::string(fn) + ": big-endian arrays must be converted first");
    const char kind = dt.kind();
    const auto size = dt.itemsize();
    if (kind == 'u' && size == 1) return spotcore::PixelType::u8;
    if (kind == 'u' && size == 2) return spotcore::PixelType::u16;
    if (kind == 'i' && size == 2) return spotcore::PixelType::i16;
    if (kind == 'u' && size == 4) return spotcore::PixelType::u32;
    if (kind == 'i' && size == 4) return spotcore::PixelType::i32;
    if (kind == 'f' && size == 4) return spotcore::PixelType::f32;
    if (kind == 'f' && size == 8) return spotcore::PixelType::f64;
    throw py::type_error(std::string(fn) + ": unsupported pixel dtype " + std::string(py::str(dt)) +
                         " (use uint8, uint16, int16, uint32, int32, float32 or float64)");
}

std::string type_name(const py::handle& o) { return py::str(py::type::handle_of(o).attr("__name__")); }

py::object camera_attr(const py::object& camera, const char* name, const char* fn) {
    if (!py::hasattr(camera, name))
        throw py::type_error(std::string(fn) + ": camera (" + type_name(camera) + ") has no attribute '" + name +
                             "'; a camera needs baseline, sensitivity, em_gain, qe, offset_map, gain_map and "
                             "variance_map");
    return camera.attr(name);
}

double camera_scalar(const py::object& camera, const char* name, const char* fn) {
    const py::object v = camera_attr(camera, name, fn);
    PyObject* f = PyNumber_Float(v.ptr());
    if (!f) {
        PyErr_Clear();
        throw py::type_error(std::string(fn) + ": camera." + name + " must be a float, got " + type_name(v));
    }
    const double d = PyFloat_AsDouble(f);
    Py_DECREF(f);
    return d;
}

CameraMap camera_map(const py::object& camera, const char* name, const spotcore::ImageStack& s, const char* fn) {
    const py::object o = camera_attr(camera, name, fn);
    if (o.is_none()) return CameraMap{};
    FloatImage a = FloatImage::ensure(o);
    if (!a)
        throw py::type_error(std::string(fn) + ": camera." + name + " must be None or a 2D array convertible to "
                             "float32, got " + type_name(o));
    if (a.ndim() != 2 || a.shape(0) != s.rows || a.shape(1) != s.cols) {
        std::string shape = "(";
        for (py::ssize_t i = 0; i < a.ndim(); ++i) shape += (i ? ", " : "") + std::to_string(a.shape(i));
        shape += a.ndim() == 1 ? ",)" : ")";
        throw py::value_error(std::string(fn) + ": camera." + name + " has shape " + shape +
                              ", it must match the frame shape (" + std::to_string(s.rows) + ", " +
                              std::to_string(s.cols) + ")");
    }
    return CameraMap{a, true};
}

}  // namespace

spotcore::ImageStack stack_view(const py::array& a, const char* fn) {
    if (a.ndim() != 3) throw py::value_error(std::string(fn) + ": stack must be 3D (frames, rows, cols)");
    spotcore::ImageStack s;
    s.data = a.data();
    s.type = pixel_type(a, fn);
    s.frames = a.shape(0);
    s.rows = a.shape(1);
    s.cols = a.shape(2);
    s.stride_frame = a.strides(0);
    s.stride_row = a.strides(1);
    s.stride_col = a.strides(2);
    return s;
}

CameraArgs camera_args(const py::object& camera, const spotcore::ImageStack& s, const char* fn) {
    CameraArgs c;
    c.cam.baseline = camera_scalar(camera, "baseline", fn);
    c.cam.sensitivity = camera_scalar(camera, "sensitivity", fn);
    c.cam.em_gain = camera_scalar(camera, "em_gain", fn);
    c.cam.qe = camera_scalar(camera, "qe", fn);
    c.offset = camera_map(camera, "offset_map", s, fn);
    c.gain = camera_map(camera, "gain_map", s, fn);
    c.variance = camera_map(camera, "variance_map", s, fn);
    c.cam.offset_map = c.offset.data();
    c.cam.gain_map = c.gain.data();
    c.cam.variance_map = c.variance.data();
    return c;
}

void bind_camera(py::module_& m) {
    m.def(
        "to_photons",
        [](py::array stack, py::object camera, int32_t threads) {
            const spotcore::ImageStack s = stack_view(stack, "to_photons");
            const CameraArgs c = camera_args(camera, s, "to_photons");
            FloatImage out({s.frames, s.rows, s.cols});
            spotcore::Result r;
            {
                py::gil_scoped_release release;
                r = spotcore::to_photons(s, c.cam, threads, out.mutable_data());
            }
            raise_if_failed(r);
            return out;
        },
        py::arg("stack"), py::arg("camera"), py::arg("threads"),
        "Every frame of a (frames, rows, cols) stack in photons: (frames, rows, cols) float32.");
}
