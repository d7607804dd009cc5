#include <vector>

#include "common.h"

void bind_fit(py::module_& m) {
    m.def(
        "fit_boxes",
        [](FloatImage boxes, py::object variance, spotcore::FitOptions options) {
            if (boxes.ndim() != 3 || boxes.shape(1) != boxes.shape(2))
                throw py::value_error("fit_boxes: boxes must have shape (n, box, box)");
            FloatImage var;
            const bool has_var = !variance.is_none();
            if (has_var) {
                var = FloatImage::ensure(variance);
                if (!var || var.ndim() != 3 || var.shape(0) != boxes.shape(0) || var.shape(1) != boxes.shape(1) ||
                    var.shape(2) != boxes.shape(2))
                    throw py::value_error("fit_boxes: variance must be None or have the same shape as boxes");
            }
            // The box side is the array's: options.box is ignored (the caller's object is not changed).
            options.box = int32_t(boxes.shape(1));
            const int64_t n = boxes.shape(0);
            std::vector<spotcore::FitResult> res(static_cast<size_t>(n));
            spotcore::Result r;
            {
                py::gil_scoped_release release;
                r = spotcore::fit_boxes(boxes.data(), has_var ? var.data() : nullptr, n, options, res.data());
            }
            raise_if_failed(r);
            py::array_t<FitRecord> out(n);
            auto* rec = out.mutable_data();
            for (int64_t i = 0; i < n; ++i) rec[i] = to_record(res[size_t(i)], 0, 0, 0);
            return out;
        },
        py::arg("boxes"), py::arg("variance"), py::arg("options"),
        "Fit (n, box, box) float32 photon boxes (options.box is taken from the array); returns the FitRecord "
        "structured array, x and y in box coordinates.");
}
