// Joint fits of a frame's given starts (spotcore/frame_fit.h): options and the one-frame fit.
#include "spotcore/frame_fit.h"

#include "common.h"

void bind_frame_fit(py::module_& m) {
    using spotcore::StartsOptions;
    py::class_<StartsOptions>(m, "StartsOptions", "Joint fit of a frame's given starts (a detector's proposals).")
        .def(py::init<>())
        .def_readwrite("max_iterations", &StartsOptions::max_iterations, "Levenberg-Marquardt iterations, 1..1000")
        .def_readwrite("tolerance", &StartsOptions::tolerance, "stop when the cost falls by less than this fraction")
        .def_readwrite("window", &StartsOptions::window, "px each side of an emitter's pixel in its model, 1..16")
        .def_readwrite("cg_iterations", &StartsOptions::cg_iterations, "conjugate-gradient steps per iteration, 1..200")
        .def_readwrite("warmup", &StartsOptions::warmup, "first iterations with positions held, 0..100")
        .def_readwrite("max_shift", &StartsOptions::max_shift, "px an emitter may move from its start (0: held)")
        .def_readwrite("prior_sigma", &StartsOptions::prior_sigma, "px, width of the prior around each start (0: none)")
        .def_readwrite("crlb_radius", &StartsOptions::crlb_radius, "px: neighbours entering an emitter's bound")
        .def_readwrite("min_photons", &StartsOptions::min_photons, "emitters fitted below this give no row");
    m.def(
        "fit_frame",
        [](FloatImage frame, double psf_sigma, FloatImage x, FloatImage y, StartsOptions o) {
            if (frame.ndim() != 2) throw py::value_error("fit_frame: frame must be 2D");
            if (x.ndim() != 1 || y.ndim() != 1 || x.shape(0) != y.shape(0))
                throw py::value_error("fit_frame: x and y must be 1D arrays of one length");
            spotcore::FrameFit f;
            spotcore::Result r;
            {
                py::gil_scoped_release release;
                r = spotcore::fit_frame(frame.data(), frame.shape(0), frame.shape(1), psf_sigma, x.data(), y.data(),
                                        x.shape(0), o, f);
            }
            raise_if_failed(r);
            const py::ssize_t k = py::ssize_t(f.emitters.size());
            py::array_t<float> params({k, py::ssize_t(7)});
            for (py::ssize_t i = 0; i < k; ++i) {
                const auto& e = f.emitters[size_t(i)];
                const float v[7] = {e.x, e.y, e.photons, e.crlb_x, e.crlb_y, e.crlb_photons, e.crlb_background};
                for (int j = 0; j < 7; ++j) params.mutable_at(i, j) = v[j];
            }
            py::dict d;
            d["emitters"] = params;
            d["background"] = f.background;
            d["chi2"] = f.chi2;
            d["iterations"] = f.iterations;
            d["converged"] = f.converged;
            py::array_t<bool> empty(k);
            for (py::ssize_t i = 0; i < k; ++i) empty.mutable_at(i) = f.emitters[size_t(i)].empty;
            d["empty"] = empty;
            return d;
        },
        py::arg("frame"), py::arg("psf_sigma"), py::arg("x"), py::arg("y"), py::arg("options"),
        "Joint fit of one frame's starts (photons): dict emitters (n, 7: x, y, photons, crlb x, y, photons, "
        "background), background, chi2, iterations, converged, empty (n: photons below min_photons).");
}
