"""Score localizations against ground truth: one-to-one matching per frame."""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from scipy.spatial import cKDTree


def match_pairs(truth: pd.DataFrame, locs: pd.DataFrame, tolerance: float = 1.0) -> pd.DataFrame:
    """Pairs (truth index, localization index, dx, dy) matched one-to-one within ``tolerance`` px.

    Per frame, the assignment minimizing the total distance among pairs closer than ``tolerance``
    (Hungarian algorithm). ``dx = x_loc - x_true``.
    """
    out = []
    t_groups = truth.groupby("frame").indices
    l_groups = locs.groupby("frame").indices
    tx, ty = truth["x"].to_numpy(float), truth["y"].to_numpy(float)
    lx, ly = locs["x"].to_numpy(float), locs["y"].to_numpy(float)
    big = 1e9
    for f, ti in t_groups.items():
        li = l_groups.get(f)
        if li is None:
            continue
        tree = cKDTree(np.c_[lx[li], ly[li]])
        cand = tree.query_ball_point(np.c_[tx[ti], ty[ti]], r=tolerance)
        rows = [a for a, c in enumerate(cand) if c]
        if not rows:
            continue
        cols = sorted({b for a in rows for b in cand[a]})
        col_pos = {b: k for k, b in enumerate(cols)}
        cost = np.full((len(rows), len(cols)), big)
        for r, a in enumerate(rows):
            for b in cand[a]:
                cost[r, col_pos[b]] = np.hypot(lx[li[b]] - tx[ti[a]], ly[li[b]] - ty[ti[a]])
        rr, cc = linear_sum_assignment(cost)
        ok = cost[rr, cc] <= tolerance
        for r, c in zip(rr[ok], cc[ok]):
            a, b = ti[rows[r]], li[cols[c]]
            out.append((a, b, lx[b] - tx[a], ly[b] - ty[a]))
    return pd.DataFrame(out, columns=["truth", "loc", "dx", "dy"]).astype(
        {"truth": np.int64, "loc": np.int64, "dx": float, "dy": float})


def match(truth: pd.DataFrame, locs: pd.DataFrame, tolerance: float = 1.0) -> dict:
    """Recall, precision, Jaccard, bias and RMSE (px) of ``locs`` against ``truth``."""
    pairs = match_pairs(truth, locs, tolerance)
    tp = len(pairs)
    fn, fp = len(truth) - tp, len(locs) - tp
    rmse = float(np.sqrt(np.mean((pairs.dx ** 2 + pairs.dy ** 2) / 2))) if tp else float("nan")
    return {"tp": tp, "fp": fp, "fn": fn, "recall": tp / max(len(truth), 1), "precision": tp / max(len(locs), 1),
            "jaccard": tp / max(tp + fp + fn, 1), "bias_x": float(pairs.dx.mean()) if tp else float("nan"),
            "bias_y": float(pairs.dy.mean()) if tp else float("nan"), "rmse": rmse, "pairs": pairs}


def isolated(truth: pd.DataFrame, radius: float) -> np.ndarray:
    """Boolean mask of truth emitters whose nearest same-frame neighbour is at least ``radius`` px away."""
    mask = np.ones(len(truth), dtype=bool)
    xy = truth[["x", "y"]].to_numpy(float)
    for _, idx in truth.groupby("frame").indices.items():
        if len(idx) < 2:
            continue
        d, _ = cKDTree(xy[idx]).query(xy[idx], k=2)
        mask[idx] = d[:, 1] >= radius
    return mask
