// Whole-frame joint fit from given starts (spotcore/frame_fit.h).
#include "spotcore/frame_fit.h"

#include "common.h"

void bind_frame_fit(py::module_& m) {
    using spotcore::FrameFitOptions;
    py::class_<FrameFitOptions>(m, "FrameFitOptions", "Whole-frame joint fit: options.")
        .def(py::init<>())
        .def_readwrite("psf_sigma", &FrameFitOptions::psf_sigma)
        .def_readwrite("max_iterations", &FrameFitOptions::max_iterations)
        .def_readwrite("tolerance", &FrameFitOptions::tolerance)
        .def_readwrite("window", &FrameFitOptions::window)
        .def_readwrite("warmup", &FrameFitOptions::warmup)
        .def_readwrite("max_shift", &FrameFitOptions::max_shift)
        .def_readwrite("cg_iterations", &FrameFitOptions::cg_iterations)
        .def_readwrite("prior_sigma", &FrameFitOptions::prior_sigma)
        .def_readwrite("crlb_radius", &FrameFitOptions::crlb_radius);
    m.def(
        "fit_frame",
        [](FloatImage frame, FloatImage x, FloatImage y, FrameFitOptions o) {
            if (frame.ndim() != 2) throw py::value_error("frame must be 2D");
            if (x.ndim() != 1 || y.ndim() != 1 || x.shape(0) != y.shape(0))
                throw py::value_error("x and y must be 1D arrays of one length");
            spotcore::FrameFit f;
            spotcore::Result r;
            {
                py::gil_scoped_release release;
                r = spotcore::fit_frame(frame.data(), frame.shape(0), frame.shape(1), x.data(), y.data(), x.shape(0), o,
                                        f);
            }
            raise_if_failed(r);
            const py::ssize_t k = py::ssize_t(f.emitters.size());
            py::array_t<float> params({k, py::ssize_t(6)});
            for (py::ssize_t i = 0; i < k; ++i) {
                const auto& e = f.emitters[size_t(i)];
                const float v[6] = {e.x, e.y, e.photons, e.crlb_x, e.crlb_y, e.crlb_photons};
                for (int j = 0; j < 6; ++j) params.mutable_at(i, j) = v[j];
            }
            py::dict d;
            d["emitters"] = params;
            d["background"] = f.background;
            d["chi2"] = f.chi2;
            d["iterations"] = f.iterations;
            d["converged"] = f.converged;
            return d;
        },
        py::arg("frame"), py::arg("x"), py::arg("y"), py::arg("options"),
        "Joint fit of all starts of one frame (photons): dict emitters (n, 6: x, y, photons, crlb x, y, photons), "
        "background, chi2, iterations, converged.");
}
