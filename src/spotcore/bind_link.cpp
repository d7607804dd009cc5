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

F64 column(const py::handle& values, py::ssize_t n, const char* name) {
    F64 a = F64::ensure(values);
    if (!a || a.ndim() != 1) throw py::value_error(std::string("link: ") + name + " must be 1D numbers");
    same_length(n, a.size(), name);
    return a;
}

// A column as a numpy array without a copy (the array owns the moved vector).
template <typename T>
py::array_t<T> adopt(spotcore::EventColumn<T>&& v) {
    auto* owner = new spotcore::EventColumn<T>(std::move(v));
    py::capsule free_when_done(owner, [](void* p) { delete static_cast<spotcore::EventColumn<T>*>(p); });
    return py::array_t<T>(py::ssize_t(owner->size()), owner->data(), free_when_done);
}

}  // namespace

void bind_link(py::module_& m) {
    py::class_<spotcore::LinkOptions>(m, "LinkOptions", "Options of link (spotcore::LinkOptions).")
        .def(py::init<>())
        .def_readwrite("radius", &spotcore::LinkOptions::radius)
        .def_readwrite("gate", &spotcore::LinkOptions::gate)
        .def_readwrite("max_dark_frames", &spotcore::LinkOptions::max_dark_frames)
        .def_readwrite("threads", &spotcore::LinkOptions::threads);
    m.def(
        "link",
        [](I64 frame, F64 x, F64 y, py::object sd_x, py::object sd_y, spotcore::LinkOptions options,
           bool with_events, bool labels, py::sequence sum_of) {
            if (frame.ndim() != 1 || x.ndim() != 1 || y.ndim() != 1) throw py::value_error("link: arrays must be 1D");
            const py::ssize_t n = frame.size();
            same_length(n, x.size(), "x");
            same_length(n, y.size(), "y");
            F64 ux, uy;
            const bool weighted = !sd_x.is_none() || !sd_y.is_none();
            if (weighted) {
                if (sd_x.is_none() || sd_y.is_none()) throw py::value_error("link: give both sd_x and sd_y, or neither");
                ux = column(sd_x, n, "sd_x");
                uy = column(sd_y, n, "sd_y");
            }
            if (!with_events && !labels) throw py::value_error("link: ask for events, labels or both");
            if (sum_of.size() > 0 && !with_events) throw py::value_error("link: sum_of needs events=True");
            std::vector<F64> sums;
            std::vector<const double*> sum_ptr;
            for (py::handle c : sum_of) {
                sums.push_back(column(c, n, "a sum_of column"));
                sum_ptr.push_back(sums.back().data());
            }
            spotcore::LinkRows rows;
            rows.frame = frame.data();
            rows.x = x.data();
            rows.y = y.data();
            rows.sd_x = weighted ? ux.data() : nullptr;
            rows.sd_y = weighted ? uy.data() : nullptr;
            rows.n = int64_t(n);
            rows.sum_of = sum_ptr.data();
            rows.n_sums = int(sum_ptr.size());
            I64 event = labels ? I64(n) : I64();
            int64_t n_events = 0;
            spotcore::Result r;
            spotcore::LinkEvents ev;
            {
                py::gil_scoped_release release;
                r = spotcore::link(rows, options, labels ? event.mutable_data() : nullptr, &n_events,
                                   with_events ? &ev : nullptr);
            }
            raise_if_failed(r);
            py::object labels_out = labels ? py::object(event) : py::none();
            if (!with_events) return py::tuple(py::make_tuple(labels_out, n_events, py::none()));
            py::dict d;
            d["first_frame"] = adopt(std::move(ev.first_frame));
            d["last_frame"] = adopt(std::move(ev.last_frame));
            d["count"] = adopt(std::move(ev.count));
            d["x"] = adopt(std::move(ev.x));
            d["y"] = adopt(std::move(ev.y));
            d["sd_x"] = adopt(std::move(ev.sd_x));
            d["sd_y"] = adopt(std::move(ev.sd_y));
            py::list s;
            for (spotcore::EventColumn<double>& v : ev.sums) s.append(adopt(std::move(v)));
            d["sums"] = s;
            return py::tuple(py::make_tuple(labels_out, n_events, d));
        },
        py::arg("frame"), py::arg("x"), py::arg("y"), py::arg("sd_x"), py::arg("sd_y"), py::arg("options"),
        py::arg("events") = false, py::arg("labels") = true, py::arg("sum_of") = py::tuple(),
        "(event, n_events, events) of frame-sorted localizations with uncertainties sd_x, sd_y (px) or None: "
        "the event index (n,) int64 of each localization, numbered in "
        "order of first rows (with labels=True, else None); the number of events; with events=True a dict of "
        "per-event arrays (first_frame, last_frame, count, x, y, sd_x, sd_y, and sums: one array per sum_of "
        "column, its sum over each event's rows), else None.");
}
