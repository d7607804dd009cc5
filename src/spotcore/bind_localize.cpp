#include <cstring>
#include <string>
#include <vector>

#include "common.h"

namespace {

spotcore::PixelType pixel_type(const py::array& a) {
    const py::dtype dt = a.dtype();
    if (dt.byteorder() == '>') throw py::type_error("localize: big-endian arrays must be converted first");
    const char kind = dt.kind();
    const auto size = dt.itemsize();
    if (kind == 'u' && size == 1) return spotcore::PixelType::u8;
    if (kind == 'u' && size == 2) return spotcore::PixelType::u16;
    if (kind == 'i' && size == 2) return spotcore::PixelType::i16;
    if (kind == 'u' && size == 4) return spotcore::PixelType::u32;
    if (kind == 'i' && size == 4) return spotcore::PixelType::i32;
    if (kind == 'f' && size == 4) return spotcore::PixelType::f32;
    if (kind == 'f' && size == 8) return spotcore::PixelType::f64;
    throw py::type_error("localize: unsupported pixel dtype " + std::string(py::str(dt)));
}

spotcore::ImageStack stack_view(const py::array& a) {
    spotcore::ImageStack s;
    s.data = a.data();
    s.type = pixel_type(a);
    s.frames = a.shape(0);
    s.rows = a.shape(1);
    s.cols = a.shape(2);
    s.stride_frame = a.strides(0);
    s.stride_row = a.strides(1);
    s.stride_col = a.strides(2);
    return s;
}

// Holds the converted map alive; data() is null when no map was given.
struct OptionalMap {
    FloatImage array;
    bool present = false;
    const float* data() const { return present ? array.data() : nullptr; }
};

OptionalMap optional_map(const py::object& o, int64_t rows, int64_t cols, const char* name) {
    if (o.is_none()) return OptionalMap{};
    FloatImage a = FloatImage::ensure(o);
    if (!a || a.ndim() != 2 || a.shape(0) != rows || a.shape(1) != cols)
        throw py::value_error(std::string("localize: camera ") + name + " map must match the frame shape");
    return OptionalMap{a, true};
}

// Camera with its maps (kept alive by the OptionalMaps) and the localize options, from Python arguments.
struct CameraArgs {
    OptionalMap off, gain, var;
    spotcore::Camera cam;
};

CameraArgs camera_args(const spotcore::ImageStack& s, double baseline, double sensitivity, double em_gain, double qe,
                       const py::object& offset_map, const py::object& gain_map, const py::object& variance_map) {
    CameraArgs c;
    c.off = optional_map(offset_map, s.rows, s.cols, "offset");
    c.gain = optional_map(gain_map, s.rows, s.cols, "gain");
    c.var = optional_map(variance_map, s.rows, s.cols, "variance");
    c.cam.baseline = baseline;
    c.cam.sensitivity = sensitivity;
    c.cam.em_gain = em_gain;
    c.cam.qe = qe;
    c.cam.offset_map = c.off.data();
    c.cam.gain_map = c.gain.data();
    c.cam.variance_map = c.var.data();
    return c;
}

// The detection half of the options (what detect_boxes reads); localize adds the fit settings.
spotcore::LocalizeOptions detect_options(spotcore::ThresholdMode mode, float threshold, float min_distance,
                                         int32_t border, int32_t box, int32_t threads, bool mask_neighbours) {
    spotcore::LocalizeOptions o;
    o.detect.mode = mode;
    o.detect.threshold = threshold;
    o.detect.min_distance = min_distance;
    o.detect.border = border;
    o.fit.box = box;
    o.fit.threads = threads;
    o.mask_neighbours = mask_neighbours;
    return o;
}

template <typename T>
py::array_t<T> to_numpy(const std::vector<T>& v) {
    py::array_t<T> a(py::ssize_t(v.size()));
    if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(T));
    return a;
}

}  // namespace

