# cython: language_level=3, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled hot loops of the Python layer (private; called by render.py and ml/regress.py).

Each kernel has a plain numpy reference in tests/test_cython.py that it must match. Inputs are checked
by the Python callers (shapes, dtypes, contiguity); the kernels check only what their indexing needs.
``boundscheck(False)`` is set per function, only where every index is proven in range (comments say
why). Results never depend on the thread count: each output element has a single writer and sums
run in a fixed order.
"""
cimport cython
from cython.parallel cimport prange
from libc.math cimport erf, exp, fabs, copysign, floor, ceil, sqrt, fmax
from libc.stdint cimport int64_t, uint8_t, int32_t
from libc.stdlib cimport malloc, calloc, free
from libc.string cimport memset

import numpy as np

cdef double SQRT1_2 = 0.7071067811865476


def _nthreads(threads):
    """OpenMP thread count for prange: spotfit's one thread policy (spotfit._shared.threads)."""
    from spotfit._shared.threads import count
    return count(threads)


# ----------------------------------------------------------------------------------------- render
@cython.boundscheck(False)
def histogram(const double[::1] u, const double[::1] v, Py_ssize_t height, Py_ssize_t width):
    """Count points per pixel: point (u, v) in rendered pixels lands in ``img[floor(v), floor(u)]``.

    Points with a non-finite coordinate or outside ``[0, width) x [0, height)`` are skipped.
    Returns float32 (height, width); counts are exact up to 2**24 per pixel.
    Serial: a scatter into one image is memory bound, and per-thread images would cost more to
    allocate and sum than the loop itself.
    """
    if u.shape[0] != v.shape[0]:
        raise ValueError("u and v must have the same length")
    if height < 1 or width < 1:
        raise ValueError("image must have at least one pixel")
    out = np.zeros((height, width), np.float32)
    cdef float[:, ::1] img = out
    cdef Py_ssize_t i, n = u.shape[0]
    cdef double x, y
    with nogil:
        for i in range(n):
            x = u[i]
            y = v[i]
            # NaN fails both comparisons; 0 <= x < width implies 0 <= (int)x <= width - 1.
            if x >= 0 and x < width and y >= 0 and y < height:
                img[<Py_ssize_t>y, <Py_ssize_t>x] += 1.0
    return out


# erf by cubic Hermite interpolation of a table (erf and its derivative 2/sqrt(pi) exp(-x^2) at
# spacing 1/64 on [0, 6]): error < 1e-9, no libm call per pixel edge (libm erf was ~45% of splatting).
cdef enum:
    ERF_STEPS = 64
    ERF_TABLE = 6 * 64 + 2
cdef double _erf_value[ERF_TABLE]
cdef double _erf_slope[ERF_TABLE]


cdef void _fill_erf_table() noexcept:
    cdef int i
    cdef double x
    for i in range(ERF_TABLE):
        x = <double>i / ERF_STEPS
        _erf_value[i] = erf(x)
        _erf_slope[i] = 1.1283791670955126 * exp(-x * x) / ERF_STEPS   # per table step


_fill_erf_table()


cdef inline double _erf(double x) noexcept nogil:
    """erf(x) for finite x, from the table (|x| >= 6: erf = +-1 to double precision)."""
    cdef double ax = fabs(x)
    if ax >= 6.0:
        return copysign(1.0, x)
    cdef double t = ax * ERF_STEPS
    cdef int i = <int>t              # 0 <= i <= 383, i + 1 < ERF_TABLE
    cdef double f = t - i
    cdef double y0 = _erf_value[i], dy = _erf_value[i + 1] - y0
    cdef double d0 = _erf_slope[i], d1 = _erf_slope[i + 1]
    return copysign(y0 + f * (d0 + f * (3.0 * dy - 2.0 * d0 - d1 + f * (d0 + d1 - 2.0 * dy))), x)


cdef inline void _weights(double c, double s, Py_ssize_t first, Py_ssize_t k, double* w) noexcept nogil:
    """Pixel-integrated Gaussian (centre c, std s) over pixels first..first+k-1, normalised to sum 1."""
    cdef Py_ssize_t j
    cdef double scale = SQRT1_2 / s
    cdef double lo = _erf((first - c) * scale), hi, total = 0.0
    for j in range(k):
        hi = _erf((first + j + 1 - c) * scale)
        w[j] = 0.5 * (hi - lo)
        total += w[j]
        lo = hi
    if total > 0:
        for j in range(k):
            w[j] /= total


