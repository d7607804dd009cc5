"""Fuzz target: arbitrary points, grids, segments and tables -> the drift loops of the core and spotfit.undrift.

The bytes choose the points (finite, NaN, inf or huge), the density grid (origin, bin, size, also invalid),
the segment bounds (also reversed or past the end), the stencil step, the tracking options and the thread
count; and a small localization table for ``spotfit.undrift`` (frames unsorted or repeated, NaN, one frame).
Contract: invalid input raises ValueError/TypeError; valid input gives finite results of the documented
shapes; drift_stencil, drift_aim (the whole AIM loop) and its sparse densities' stencil do not depend on the
threads; the histogram's mass is that of the inside points; drift_rts (the smoother) refuses bad input.
Seeds: fuzz/corpus/drift.
"""
import os
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import instrumented, main  # noqa: E402

with instrumented("spotfit"):
    import spotfit  # noqa: E402
    from spotfit import _spotcore  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

SPECIAL = [np.nan, np.inf, -np.inf, 1e300, -1e300, 0.0]


def _points(body, n):
    v = np.resize(body, 2 * n).astype(np.float64).reshape(2, n) / 8.0 - 2.0
    for k in range(n):
        if body[k % len(body)] % 17 == 0:
            v[k % 2, k] = SPECIAL[k % len(SPECIAL)]
    return v[0].copy(), v[1].copy()


