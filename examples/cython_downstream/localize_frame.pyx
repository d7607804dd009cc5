# distutils: language = c++
# cython: language_level=3
"""A downstream extension that calls spotfit's C++ core directly: no Python objects, no GIL.

Build it against an installed spotfit with the meson.build next to this file (see docs/cython.md).
"""
from libc.stdint cimport uint16_t
from libcpp.vector cimport vector

from spotfit.spotcore cimport (Camera, Estimator, ImageStack, LocalizeOptions, Localization, Model,
                               PixelType, Result, ThresholdMode, localize)

import numpy as np


def localize_frame(const uint16_t[:, ::1] frame, double baseline=100.0, double sensitivity=1.0,
                   float psf_sigma=1.3, int box=7, float threshold=1.5, int threads=0):
    """Localize the spots of one uint16 camera frame (ADU); MLE fit of a symmetric Gaussian.

    Returns a dict of 1-D arrays (one entry per spot, in the core's order: peak raster order):
    x, y (pixels, centre of pixel (0, 0) at (0, 0)), photons, background, sigma, uncertainty_x,
    status (codes into spotfit.FIT_STATUS), peak_row, peak_col.
    """
    cdef ImageStack stack
    stack.data = &frame[0, 0]
    stack.type = PixelType.u16
    stack.frames = 1
    stack.rows = frame.shape[0]
    stack.cols = frame.shape[1]
    stack.stride_frame = frame.shape[0] * frame.strides[0]
    stack.stride_row = frame.strides[0]
    stack.stride_col = frame.strides[1]

    cdef Camera camera          # defaults: no gain, qe 1, no sCMOS maps
    camera.baseline = baseline
    camera.sensitivity = sensitivity

    cdef LocalizeOptions options
    options.detect.mode = ThresholdMode.std_w1
    options.detect.threshold = threshold
    options.fit.model = Model.gauss
    options.fit.estimator = Estimator.mle
    options.fit.box = box
    options.fit.psf_sigma = psf_sigma
    options.fit.threads = threads

    cdef vector[Localization] found
    cdef Result result
    with nogil:
        result = localize(stack, camera, options, 0, found)
    if not result.ok():
        raise ValueError(result.message.decode())

    cdef Py_ssize_t i, n = found.size()
    out = {name: np.empty(n, np.float32) for name in
           ("x", "y", "photons", "background", "sigma", "uncertainty_x")}
    out.update(status=np.empty(n, np.int32), peak_row=np.empty(n, np.int32), peak_col=np.empty(n, np.int32))
    cdef float[::1] x = out["x"], y = out["y"], ph = out["photons"], bg = out["background"]
    cdef float[::1] sig = out["sigma"], ux = out["uncertainty_x"]
    cdef int[::1] st = out["status"], pr = out["peak_row"], pc = out["peak_col"]
    for i in range(n):
        x[i] = found[i].fit.x
        y[i] = found[i].fit.y
        ph[i] = found[i].fit.photons
        bg[i] = found[i].fit.background
        sig[i] = found[i].fit.sigma_x
        ux[i] = found[i].fit.crlb_x
        st[i] = <int>found[i].fit.status
        pr[i] = found[i].peak_row
        pc[i] = found[i].peak_col
    return out
