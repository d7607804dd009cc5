#include <vector>

#include "common.h"

void bind_fit(py::module_& m) {
    m.def(
        "fit_boxes",
        [](FloatImage boxes, py::object variance, spotcore::Model model, spotcore::Estimator estimator,
           float psf_sigma, int32_t max_iterations, float tolerance, int32_t threads) {
            if (boxes.ndim() != 3 || boxes.shape(1) != boxes.shape(2))
                throw py::value_error("fit_boxes: boxes must have shape (n, box, box)");
            FloatImage var;
            const bool has_var = !variance.is_none();
            if (has_var) {
                var = FloatImage::ensure(variance);
                if (!var || var.ndim() != 3 || var.shape(0) != boxes.shape(0) || var.shape(1) != boxes.shape(1) ||
                    var.shape(2) != boxes.shape(2))
                    throw py::value_error("fit_boxes: variance must have the same shape as boxes");
            }
            spotcore::FitOptions o;
            o.model = model;
            o.estimator = estimator;
            o.box = int32_t(boxes.shape(1));
            o.psf_sigma = psf_sigma;
            o.max_iterations = max_iterations;
            o.tolerance = tolerance;
            o.threads = threads;
            const int64_t n = boxes.shape(0);
            std::vector<spotcore::FitResult> res(static_cast<size_t>(n));
            spotcore::Result r;
            {
                py::gil_scoped_release release;
                r = spotcore::fit_boxes(boxes.data(), has_var ? var.data() : nullptr, n, o, res.data());
            }
            raise_if_failed(r);
            py::array_t<FitRecord> out(n);
            auto* rec = out.mutable_data();
            for (int64_t i = 0; i < n; ++i) rec[i] = to_record(res[size_t(i)], 0, 0, 0);
            return out;
        },
        py::arg("boxes"), py::arg("variance") = py::none(), py::arg("model") = spotcore::Model::gauss,
        py::arg("estimator") = spotcore::Estimator::mle, py::arg("psf_sigma") = 1.3f,
        py::arg("max_iterations") = 30, py::arg("tolerance") = 1e-3f, py::arg("threads") = 0,
        "Fit (n, box, box) float32 photon boxes; returns a structured array (box coordinates).");
}
