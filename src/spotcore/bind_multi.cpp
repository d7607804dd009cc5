// Multi-emitter fitting (spotcore/multi.h): options, one-region fits and the fused localize_multi.
#include <vector>

#include "common.h"
#include "spotcore/frame_fit.h"

namespace {

// (FitRecord array, group int64, n_in_group int32) of multi-emitter rows.
py::tuple multi_rows(const std::vector<spotcore::MultiLocalization>& locs) {
    py::array_t<FitRecord> out(py::ssize_t(locs.size()));
    py::array_t<int64_t> group(py::ssize_t(locs.size()));
    py::array_t<int32_t> n_in_group(py::ssize_t(locs.size()));
    auto* rec = out.mutable_data();
    auto* g = group.mutable_data();
    auto* n = n_in_group.mutable_data();
    for (size_t i = 0; i < locs.size(); ++i) {
        const auto& l = locs[i].loc;
        rec[i] = to_record(l.fit, l.frame, l.peak_row, l.peak_col);
        g[i] = locs[i].group;
        n[i] = locs[i].n_in_group;
    }
    return py::make_tuple(out, group, n_in_group);
}

}  // namespace

void bind_multi(py::module_& m) {
    using spotcore::MultiOptions;
    py::class_<MultiOptions> o(m, "MultiOptions", "Multi-emitter fitting: model selection and residual re-detection.");
    o.def(py::init<>())
        .def_readwrite("max_emitters", &MultiOptions::max_emitters, "emitters per region, 1..10 (1: single-emitter)")
        .def_readwrite("p_value", &MultiOptions::p_value, "LR test level to keep a larger model")
        .def_readwrite("cycles", &MultiOptions::cycles, "residual re-detection cycles, 0..10")
        .def_readwrite("redetect_factor", &MultiOptions::redetect_factor, "residual threshold / first threshold")
        .def_readwrite("merge_distance", &MultiOptions::merge_distance, "drop the dimmer of two emitters closer than "
                       "this x psf_sigma");
    m.attr("MAX_EMITTERS") = spotcore::kMaxEmitters;
    m.def(
        "localize_multi",
        [](py::array stack, py::object camera, spotcore::LocalizeOptions options, MultiOptions multi,
           int64_t first_frame) {
            const spotcore::ImageStack s = stack_view(stack, "localize_multi");
            const CameraArgs c = camera_args(camera, s, "localize_multi");
            std::vector<spotcore::MultiLocalization> locs;
            spotcore::Result r;
            {
                py::gil_scoped_release release;
                r = spotcore::localize_multi(s, c.cam, options, multi, first_frame, locs);
            }
            raise_if_failed(r);
            return multi_rows(locs);
        },
        py::arg("stack"), py::arg("camera"), py::arg("options"), py::arg("multi"), py::arg("first_frame"),
        "localize with multi-emitter fits: (FitRecord array, group int64 (unique within the call), n_in_group int32).");
    m.def(
        "fit_starts",
        [](py::array stack, py::object camera, spotcore::LocalizeOptions options, py::array frame, py::array x,
           py::array y, spotcore::StartsOptions starts, int64_t first_frame) {
            const spotcore::ImageStack s = stack_view(stack, "fit_starts");
            const CameraArgs c = camera_args(camera, s, "fit_starts");
            const auto fr = py::array_t<int64_t, py::array::c_style | py::array::forcecast>::ensure(frame);
            const auto xs = FloatImage::ensure(x), ys = FloatImage::ensure(y);
            if (!fr || !xs || !ys) throw py::value_error("fit_starts: frame, x and y must be numeric arrays");
            if (fr.ndim() != 1 || xs.ndim() != 1 || ys.ndim() != 1)
                throw py::value_error("fit_starts: frame, x and y must be 1D arrays");
            if (xs.shape(0) != fr.shape(0) || ys.shape(0) != fr.shape(0))
                throw py::value_error("fit_starts: frame, x and y must have the same length");
            std::vector<spotcore::MultiLocalization> locs;
            spotcore::Result r;
            {
                py::gil_scoped_release release;
                r = spotcore::fit_starts(s, c.cam, options, fr.data(), xs.data(), ys.data(), int64_t(fr.shape(0)), starts,
                                         first_frame, locs);
            }
            raise_if_failed(r);
            return multi_rows(locs);
        },
        py::arg("stack"), py::arg("camera"), py::arg("options"), py::arg("frame"), py::arg("x"), py::arg("y"),
        py::arg("starts"), py::arg("first_frame"),
        "Joint fit of every frame's given starts (frame: absolute, non-decreasing; x, y: image pixels): "
        "(FitRecord array, group int64, n_in_group int32), as localize_multi.");
    m.def(
        "fit_region",
        [](FloatImage region, py::object offset, spotcore::FitOptions fit, MultiOptions multi, FloatImage starts) {
            if (region.ndim() != 2 || region.shape(0) != region.shape(1))
                throw py::value_error("region must be a square 2D array");
            if (starts.ndim() != 2 || starts.shape(1) != 3 || starts.shape(0) < 1)
                throw py::value_error("starts must have shape (k, 3): x, y, photons");
            const int S = int(region.shape(0));
            FloatImage off;
            const float* op = nullptr;
            if (!offset.is_none()) {
                off = FloatImage::ensure(offset);
                if (!off || off.ndim() != 2 || off.shape(0) != S || off.shape(1) != S)
                    throw py::value_error("offset must have the region's shape");
                op = off.data();
            }
            std::vector<spotcore::Emitter> st(size_t(starts.shape(0)));
            for (size_t k = 0; k < st.size(); ++k)
                st[k] = spotcore::Emitter{starts.at(k, 0), starts.at(k, 1), starts.at(k, 2)};
            spotcore::RegionFit rf;
            spotcore::Result r;
            {
                py::gil_scoped_release release;
                r = spotcore::fit_region(region.data(), op, S, fit, multi, st.data(), int32_t(st.size()), rf);
            }
            raise_if_failed(r);
            const py::ssize_t k = py::ssize_t(rf.emitters.size());
            py::array_t<float> params({k, py::ssize_t(6)});
            py::array_t<int32_t> status(k);
            for (py::ssize_t i = 0; i < k; ++i) {
                const auto& e = rf.emitters[size_t(i)];
                const float v[6] = {e.x, e.y, e.photons, e.crlb_x, e.crlb_y, e.crlb_photons};
                for (int j = 0; j < 6; ++j) params.mutable_at(i, j) = v[j];
                status.mutable_at(i) = int32_t(e.status);
            }
            py::dict d;
            d["emitters"] = params;
            d["status"] = status;
            d["background"] = rf.background;
            d["crlb_background"] = rf.crlb_background;
            d["loglik"] = rf.loglik;
            d["chi2"] = rf.chi2;
            d["iterations"] = rf.iterations;
            return d;
        },
        py::arg("region"), py::arg("offset"), py::arg("fit"), py::arg("multi"), py::arg("starts"),
        "Model selection in one region: dict with emitters (k, 6: x, y, photons, crlb_x, crlb_y, crlb_photons), "
        "status (k,), background, crlb_background, loglik, chi2, iterations.");
}
