// The option structs of the core as Python classes (same field names as C++), and BoxBorder.
#include <initializer_list>
#include <string>
#include <vector>

#include "common.h"

namespace {

using spotcore::Astigmatism;
using spotcore::BoxBorder;
using spotcore::BoxOptions;
using spotcore::DetectOptions;
using spotcore::FitOptions;
using spotcore::LocalizeOptions;

// "Name(field=value, ...)"; str() of an enum reads "Model.gauss".
std::string fields_repr(const py::object& self, const std::vector<const char*>& names) {
    std::string s = std::string(py::str(py::type::handle_of(self).attr("__name__"))) + "(";
    bool first = true;
    for (const char* n : names) {
        s += (first ? "" : ", ") + std::string(n) + "=" + std::string(py::str(self.attr(n)));
        first = false;
    }
    return s + ")";
}

// repr, ==, and pickling (the options travel to dask workers) from the list of fields.
template <typename T>
void add_common(py::class_<T>& c, std::initializer_list<const char*> names) {
    const std::vector<const char*> fields(names);
    c.def("__repr__", [fields](const py::object& self) { return fields_repr(self, fields); });
    c.def("__eq__", [fields](const py::object& self, const py::object& other) {
        if (!py::isinstance<T>(other)) return false;
        for (const char* n : fields)
            if (!self.attr(n).equal(other.attr(n))) return false;
        return true;
    });
    c.attr("__hash__") = py::none();  // mutable
    c.def(py::pickle(
        [fields](const py::object& self) {
            py::tuple t(fields.size());
            for (size_t i = 0; i < fields.size(); ++i) t[i] = self.attr(fields[i]);
            return t;
        },
        [fields](const py::tuple& t) {
            if (t.size() != fields.size()) throw py::value_error("bad pickled options state");
            py::object o = py::cast(T());
            for (size_t i = 0; i < fields.size(); ++i) o.attr(fields[i]) = t[i];
            return o.cast<T>();
        }));
}

}  // namespace

void bind_options(py::module_& m) {
    py::enum_<BoxBorder>(m, "BoxBorder", "Pixels of a box outside the image: NaN, or the nearest edge pixel's value.")
        .value("nan", BoxBorder::nan)
        .value("edge", BoxBorder::edge);

    py::class_<DetectOptions> d(m, "DetectOptions", "Candidate detection: threshold and local maxima.");
    d.def(py::init<>())
        .def_readwrite("mode", &DetectOptions::mode, "ThresholdMode: std_w1 (factor * std(W1)) or absolute")
        .def_readwrite("threshold", &DetectOptions::threshold, "threshold factor (std_w1) or photons (absolute)")
        .def_readwrite("min_distance", &DetectOptions::min_distance, "drop maxima closer than this to a stronger one (px)")
        .def_readwrite("border", &DetectOptions::border, "drop peaks closer than this to the image edge (px)");
    add_common(d, {"mode", "threshold", "min_distance", "border"});

    py::class_<Astigmatism> a(m, "Astigmatism",
                              "Widths against z of Model.astigmatic: s(z) = s0 sqrt(1 + u^2 + A u^3 + B u^4), "
                              "u = (z - c) / d (Huang et al. 2008); s0 in px, c, d, z_min, z_max in nm.");
    a.def(py::init<>());
    for (auto field : {std::make_pair("s0_x", &Astigmatism::s0_x), std::make_pair("c_x", &Astigmatism::c_x),
                       std::make_pair("d_x", &Astigmatism::d_x), std::make_pair("a_x", &Astigmatism::a_x),
                       std::make_pair("b_x", &Astigmatism::b_x), std::make_pair("s0_y", &Astigmatism::s0_y),
                       std::make_pair("c_y", &Astigmatism::c_y), std::make_pair("d_y", &Astigmatism::d_y),
                       std::make_pair("a_y", &Astigmatism::a_y), std::make_pair("b_y", &Astigmatism::b_y),
                       std::make_pair("z_min", &Astigmatism::z_min), std::make_pair("z_max", &Astigmatism::z_max)})
        a.def_readwrite(field.first, field.second);
    add_common(a, {"s0_x", "c_x", "d_x", "a_x", "b_x", "s0_y", "c_y", "d_y", "a_y", "b_y", "z_min", "z_max"});

    py::class_<FitOptions> f(m, "FitOptions", "Levenberg-Marquardt Gaussian fit of square boxes.");
    f.def(py::init<>())
        .def_readwrite("model", &FitOptions::model, "Model: fixed_sigma, gauss, elliptical or astigmatic")
        .def_readwrite("estimator", &FitOptions::estimator, "Estimator: lsq or mle")
        .def_readwrite("box", &FitOptions::box, "odd box side, 3..31")
        .def_readwrite("psf_sigma", &FitOptions::psf_sigma, "start (and fixed_sigma) PSF sigma, px")
        .def_readwrite("max_iterations", &FitOptions::max_iterations, "iteration limit per fit")
        .def_readwrite("tolerance", &FitOptions::tolerance, "convergence tolerance (px; relative for N, b)")
        .def_readwrite("threads", &FitOptions::threads, "threads; 0 = OpenMP default (capped at max_threads)")
        .def_readwrite("astigmatism", &FitOptions::astigmatism, "Astigmatism: widths against z (astigmatic model)");
    add_common(f, {"model", "estimator", "box", "psf_sigma", "max_iterations", "tolerance", "threads", "astigmatism"});

    py::class_<BoxOptions> b(m, "BoxOptions", "Boxes cut around centres (cut_boxes; LocalizeOptions.screen).");
    b.def(py::init<>())
        .def_readwrite("size", &BoxOptions::size, "odd box side, 1..63 (screen: 0 = no screening boxes)")
        .def_readwrite("border", &BoxOptions::border, "BoxBorder of pixels outside the image")
        .def_readwrite("mask_neighbours", &BoxOptions::mask_neighbours,
                       "NaN on pixels nearer to another centre of the same frame");
    add_common(b, {"size", "border", "mask_neighbours"});

    py::class_<LocalizeOptions> l(m, "LocalizeOptions", "Options of localize and detect_boxes.");
    l.def(py::init<>())
        .def_readwrite("detect", &LocalizeOptions::detect, "DetectOptions")
        .def_readwrite("fit", &LocalizeOptions::fit, "FitOptions (fit.box: fit box side; fit.threads: all threads)")
        .def_readwrite("mask_neighbours", &LocalizeOptions::mask_neighbours,
                       "mask fit-box pixels nearer to another detected peak")
        .def_readwrite("screen", &LocalizeOptions::screen,
                       "BoxOptions of extra boxes cut by detect_boxes (size 0 = none; localize ignores it)");
    add_common(l, {"detect", "fit", "mask_neighbours", "screen"});
}