def test_one_input(data: bytes):
    if len(data) < 10:
        return
    b = [int(v) for v in data[:10]]
    body = np.frombuffer(data[10:] + bytes(16), np.uint8)
    n = b[0] % 40
    x, y = _points(body, n)
    g = _spotcore.DriftGrid()
    g.x0, g.y0 = (b[1] % 7) - 3.0, (b[2] % 7) - 3.0
    g.bin = [0.25, 0.5, 1.0, 0.0, -1.0, np.nan][b[3] % 6]
    g.nx, g.ny = b[4] % 40 - 2, b[5] % 40 - 2
    grid_ok = g.bin > 0 and g.nx >= 1 and g.ny >= 1
    try:
        img = _spotcore.drift_histogram(x, y, None, g)
    except ValueError:
        assert not grid_ok, "a valid grid was refused"
        return
    assert grid_ok and img.shape == (g.ny, g.nx) and np.isfinite(img).all() and (img >= 0).all()
    fx, fy = (x - g.x0) / g.bin, (y - g.y0) / g.bin
    core = (fx >= 0) & (fy >= 0) & (fx <= g.nx - 1) & (fy <= g.ny - 1)   # all four bins inside
    assert img.sum() >= core.sum() * (1 - 1e-4) - 1e-3
    m = b[6] % 5
    cuts = np.sort(np.resize(body, 2 * m).astype(np.int64) % (n + 3)).reshape(-1, 2) if m else np.zeros((0, 2), int)
    starts, ends = cuts[:, 0].copy(), cuts[:, 1].copy()
    if b[7] & 1 and m:
        starts, ends = ends, starts                                # reversed bounds
    bounds_ok = bool(((starts >= 0) & (ends >= starts) & (ends <= n)).all())
    step = [g.bin, 0.1, 0.0, -0.5, np.nan][b[8] % 5]
    centres = np.resize(body, 2 * m).astype(np.float64).reshape(m, 2) / 50.0 - 2.0
    try:
        a = _spotcore.drift_stencil(img, g, x, y, starts, ends, centres, step, 1)
        c = _spotcore.drift_stencil(img, g, x, y, starts, ends, centres, step, 3)
    except ValueError:
        assert not (bounds_ok and step > 0), "a valid stencil was refused"
    else:
        assert bounds_ok and (step > 0 or m == 0)
        assert a.shape == (m, 13) and a.tobytes() == c.tobytes()
        assert np.isfinite(a).all()
    o = _spotcore.DriftTrackOptions()
    o.radius, o.coarse_step, o.step = [0.0, 0.5, 2.0][b[9] % 3], [0.1, 0.25, 0.0][b[9] // 3 % 3], 0.2
    try:
        shifts, score = _spotcore.drift_track(img, g, x, y, starts, ends, o)
    except ValueError:
        assert not (bounds_ok and o.coarse_step > 0), "a valid track was refused"
    else:
        assert shifts.shape == (m, 2) and np.isfinite(shifts).all() and np.isfinite(score).all()
    # The whole AIM loop (drift_aim) on the same points as a frame-sorted table: valid input gives finite
    # shifts, variances >= 0 or inf, and the same bytes for 1 and 3 threads; bad bounds raise ValueError.
    if n:
        fr = np.sort(np.resize(body, n).astype(np.int64) % 7)
        seg_len = 1 + b[6] % 3
        edges = np.arange(0, 7 + seg_len, seg_len)
        edges[-1] = min(edges[-1], 7)
        edges = np.unique(np.minimum(edges, 7))
        bnd = np.searchsorted(fr, edges)
        st, en = bnd[:-1].astype(np.int64), bnd[1:].astype(np.int64)
        if b[7] & 2 and len(st):
            en = en.copy()
            en[-1] = n + 1                                            # past the end
        t = (edges[:-1] + edges[1:] - 1) / 2.0
        ao = _spotcore.DriftAimOptions()
        ao.radius, ao.coarse_step, ao.bin2, ao.margin2 = 0.5, 0.25, 0.1, 0.5
        ao.passes, ao.travel = 1 + b[8] % 3, [0.2, 0.0][b[9] % 2]
        ao.parallel_points = 0                                        # threads on any size
        ao.coarse_stride = [1, 2, 3, 0][b[7] // 4 % 4]                # 0: refused
        finite = bool(np.isfinite(x).all() and np.isfinite(y).all() and (np.abs(x) < 1e6).all()
                      and (np.abs(y) < 1e6).all())
        valid = finite and bool((en <= n).all()) and ao.travel > 0 and ao.coarse_stride >= 1 and grid_ok
        out = []
        for th in (1, 3):
            ao.threads = th
            try:
                out.append(_spotcore.drift_aim(x, y, fr, n, g, st, en, edges, 1, st, en, edges, t, ao))
            except ValueError:
                assert not valid, "a valid drift_aim was refused"
                break
        if len(out) == 2:
            assert finite and ao.travel > 0 and ao.coarse_stride >= 1
            sh, var, xc = out[0][:3]
            assert sh.shape == (len(st), 2) and np.isfinite(sh).all() and np.isfinite(xc).all()
            d1 = np.stack([x, y], axis=1) - xc   # round 1's drift
            assert ((var >= 0) | np.isinf(var)).all()
            assert all(a.tobytes() == c.tobytes() for a, c in zip(out[0][:3], out[1][:3]))
            # The sparse fold densities it returns: their stencil on any segments, for 1 and 3 threads.
            cen = np.resize(d1, (len(st), 2)) if len(st) else np.zeros((0, 2))
            s1 = out[0][4][b[6] % 2].stencil(x, y, st, en, cen, 1)
            s3 = out[1][4][b[6] % 2].stencil(x, y, st, en, cen, 3)
            assert s1.shape == (len(st), 13) and s1.tobytes() == s3.tobytes() and np.isfinite(s1).all()
    # The smoother: any measurements (inf: none), breaks and process variance; bad ones raise ValueError.
    if n:
        t = np.cumsum(np.abs(np.nan_to_num(x, nan=1.0, posinf=1.0, neginf=1.0)))
        r = np.abs(y)
        q = [0.01, 0.0, -1.0, np.inf][b[6] % 4]
        try:
            xs, ps = _spotcore.drift_rts(t, np.nan_to_num(x), r, np.resize(body, n) & 1, q)
        except ValueError:
            assert not (q >= 0 and np.isfinite(q) and np.isfinite(t).all() and ((r >= 0) | np.isinf(r)).all()
                        and (np.diff(t) >= 0).all() and np.isfinite(np.nan_to_num(x)).all())
        else:
            assert xs.shape == (n,) and ps.shape == (n,)
            if (np.abs(np.nan_to_num(x)) < 1e6).all() and (t < 1e6).all() and (r < 1e6).all():
                assert np.isfinite(xs).all() and not np.isnan(ps).any()
    # The public function on a small table made of the same bytes.
    k = len(body) // 3
    if k:
        t = pd.DataFrame({"frame": (body[:k] % 6).astype(np.int64), "x": body[k:2 * k] / 9.0,
                          "y": body[2 * k:3 * k] / 9.0, "uncertainty_x": 0.1, "uncertainty_y": 0.1})
        if b[9] & 1:
            t = t.sort_values("frame", kind="stable")
        if b[8] & 8 and len(t):
            t.iloc[0, 1] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                corrected, drift = spotfit.undrift(t, method=["aim", "rcc", "fiducials"][b[9] % 3])
            except ValueError:
                return
        assert corrected.index.equals(t.index) and np.isfinite(corrected[["x", "y"]].to_numpy()).all()
        assert len(drift) == int(t.frame.max()) + 1 and np.isfinite(drift[["x", "y"]].to_numpy()).all()


if __name__ == "__main__":
    main(test_one_input)
