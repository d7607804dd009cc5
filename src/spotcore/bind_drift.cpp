// Bindings of the drift-correction loops (spotcore/drift.h); spotfit.postprocess.drift is the user's API.
#include <string>

#include "common.h"

namespace {

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;
using Int64Array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

DoubleArray vector1d(const py::object& o, const char* fn, const char* name) {
    DoubleArray a = DoubleArray::ensure(o);
    if (!a || a.ndim() != 1) throw py::value_error(std::string(fn) + ": " + name + " must be a 1D float array");
    return a;
}

Int64Array index1d(const py::object& o, const char* fn, const char* name) {
    Int64Array a = Int64Array::ensure(o);
    if (!a || a.ndim() != 1) throw py::value_error(std::string(fn) + ": " + name + " must be a 1D integer array");
    return a;
}

struct Points {
    DoubleArray x, y;
    Int64Array starts, ends;
    int64_t n_segments = 0;
};

// x, y and the segment bounds, checked against each other (the core checks them against nothing).
Points points(const py::object& x, const py::object& y, const py::object& starts, const py::object& ends,
              const char* fn) {
    Points p{vector1d(x, fn, "x"), vector1d(y, fn, "y"), index1d(starts, fn, "starts"), index1d(ends, fn, "ends")};
    if (p.x.size() != p.y.size()) throw py::value_error(std::string(fn) + ": x and y must have the same length");
    if (p.starts.size() != p.ends.size())
        throw py::value_error(std::string(fn) + ": starts and ends must have the same length");
    p.n_segments = int64_t(p.starts.size());
    const int64_t* s = p.starts.data();
    const int64_t* e = p.ends.data();
    for (int64_t k = 0; k < p.n_segments; ++k)
        if (s[k] < 0 || e[k] < s[k] || e[k] > int64_t(p.x.size()))
            throw py::value_error(std::string(fn) + ": segment " + std::to_string(k) + " [" + std::to_string(s[k]) +
                                  ", " + std::to_string(e[k]) + ") is outside the " + std::to_string(p.x.size()) +
                                  " points");
    return p;
}

const float* checked_image(const FloatImage& image, const spotcore::DriftGrid& g, const char* fn) {
    raise_if_failed(spotcore::check_drift_grid(g));
    if (image.ndim() != 2 || image.shape(0) != g.ny || image.shape(1) != g.nx)
        throw py::value_error(std::string(fn) + ": image must have shape (grid.ny, grid.nx) = (" +
                              std::to_string(g.ny) + ", " + std::to_string(g.nx) + ")");
    return image.data();
}


}  // namespace