@cython.boundscheck(False)
def gaussian(const double[::1] u, const double[::1] v, const double[::1] s, Py_ssize_t height,
             Py_ssize_t width, threads=None, Py_ssize_t band=64):
    """Splat each point as a pixel-integrated Gaussian of its own width ``s`` (rendered pixels).

    Each point's window spans ``+-ceil(3 s)`` pixels around ``floor(u)``, ``floor(v)`` and holds unit
    mass (the weights are normalised over the window, as render's numpy version). Points with a
    non-finite coordinate or a centre outside the image are skipped; window pixels outside the image
    are dropped. ``s`` must be finite and > 0 (render clips it). Returns float32 (height, width),
    summed in float64.

    Parallel over horizontal bands of ``band`` rows: every point is listed under each band its window
    touches (in point order), and one thread owns a band (summed in a float64 buffer of the band's
    size, then written as float32), so there is no race and every pixel sums its points in point
    order for any thread count.
    """
    cdef Py_ssize_t n = u.shape[0]
    if v.shape[0] != n or s.shape[0] != n:
        raise ValueError("u, v and s must have the same length")
    if height < 1 or width < 1 or band < 1:
        raise ValueError("image must have at least one pixel and band >= 1")
    cdef Py_ssize_t nb = (height + band - 1) // band
    count_arr = np.zeros(nb + 1, np.int64)
    cdef int64_t[::1] count = count_arr
    cdef int32_t[::1] radius = np.full(n, -1, np.int32)
    cdef Py_ssize_t i, b, b0, b1, maxr = 0
    cdef double x, y, si
    cdef int r
    with nogil:
        for i in range(n):
            x = u[i]
            y = v[i]
            si = s[i]
            if x >= 0 and x < width and y >= 0 and y < height and si > 0 and si < 1e6:
                r = <int>ceil(3.0 * si)
                radius[i] = r
                if r > maxr:
                    maxr = r
                b0 = (<Py_ssize_t>y - r) // band if <Py_ssize_t>y >= r else 0
                b1 = min((<Py_ssize_t>y + r) // band, nb - 1)
                for b in range(b0, b1 + 1):
                    count[b + 1] += 1
        for b in range(nb):
            count[b + 1] += count[b]
    # Each band's points copied in point order (sequential reads in the splat loop).
    cdef _Point* points = <_Point*>malloc(max(count[nb], 1) * sizeof(_Point))
    if points == NULL:
        raise MemoryError("gaussian rendering: out of memory for the point lists")
    cdef int64_t[::1] fill = count_arr[:nb].copy()
    out = np.empty((height, width), np.float32)
    cdef float[:, ::1] img = out
    cdef int nt = _nthreads(threads)
    cdef Py_ssize_t k = 2 * maxr + 1
    cdef bint failed = False
    try:
        with nogil:
            for i in range(n):
                r = radius[i]
                if r >= 0:
                    b0 = (<Py_ssize_t>v[i] - r) // band if <Py_ssize_t>v[i] >= r else 0
                    b1 = min((<Py_ssize_t>v[i] + r) // band, nb - 1)
                    for b in range(b0, b1 + 1):
                        points[fill[b]].u = u[i]
                        points[fill[b]].v = v[i]
                        points[fill[b]].s = s[i]
                        points[fill[b]].r = r
                        fill[b] += 1
        for b in prange(nb, nogil=True, schedule="dynamic", num_threads=nt):
            if not _splat_band(points + count[b], count[b + 1] - count[b], b * band,
                               min((b + 1) * band, height), img, k):
                failed = True
    finally:
        free(points)
    if failed:
        raise MemoryError("gaussian rendering: out of memory for a band buffer")
    return out


cdef struct _Point:
    double u
    double v
    double s
    Py_ssize_t r


@cython.boundscheck(False)
cdef bint _splat_band(const _Point* points, int64_t npoints, Py_ssize_t row0, Py_ssize_t row1,
                      float[:, ::1] img, Py_ssize_t kmax) noexcept nogil:
    # Rows are clipped to [row0, row1) (a band inside the image) and columns to [0, width), so every
    # acc index is in range; wx/wy have kmax >= 2r + 1 slots.
    cdef Py_ssize_t width = img.shape[1]
    cdef Py_ssize_t rows = row1 - row0
    cdef double* acc = <double*>calloc(rows * width + 2 * kmax, sizeof(double))
    if acc == NULL:
        return False
    cdef double* wx = acc + rows * width
    cdef double* wy = wx + kmax
    cdef double* line
    cdef int64_t m
    cdef Py_ssize_t r, k, fx, fy, a, a0, a1, c0, c1, j
    cdef double wya
    for m in range(npoints):
        r = points[m].r
        k = 2 * r + 1
        fx = <Py_ssize_t>points[m].u - r
        fy = <Py_ssize_t>points[m].v - r
        _weights(points[m].u, points[m].s, fx, k, wx)
        _weights(points[m].v, points[m].s, fy, k, wy)
        a0 = max(row0 - fy, 0)
        a1 = min(row1 - fy, k)
        c0 = max(-fx, 0)
        c1 = min(width - fx, k)
        for a in range(a0, a1):
            wya = wy[a]
            line = acc + (fy + a - row0) * width + fx
            for j in range(c0, c1):
                line[j] += wya * wx[j]
    for a in range(rows):
        for j in range(width):
            img[row0 + a, j] = <float>acc[a * width + j]
    free(acc)
    return True


# ---------------------------------------------------------------------------------- normalization
@cython.boundscheck(False)
def normalize(const float[:, ::1] flat, const float[::1] kernel, const uint8_t[::1] ring, double floor_,
              bint fourth_root, threads=None):
    """Per-patch normalization of regress.normalize, in one pass per patch (sums in float64).

    flat: (n, m) patches; kernel: (m,) matched filter; ring: (m,) 1 on the outer ring.
    Returns ``q (n, m) float32`` and ``stats (5, n) float32`` rows background, noise, amplitude, snr,
    total; the formulas are regress._stats's.
    """
    cdef Py_ssize_t n = flat.shape[0], m = flat.shape[1]
    if kernel.shape[0] != m or ring.shape[0] != m:
        raise ValueError("kernel and ring must have one entry per patch pixel")
    cdef double ksum = 0, kk = 0
    cdef Py_ssize_t i, j, nring = 0
    ring_idx_arr = np.flatnonzero(np.asarray(ring)).astype(np.intp)
    cdef const Py_ssize_t[::1] ring_idx = ring_idx_arr
    nring = ring_idx.shape[0]
    for j in range(m):
        ksum += kernel[j]
        kk += <double>kernel[j] * kernel[j]
    if nring == 0:
        raise ValueError("ring has no pixels")
    q_arr = np.empty((n, m), np.float32)
    st_arr = np.empty((5, n), np.float32)
    cdef float[:, ::1] q = q_arr
    cdef float[:, ::1] st = st_arr
    cdef double rs, rss, dot, dot0, dot1, dot2, dot3, tot0, tot1, tot2, tot3, bg, var, amp, noise, ampf, d, tot, root, inv
    cdef float bgf
    cdef const float* p
    cdef float* qi
    cdef int nt = _nthreads(threads)
    # i < n and j < m index flat/q (shape (n, m)), kernel (m,) and st (5, n); ring_idx holds indices < m.
    for i in prange(n, nogil=True, schedule="static", num_threads=nt):
        p = &flat[i, 0]
        qi = &q[i, 0]
        rs = 0
        rss = 0
        for j in range(nring):
            d = p[ring_idx[j]]
            rs = rs + d
            rss = rss + d * d
        bg = rs / nring
        bgf = <float>bg
        # Four partial sums (fixed order) break the add latency chains.
        dot0 = 0
        dot1 = 0
        dot2 = 0
        dot3 = 0
        tot0 = 0
        tot1 = 0
        tot2 = 0
        tot3 = 0
        for j in range(0, m - 3, 4):
            dot0 = dot0 + <double>p[j] * kernel[j]
            dot1 = dot1 + <double>p[j + 1] * kernel[j + 1]
            dot2 = dot2 + <double>p[j + 2] * kernel[j + 2]
            dot3 = dot3 + <double>p[j + 3] * kernel[j + 3]
            tot0 = tot0 + <double>(p[j] - bgf)      # float32 difference, as numpy's flat - bg
            tot1 = tot1 + <double>(p[j + 1] - bgf)
            tot2 = tot2 + <double>(p[j + 2] - bgf)
            tot3 = tot3 + <double>(p[j + 3] - bgf)
        for j in range(m - m % 4, m):
            dot0 = dot0 + <double>p[j] * kernel[j]
            tot0 = tot0 + <double>(p[j] - bgf)
        dot = (dot0 + dot1) + (dot2 + dot3)
        tot = (tot0 + tot1) + (tot2 + tot3)
        var = fmax(rss / nring - bg * bg, 1e-6)
        amp = dot - bg * ksum
        noise = sqrt(var * kk)
        ampf = fmax(amp, floor_ * noise)
        if fourth_root:
            root = 0
            for j in range(m):
                d = sqrt(sqrt(fmax(<double>(p[j] - bgf), 0.0)))
                root = root + d
                qi[j] = <float>d
            inv = 1.0 / fmax(root, 1e-12)
        else:
            inv = 1.0 / ampf
            for j in range(m):
                qi[j] = p[j] - bgf
        for j in range(m):
            qi[j] = <float>(qi[j] * inv)
        st[0, i] = bgf
        st[1, i] = <float>sqrt(var)
        st[2, i] = <float>amp
        st[3, i] = <float>(amp / noise)
        st[4, i] = <float>tot
    return q_arr, st_arr
