// spotfit._spotcore: thin pybind11 bindings of the C++ core (no algorithms here).
#include "common.h"

PYBIND11_MODULE(_spotcore, m) {
    m.doc() = "Private bindings of the spotcore C++ core; use the public spotfit API instead.";
    PYBIND11_NUMPY_DTYPE(FitRecord, frame, peak_row, peak_col, x, y, photons, background, sigma_x, sigma_y,
                         uncertainty_x, uncertainty_y, uncertainty_photons, uncertainty_background,
                         uncertainty_sigma_x, uncertainty_sigma_y, loglik, chi2, iterations, status, z, uncertainty_z);
    py::enum_<spotcore::FitStatus>(m, "FitStatus")
        .value("converged", spotcore::FitStatus::converged)
        .value("max_iterations", spotcore::FitStatus::max_iterations)
        .value("singular", spotcore::FitStatus::singular)
        .value("out_of_box", spotcore::FitStatus::out_of_box)
        .value("not_fitted", spotcore::FitStatus::not_fitted)
        .value("unreliable", spotcore::FitStatus::unreliable)
        .value("z_out_of_range", spotcore::FitStatus::z_out_of_range);
    py::enum_<spotcore::Model>(m, "Model")
        .value("fixed_sigma", spotcore::Model::fixed_sigma)
        .value("gauss", spotcore::Model::gauss)
        .value("elliptical", spotcore::Model::elliptical)
        .value("astigmatic", spotcore::Model::astigmatic);
    py::enum_<spotcore::Estimator>(m, "Estimator")
        .value("lsq", spotcore::Estimator::lsq)
        .value("mle", spotcore::Estimator::mle);
    // The pixel types the core reads without a copy (spotfit.registry.PIXEL_DTYPES derives from it).
    py::enum_<spotcore::PixelType>(m, "PixelType")
        .value("u8", spotcore::PixelType::u8)
        .value("u16", spotcore::PixelType::u16)
        .value("i16", spotcore::PixelType::i16)
        .value("u32", spotcore::PixelType::u32)
        .value("i32", spotcore::PixelType::i32)
        .value("f32", spotcore::PixelType::f32)
        .value("f64", spotcore::PixelType::f64);
    py::enum_<spotcore::ThresholdMode>(m, "ThresholdMode")
        .value("std_w1", spotcore::ThresholdMode::std_w1)
        .value("absolute", spotcore::ThresholdMode::absolute);
    m.def("version", &spotcore::version, "Version of the core (meson.build's project version).");
#ifdef _OPENMP
    m.attr("has_openmp") = true;
#else
    m.attr("has_openmp") = false;
#endif
    m.attr("max_threads") = py::int_(spotcore::kMaxThreads);
    bind_options(m);  // before the functions whose signatures name the option classes
    bind_camera(m);
    bind_filter(m);
    bind_detect(m);
    bind_fit(m);
    bind_boxes(m);
    bind_localize(m);
    bind_drift(m);
    bind_link(m);
    bind_multi(m);
    bind_frame_fit(m);
}