void bind_drift(py::module_& m) {
    py::class_<spotcore::DriftGrid>(m, "DriftGrid")
        .def(py::init<>())
        .def_readwrite("x0", &spotcore::DriftGrid::x0)
        .def_readwrite("y0", &spotcore::DriftGrid::y0)
        .def_readwrite("bin", &spotcore::DriftGrid::bin)
        .def_readwrite("nx", &spotcore::DriftGrid::nx)
        .def_readwrite("ny", &spotcore::DriftGrid::ny);
    py::class_<spotcore::DriftTrackOptions>(m, "DriftTrackOptions")
        .def(py::init<>())
        .def_readwrite("radius", &spotcore::DriftTrackOptions::radius)
        .def_readwrite("coarse_step", &spotcore::DriftTrackOptions::coarse_step)
        .def_readwrite("step", &spotcore::DriftTrackOptions::step)
        .def_readwrite("iterations", &spotcore::DriftTrackOptions::iterations)
        .def_readwrite("drop", &spotcore::DriftTrackOptions::drop);
    py::class_<spotcore::DriftAimOptions>(m, "DriftAimOptions")
        .def(py::init<>())
        .def_readwrite("radius", &spotcore::DriftAimOptions::radius)
        .def_readwrite("coarse_step", &spotcore::DriftAimOptions::coarse_step)
        .def_readwrite("drop", &spotcore::DriftAimOptions::drop)
        .def_readwrite("track_iterations", &spotcore::DriftAimOptions::track_iterations)
        .def_readwrite("bin2", &spotcore::DriftAimOptions::bin2)
        .def_readwrite("margin2", &spotcore::DriftAimOptions::margin2)
        .def_readwrite("max_bins", &spotcore::DriftAimOptions::max_bins)
        .def_readwrite("passes", &spotcore::DriftAimOptions::passes)
        .def_readwrite("iterations", &spotcore::DriftAimOptions::iterations)
        .def_readwrite("coarse_stride", &spotcore::DriftAimOptions::coarse_stride)
        .def_readwrite("travel", &spotcore::DriftAimOptions::travel)
        .def_readwrite("threads", &spotcore::DriftAimOptions::threads)
        .def_readwrite("parallel_points", &spotcore::DriftAimOptions::parallel_points);
    m.attr("max_drift_bins") = py::int_(spotcore::kMaxDriftBins);

    m.def(
        "drift_histogram",
        [](py::object x, py::object y, py::object weights, spotcore::DriftGrid grid) {
            const DoubleArray xa = vector1d(x, "drift_histogram", "x"), ya = vector1d(y, "drift_histogram", "y");
            if (xa.size() != ya.size()) throw py::value_error("drift_histogram: x and y must have the same length");
            DoubleArray wa;
            const double* w = nullptr;
            if (!weights.is_none()) {
                wa = vector1d(weights, "drift_histogram", "weights");
                if (wa.size() != xa.size())
                    throw py::value_error("drift_histogram: weights must have the length of x");
                w = wa.data();
            }
            raise_if_failed(spotcore::check_drift_grid(grid));
            py::array_t<float> image({py::ssize_t(grid.ny), py::ssize_t(grid.nx)});
            float* out = image.mutable_data();
            std::fill(out, out + grid.nx * grid.ny, 0.0f);
            spotcore::Result res;
            {
                py::gil_scoped_release release;
                res = spotcore::drift_histogram(xa.data(), ya.data(), w, int64_t(xa.size()), grid, out);
            }
            raise_if_failed(res);
            return image;
        },
        py::arg("x"), py::arg("y"), py::arg("weights"), py::arg("grid"),
        "Cloud-in-cell histogram (grid.ny, grid.nx) float32 of points x, y (px), weights or None.");

    m.def(
        "drift_stencil",
        [](py::object image, spotcore::DriftGrid grid, py::object x, py::object y, py::object starts, py::object ends,
           py::object centres, double step, int32_t threads) {
            const FloatImage img = FloatImage::ensure(image);
            if (!img) throw py::value_error("drift_stencil: image must be a 2D float array");
            const float* im = checked_image(img, grid, "drift_stencil");
            const Points p = points(x, y, starts, ends, "drift_stencil");
            const DoubleArray c = DoubleArray::ensure(centres);
            if (!c || c.ndim() != 2 || c.shape(0) != p.n_segments || c.shape(1) != 2)
                throw py::value_error("drift_stencil: centres must have shape (segments, 2)");
            py::array_t<double> out({py::ssize_t(p.n_segments), py::ssize_t(13)});
            spotcore::Result res;
            {
                py::gil_scoped_release release;
                res = spotcore::drift_stencil(im, grid, p.x.data(), p.y.data(), p.starts.data(), p.ends.data(),
                                              p.n_segments, c.data(), step, threads, out.mutable_data());
            }
            raise_if_failed(res);
            return out;
        },
        py::arg("image"), py::arg("grid"), py::arg("x"), py::arg("y"), py::arg("starts"), py::arg("ends"),
        py::arg("centres"), py::arg("step"), py::arg("threads"),
        "Per segment (segments, 13): the 3x3 stencil of scores around its centre, sums of gx^2, gx*gy, gy^2, "
        "and the number of its points inside the grid.");

    m.def(
        "drift_track",
        [](py::object image, spotcore::DriftGrid grid, py::object x, py::object y, py::object starts, py::object ends,
           spotcore::DriftTrackOptions options) {
            const FloatImage img = FloatImage::ensure(image);
            if (!img) throw py::value_error("drift_track: image must be a 2D float array");
            const float* im = checked_image(img, grid, "drift_track");
            const Points p = points(x, y, starts, ends, "drift_track");
            raise_if_failed(spotcore::check_drift_track_options(options));
            py::array_t<double> shifts({py::ssize_t(p.n_segments), py::ssize_t(2)});
            py::array_t<double> score(py::ssize_t(p.n_segments));
            spotcore::Result res;
            {
                py::gil_scoped_release release;
                res = spotcore::drift_track(im, grid, p.x.data(), p.y.data(), p.starts.data(), p.ends.data(),
                                            p.n_segments, options, shifts.mutable_data(), score.mutable_data());
            }
            raise_if_failed(res);
            return py::make_tuple(shifts, score);
        },
        py::arg("image"), py::arg("grid"), py::arg("x"), py::arg("y"), py::arg("starts"), py::arg("ends"),
        py::arg("options"),
        "Round 1 of AIM: shifts (segments, 2) px that move each segment onto the reference image, tracked in "
        "time order, and the score per point of each.");

    m.def(
        "drift_rts",
        [](py::object t, py::object m_, py::object r, py::object breaks, double q) {
            const char* fn = "drift_rts";
            const DoubleArray ta = vector1d(t, fn, "t"), ma = vector1d(m_, fn, "m"), ra = vector1d(r, fn, "r");
            using ByteArray = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;
            const ByteArray ba = ByteArray::ensure(breaks);
            const py::ssize_t n = ta.size();
            if (!ba || ba.ndim() != 1 || ma.size() != n || ra.size() != n || ba.size() != n)
                throw py::value_error("drift_rts: t, m, r and breaks must be 1D arrays of one length");
            py::array_t<double> xs(n), ps(n);
            spotcore::Result res;
            {
                py::gil_scoped_release release;
                res = spotcore::drift_rts(ta.data(), ma.data(), ra.data(), ba.data(), int64_t(n), q,
                                          xs.mutable_data(), ps.mutable_data());
            }
            raise_if_failed(res);
            return py::make_tuple(xs, ps);
        },
        py::arg("t"), py::arg("m"), py::arg("r"), py::arg("breaks"), py::arg("q"),
        "Random-walk RTS smoother: (smoothed means, variances); breaks[k] != 0 uncouples k and k + 1.");

    py::class_<spotcore::DriftDensity>(m, "DriftDensity",
                                       "A sparse density image of round 2 of AIM (spotcore::DriftDensity).")
        .def_property_readonly("grid", [](const spotcore::DriftDensity& d) { return d.grid; })
        .def(
            "stencil",
            [](const spotcore::DriftDensity& d, py::object x, py::object y, py::object starts, py::object ends,
               py::object centres, int32_t threads) {
                const Points p = points(x, y, starts, ends, "DriftDensity.stencil");
                const DoubleArray c = DoubleArray::ensure(centres);
                if (!c || c.ndim() != 2 || c.shape(0) != p.n_segments || c.shape(1) != 2)
                    throw py::value_error("DriftDensity.stencil: centres must have shape (segments, 2)");
                py::array_t<double> out({py::ssize_t(p.n_segments), py::ssize_t(13)});
                spotcore::Result res;
                {
                    py::gil_scoped_release release;
                    res = spotcore::drift_density_stencil(d, p.x.data(), p.y.data(), p.starts.data(), p.ends.data(),
                                                          p.n_segments, c.data(), threads, out.mutable_data());
                }
                raise_if_failed(res);
                return out;
            },
            py::arg("x"), py::arg("y"), py::arg("starts"), py::arg("ends"), py::arg("centres"), py::arg("threads"),
            "drift_stencil on this density with a step of one bin: (segments, 13).");

    m.def(
        "drift_aim",
        [](py::object x, py::object y, py::object frame, int64_t ref_end, spotcore::DriftGrid grid1,
           py::object long_starts, py::object long_ends, py::object long_edges, int64_t stride, py::object starts,
           py::object ends, py::object edges, py::object t, spotcore::DriftAimOptions options) {
            const char* fn = "drift_aim";
            const DoubleArray xa = vector1d(x, fn, "x"), ya = vector1d(y, fn, "y"), ta = vector1d(t, fn, "t");
            const Int64Array fa = index1d(frame, fn, "frame");
            const Int64Array ls = index1d(long_starts, fn, "long_starts"), le = index1d(long_ends, fn, "long_ends");
            const Int64Array lg = index1d(long_edges, fn, "long_edges");
            const Int64Array sa = index1d(starts, fn, "starts"), ea = index1d(ends, fn, "ends");
            const Int64Array ga = index1d(edges, fn, "edges");
            const py::ssize_t n = xa.size(), nl = ls.size(), ns = sa.size();
            if (ya.size() != n || fa.size() != n) throw py::value_error("drift_aim: x, y, frame must have one length");
            if (le.size() != nl || lg.size() != nl + 1)
                throw py::value_error("drift_aim: long_ends must have the length of long_starts, long_edges one more");
            if (ea.size() != ns || ga.size() != ns + 1 || ta.size() != ns)
                throw py::value_error("drift_aim: ends and t must have the length of starts, edges one more");
            raise_if_failed(spotcore::check_drift_grid(grid1));
            py::array_t<double> shift({ns, py::ssize_t(2)}), var({ns, py::ssize_t(2)}), xc({n, py::ssize_t(2)});
            spotcore::DriftAimResult res;
            spotcore::Result r;
            {
                py::gil_scoped_release release;
                r = spotcore::drift_aim(xa.data(), ya.data(), fa.data(), int64_t(n), ref_end, grid1, ls.data(),
                                        le.data(), lg.data(), int64_t(nl), stride, sa.data(), ea.data(), ga.data(),
                                        ta.data(), int64_t(ns), options, shift.mutable_data(), var.mutable_data(),
                                        xc.mutable_data(), &res);
            }
            raise_if_failed(r);
            const spotcore::DriftGrid g = res.grid2;
            py::list densities;
            densities.append(py::cast(std::move(res.density[0])));
            densities.append(py::cast(std::move(res.density[1])));
            return py::make_tuple(shift, var, xc, g, densities);
        },
        py::arg("x"), py::arg("y"), py::arg("frame"), py::arg("ref_end"), py::arg("grid1"), py::arg("long_starts"),
        py::arg("long_ends"), py::arg("long_edges"), py::arg("stride"), py::arg("starts"), py::arg("ends"),
        py::arg("edges"), py::arg("t"), py::arg("options"),
        "Both rounds of AIM (spotcore::drift_aim): (shift (segments, 2), var (segments, 2), xc (n, 2): the points "
        "corrected by round 1, grid2, "
        "[density0, density1]) (DriftDensity: each fold's, sparse).");
}
