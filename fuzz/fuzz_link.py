"""Fuzz target: arbitrary localization tables and options -> spotfit.link (the core's spotcore::link).

The bytes choose the rows (frames repeated, gapped, unsorted; x, y close together, far apart, NaN, inf,
huge), the uncertainties (present or not, zero, NaN), the photons (summed per event by the core, NaN
included), the radius, the gate and max_dark_frames.
Contract: invalid input raises ValueError/TypeError; valid input gives groups that partition the rows,
numbered 0.. in order of first frame, each group with at most one row per frame and its frames never more
than max_dark_frames + 1 apart; and the events table agrees with the groups (first and last frame, count,
summed photons).
Seeds: fuzz/corpus/link.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import instrumented, main  # noqa: E402

with instrumented("spotfit"):
    import spotfit  # noqa: E402

import numpy as np  # noqa: E402
np.seterr(over="ignore", under="ignore")
import pandas as pd  # noqa: E402

SPECIAL = [np.nan, np.inf, -np.inf, 1e300, -1e-300, 0.0]


def test_one_input(data: bytes):
    if len(data) < 6:
        return
    b = [int(v) for v in data[:6]]
    n = b[0] % 40
    body = np.frombuffer(data[6:] + bytes(16), np.uint8)
    raw = np.resize(body, 4 * max(n, 1)).astype(np.float64).reshape(4, -1)[:, :n]
    frame = (raw[0] % 7).astype(np.int64) * (1 + b[1] % 3)
    if b[1] & 8:
        frame = np.sort(frame)
    x = raw[1] / 64.0
    y = raw[2] / 64.0
    if b[2] % 5 == 0 and n:
        x[int(raw[3, 0]) % n] = SPECIAL[b[2] % len(SPECIAL)]
    cols = {"frame": frame, "x": x, "y": y}
    if b[3] & 32:
        cols["photons"] = raw[3] * 10.0
        if b[3] & 64 and n:
            cols["photons"][-1] = np.nan
    with_u = bool(b[3] & 1)
    if with_u:
        u = 0.01 + raw[3] / 512.0
        if b[3] & 2 and n:
            u[0] = SPECIAL[(b[3] >> 2) % len(SPECIAL)]
        cols["uncertainty_x"] = cols["uncertainty_y"] = u
    locs = pd.DataFrame(cols)
    radius = [None, 0.0, -1.0, 0.05, 0.3, 2.0, np.nan][b[4] % 7]
    dark = [0, 1, 2, 5, -1][b[5] % 5]
    valid = (n > 0 and np.isfinite(x).all() and np.isfinite(y).all() and dark >= 0
             and (radius is None or (np.isfinite(radius) and radius > 0))
             and (radius is not None or with_u)
             and (not with_u or (np.isfinite(cols["uncertainty_x"] ** 2).all() and (cols["uncertainty_x"] > 0).all()
                              and (cols["uncertainty_x"] ** 2 > 0).all())))
    try:
        g = spotfit.link(locs, radius=radius, max_dark_frames=dark, groups=True)["group"].to_numpy()
        ev = spotfit.link(locs, radius=radius, max_dark_frames=dark)
    except (ValueError, TypeError):
        assert not valid, "a valid request was refused"
        return
    assert valid, "an invalid request was accepted"
    assert len(g) == n and g.min() == 0 and np.array_equal(np.unique(g), np.arange(g.max() + 1))
    assert len(ev) == g.max() + 1 and ev["n"].sum() == n
    by = pd.DataFrame({"frame": frame, "g": g}).groupby("g")["frame"]
    first = by.min().to_numpy()
    assert np.array_equal(first, ev["frame"].to_numpy()) and (np.diff(first) >= 0).all()
    assert np.array_equal(by.max().to_numpy(), ev["last_frame"].to_numpy())
    assert np.array_equal(by.size().to_numpy(), ev["n"].to_numpy())
    if "photons" in cols:
        want = np.bincount(g, cols["photons"], len(ev)) if n else np.zeros(0)
        assert np.allclose(want, ev["photons"].to_numpy(), rtol=1e-12, equal_nan=True)
    for k in range(len(ev)):
        fr = np.sort(frame[g == k])
        assert (np.diff(fr) >= 1).all() and (np.diff(fr) <= dark + 1).all()

if __name__ == "__main__":
    main(test_one_input)
