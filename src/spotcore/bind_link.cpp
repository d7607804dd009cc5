#include <string>

#include "common.h"

namespace {

using I64 = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using F64 = py::array_t<double, py::array::c_style | py::array::forcecast>;

void same_length(py::ssize_t n, py::ssize_t m, const char* name) {
    if (m != n)
        throw py::value_error(std::string("link: ") + name + " has " + std::to_string(m) + " values, frame has " +
                              std::to_string(n));
}

}  // namespace

void bind_link(py::module_& m) {
    py::class_<spotcore::LinkOptions>(m, "LinkOptions", "Options of link (spotcore::LinkOptions).")
        .def(py::init<>())
        .def_readwrite("radius", &spotcore::LinkOptions::radius)
        .def_readwrite("gate", &spotcore::LinkOptions::gate)
        .def_readwrite("max_dark_frames", &spotcore::LinkOptions::max_dark_frames);
    m.def(
        "link",
        [](I64 frame, F64 x, F64 y, py::object var_x, py::object var_y, spotcore::LinkOptions options,
           bool with_events) {
            if (frame.ndim() != 1 || x.ndim() != 1 || y.ndim() != 1) throw py::value_error("link: arrays must be 1D");
            const py::ssize_t n = frame.size();
            same_length(n, x.size(), "x");
            same_length(n, y.size(), "y");
            F64 vx, vy;
            const bool weighted = !var_x.is_none() || !var_y.is_none();
            if (weighted) {
                if (var_x.is_none() || var_y.is_none())
                    throw py::value_error("link: give both var_x and var_y, or neither");
                vx = F64::ensure(var_x);
                vy = F64::ensure(var_y);
                if (!vx || !vy || vx.ndim() != 1 || vy.ndim() != 1) throw py::value_error("link: variances must be 1D");
                same_length(n, vx.size(), "var_x");
                same_length(n, vy.size(), "var_y");
            }
            I64 event(n);
            int64_t n_events = 0;
            spotcore::Result r;
            spotcore::LinkEvents ev;
            {
                py::gil_scoped_release release;
                r = spotcore::link(frame.data(), x.data(), y.data(), weighted ? vx.data() : nullptr,
                                   weighted ? vy.data() : nullptr, int64_t(n), options, event.mutable_data(), &n_events,
                                   with_events ? &ev : nullptr);
            }
            raise_if_failed(r);
            if (!with_events) return py::tuple(py::make_tuple(event, n_events, py::none()));
            py::dict d;
            d["first_frame"] = to_numpy(ev.first_frame);
            d["last_frame"] = to_numpy(ev.last_frame);
            d["count"] = to_numpy(ev.count);
            d["x"] = to_numpy(ev.x);
            d["y"] = to_numpy(ev.y);
            d["var_x"] = to_numpy(ev.var_x);
            d["var_y"] = to_numpy(ev.var_y);
            return py::tuple(py::make_tuple(event, n_events, d));
        },
        py::arg("frame"), py::arg("x"), py::arg("y"), py::arg("var_x"), py::arg("var_y"), py::arg("options"),
        py::arg("events") = false,
        "(event, n_events, events): the event index (n,) int64 of each frame-sorted localization, numbered in "
        "order of first rows; the number of events; with events=True a dict of per-event arrays (first_frame, "
        "last_frame, count, x, y, var_x, var_y), else None.");
}