void bind_localize(py::module_& m) {
    m.def(
        "localize",
        [](py::array stack, double baseline, double sensitivity, double em_gain, double qe, py::object offset_map,
           py::object gain_map, py::object variance_map, spotcore::ThresholdMode mode, float threshold,
           float min_distance, int32_t border, int32_t box, float psf_sigma, spotcore::Model model,
           spotcore::Estimator estimator, int32_t max_iterations, float tolerance, int32_t threads,
           int64_t first_frame, bool mask_neighbours) {
            if (stack.ndim() != 3) throw py::value_error("localize: stack must be 3D (frames, rows, cols)");
            const spotcore::ImageStack s = stack_view(stack);
            const CameraArgs c = camera_args(s, baseline, sensitivity, em_gain, qe, offset_map, gain_map, variance_map);
            const spotcore::Camera& cam = c.cam;
            spotcore::LocalizeOptions o =
                detect_options(mode, threshold, min_distance, border, box, threads, mask_neighbours);
            o.fit.psf_sigma = psf_sigma;
            o.fit.model = model;
            o.fit.estimator = estimator;
            o.fit.max_iterations = max_iterations;
            o.fit.tolerance = tolerance;
            std::vector<spotcore::Localization> locs;
            spotcore::Result r;
            {
                py::gil_scoped_release release;
                r = spotcore::localize(s, cam, o, first_frame, locs);
            }
            raise_if_failed(r);
            py::array_t<FitRecord> out(py::ssize_t(locs.size()));
            auto* rec = out.mutable_data();
            for (size_t i = 0; i < locs.size(); ++i)
                rec[i] = to_record(locs[i].fit, locs[i].frame, locs[i].peak_row, locs[i].peak_col);
            return out;
        },
        py::arg("stack"), py::arg("baseline"), py::arg("sensitivity"), py::arg("em_gain"), py::arg("qe"),
        py::arg("offset_map"), py::arg("gain_map"), py::arg("variance_map"), py::arg("threshold_mode"),
        py::arg("threshold"), py::arg("min_distance"), py::arg("border"), py::arg("box"), py::arg("psf_sigma"),
        py::arg("model"), py::arg("estimator"), py::arg("max_iterations"), py::arg("tolerance"),
        py::arg("threads"), py::arg("first_frame"), py::arg("mask_neighbours") = true,
        "Fused convert/filter/detect/fit over a (frames, rows, cols) stack; returns a structured array.");
    m.def(
        "detect_boxes",
        [](py::array stack, double baseline, double sensitivity, double em_gain, double qe, py::object offset_map,
           py::object gain_map, py::object variance_map, spotcore::ThresholdMode mode, float threshold,
           float min_distance, int32_t border, int32_t box, int32_t threads, int64_t first_frame,
           bool mask_neighbours) {
            if (stack.ndim() != 3) throw py::value_error("detect_boxes: stack must be 3D (frames, rows, cols)");
            const spotcore::ImageStack s = stack_view(stack);
            const CameraArgs c = camera_args(s, baseline, sensitivity, em_gain, qe, offset_map, gain_map, variance_map);
            const spotcore::LocalizeOptions o =
                detect_options(mode, threshold, min_distance, border, box, threads, mask_neighbours);
            spotcore::Detections det;
            spotcore::Result r;
            {
                py::gil_scoped_release release;
                r = spotcore::detect_boxes(s, c.cam, o, first_frame, det);
            }
            raise_if_failed(r);
            const py::ssize_t n = py::ssize_t(det.size()), k = box;
            FloatImage boxes({n, k, k});
            if (n) std::memcpy(boxes.mutable_data(), det.boxes.data(), det.boxes.size() * sizeof(float));
            py::object variance = py::none();
            if (!det.variance.empty()) {
                FloatImage v({n, k, k});
                std::memcpy(v.mutable_data(), det.variance.data(), det.variance.size() * sizeof(float));
                variance = v;
            }
            return py::make_tuple(to_numpy(det.frame), to_numpy(det.peak_row), to_numpy(det.peak_col), boxes,
                                  variance);
        },
        py::arg("stack"), py::arg("baseline"), py::arg("sensitivity"), py::arg("em_gain"), py::arg("qe"),
        py::arg("offset_map"), py::arg("gain_map"), py::arg("variance_map"), py::arg("threshold_mode"),
        py::arg("threshold"), py::arg("min_distance"), py::arg("border"), py::arg("box"), py::arg("threads"),
        py::arg("first_frame"), py::arg("mask_neighbours") = true,
        "Detection half of localize: (frame, peak_row, peak_col, boxes (n, box, box) photons, variance or None).");
    m.def(
        "frame_to_photons",
        [](py::array stack, int64_t frame, double baseline, double sensitivity, double em_gain, double qe) {
            if (stack.ndim() != 3) throw py::value_error("frame_to_photons: stack must be 3D");
            const spotcore::ImageStack s = stack_view(stack);
            spotcore::Camera cam;
            cam.baseline = baseline;
            cam.sensitivity = sensitivity;
            cam.em_gain = em_gain;
            cam.qe = qe;
            FloatImage out({s.rows, s.cols});
            spotcore::Result r;
            {
                py::gil_scoped_release release;
                r = spotcore::frame_to_photons(s, frame, cam, out.mutable_data());
            }
            raise_if_failed(r);
            return out;
        },
        py::arg("stack"), py::arg("frame"), py::arg("baseline") = 0.0, py::arg("sensitivity") = 1.0,
        py::arg("em_gain") = 1.0, py::arg("qe") = 1.0);
}
