#include <vector>

#include "common.h"

void bind_detect(py::module_& m) {
    m.def(
        "find_local_maxima",
        [](FloatImage filtered, float threshold, float min_distance, int32_t border) {
            if (filtered.ndim() != 2) throw py::value_error("find_local_maxima: image must be 2D");
            std::vector<spotcore::Peak> peaks;
            spotcore::Result r;
            {
                py::gil_scoped_release release;
                r = spotcore::find_local_maxima(filtered.data(), filtered.shape(0), filtered.shape(1), threshold,
                                                min_distance, border, peaks);
            }
            raise_if_failed(r);
            py::array_t<int32_t> pos({py::ssize_t(peaks.size()), py::ssize_t(2)});
            py::array_t<float> val(py::ssize_t(peaks.size()));
            auto p = pos.mutable_unchecked<2>();
            auto v = val.mutable_unchecked<1>();
            for (size_t i = 0; i < peaks.size(); ++i) {
                p(i, 0) = peaks[i].row;
                p(i, 1) = peaks[i].col;
                v(i) = peaks[i].value;
            }
            return py::make_tuple(pos, val);
        },
        py::arg("filtered"), py::arg("threshold"), py::arg("min_distance") = 0.0f, py::arg("border") = 0,
        "Local maxima above threshold: ((n, 2) int32 [row, col], (n,) float32 values).");
}
