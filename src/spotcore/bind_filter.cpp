#include <vector>

#include "common.h"

void bind_filter(py::module_& m) {
    m.def(
        "wavelet_filter",
        [](FloatImage image) {
            if (image.ndim() != 2) throw py::value_error("wavelet_filter: image must be 2D");
            const int64_t rows = image.shape(0), cols = image.shape(1);
            FloatImage w1({rows, cols}), w2({rows, cols});
            std::vector<float> scratch(size_t(2 * rows * cols));
            spotcore::Result r;
            {
                py::gil_scoped_release release;
                r = spotcore::wavelet_filter(image.data(), rows, cols, w1.mutable_data(), w2.mutable_data(),
                                             scratch.data());
            }
            raise_if_failed(r);
            return py::make_tuple(w1, w2);
        },
        py::arg("image"), "Wavelet planes (W1, W2) of a float32 image.");
}
