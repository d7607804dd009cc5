"""spotfit objects <-> napari layer data (``(data, kwargs, layer_type)`` tuples). No Qt here.

napari puts data pixel ``i`` of a layer at world ``translate + i * scale`` and draws it centred there, as
spotfit centres camera pixel (row, col) at (y, x) = (row, col). So a movie layer needs no scale or translate,
and localizations are Points at (frame, y, x) in the movie's pixel units.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..camera import Camera
from ..render import render

#: Rendered pixels per camera pixel of the super-resolution layer the reader adds.
DEFAULT_ZOOM = 8.0
#: Points are drawn as circles of 2 x this many uncertainties across, within the clip (px): visible, bounded.
SIZE_PER_UNCERTAINTY = 3.0
SIZE_CLIP = (1.0, 10.0)
#: Border colours of good / bad spots (classifier widget) and of unclassified ones.
GOOD, BAD, PLAIN = (0.2, 1.0, 0.3, 1.0), (1.0, 0.2, 0.8, 1.0), (1.0, 0.85, 0.1, 1.0)


def _hex(rgba) -> str:
    return "#" + "".join(f"{round(255 * c):02x}" for c in rgba)


def movie_layer(movie, name: str) -> tuple:
    """Image layer data of a :class:`spotfit.io.Movie`: frames read lazily (dask, one frame a chunk), the
    camera in ``metadata["spotfit"]``."""
    import dask.array as da
    data = da.from_array(movie, chunks=(1,) + tuple(movie.shape[1:]), asarray=False, name=False)
    first = np.asarray(movie[0], dtype=np.float64)
    lo, hi = np.percentile(first, (0.1, 99.9)) if first.size else (0.0, 1.0)
    meta = {"spotfit": {"camera": movie.camera, "camera_assumed": movie.camera_assumed,
                        "files": list(movie.files), "movie": dict(movie.metadata)}}
    kwargs = {"name": name, "metadata": meta, "colormap": "gray",
              "contrast_limits": (float(lo), float(hi) if hi > lo else float(lo) + 1.0)}
    return data, kwargs, "image"


def sizes(locs: pd.DataFrame) -> np.ndarray:
    """Point diameters (px) from each localization's uncertainty; 1 px where there is none."""
    if {"uncertainty_x", "uncertainty_y"} <= set(locs.columns):
        u = 0.5 * (locs["uncertainty_x"].to_numpy(np.float64) + locs["uncertainty_y"].to_numpy(np.float64))
        d = 2.0 * SIZE_PER_UNCERTAINTY * u
        return np.clip(np.where(np.isfinite(d), d, SIZE_CLIP[0]), *SIZE_CLIP)
    return np.full(len(locs), SIZE_CLIP[0])


def points_data(locs: pd.DataFrame, ndim: int = 3) -> np.ndarray:
    """(n, 3) ``(frame, y, x)`` coordinates, or (n, 2) ``(y, x)`` for a single image (``ndim=2``)."""
    yx = [locs["y"].to_numpy(np.float64), locs["x"].to_numpy(np.float64)]
    if ndim == 2:
        return np.column_stack(yx) if len(locs) else np.empty((0, 2))
    frame = locs["frame"].to_numpy(np.float64)
    return np.column_stack([frame] + yx) if len(locs) else np.empty((0, 3))


def points_layer(locs: pd.DataFrame, name: str, *, ndim: int = 3, scale=None, translate=None) -> tuple:
    """Points layer data of a localization table: every column a feature, size from the uncertainty."""
    missing = [c for c in (("y", "x") if ndim == 2 else ("frame", "y", "x")) if c not in locs.columns]
    if missing:
        raise ValueError(f"localization table lacks column(s) {missing}")
    features = locs.reset_index(drop=True)
    kwargs = {"name": name, "features": features, "size": sizes(features), "face_color": "transparent",
              "border_color": _hex(PLAIN), "border_width": 0.15, "out_of_slice_display": False,
              "metadata": {"spotfit": {"attrs": dict(locs.attrs.get("spotfit") or {})}}}
    if scale is not None:
        kwargs["scale"] = tuple(scale)[-ndim:]
    if translate is not None:
        kwargs["translate"] = tuple(translate)[-ndim:]
    return points_data(features, ndim), kwargs, "points"


def render_geometry(zoom: float, scale=(1.0, 1.0), translate=(0.0, 0.0)) -> tuple:
    """(scale, translate) of an image rendered at ``zoom`` over a movie layer of this scale and translate.

    :func:`spotfit.render.render` puts camera coordinate ``x`` in rendered pixel ``floor((x + 0.5) * zoom)``,
    so rendered pixel ``j`` (napari: centred at its index) is centred at ``x = (j + 0.5) / zoom - 0.5``.
    """
    s = np.asarray(scale, np.float64)[-2:]
    t = np.asarray(translate, np.float64)[-2:]
    return tuple(s / zoom), tuple(t + s * (0.5 / zoom - 0.5))


def render_layer(locs: pd.DataFrame, name: str, *, zoom: float = DEFAULT_ZOOM, method: str | None = None,
                 shape=None, scale=(1.0, 1.0), translate=(0.0, 0.0)) -> tuple:
    """Image layer data of a super-resolution rendering, placed over the movie it came from.

    ``method`` defaults to ``"gaussian"`` (each spot blurred by its uncertainty) where the table has
    uncertainties, else ``"histogram"``.
    """
    if method is None:
        method = "gaussian" if {"uncertainty_x", "uncertainty_y"} <= set(locs.columns) else "histogram"
    image = render(locs, zoom=zoom, method=method, shape=shape)
    positive = image[image > 0]
    hi = float(np.percentile(positive, 99.5)) if positive.size else 1.0
    s, t = render_geometry(zoom, scale, translate)
    kwargs = {"name": name, "scale": s, "translate": t, "colormap": "magma", "blending": "additive",
              "contrast_limits": (0.0, hi if hi > 0 else 1.0),
              "metadata": {"spotfit": {"zoom": float(zoom), "method": method}}}
    return image, kwargs, "image"


def table(data, features=None, metadata=None) -> pd.DataFrame:
    """A localization table from a Points layer's data, features and metadata (the writer's input).

    Coordinates come from ``data`` (points moved in the viewer are saved where they now are); rows
    deleted in the viewer are gone from ``features`` too; the other columns come from ``features``.
    """
    data = np.asarray(data, dtype=np.float64)
    if data.ndim != 2 or data.shape[1] not in (2, 3):
        raise ValueError(f"points must be (n, 2) (y, x) or (n, 3) (frame, y, x), got shape {data.shape}")
    feats = pd.DataFrame(features).reset_index(drop=True) if features is not None else pd.DataFrame()
    if len(feats.columns) and len(feats) != len(data):
        raise ValueError(f"{len(feats)} feature rows for {len(data)} points")
    frame = np.rint(data[:, 0]).astype(np.int64) if data.shape[1] == 3 else np.zeros(len(data), np.int64)
    if data.shape[1] == 3 and len(data) and not np.allclose(frame, data[:, 0]):
        raise ValueError("points have a fractional frame coordinate: frames must be whole numbers")
    out = pd.DataFrame({"frame": frame, "x": data[:, -1], "y": data[:, -2]})
    rest = [c for c in feats.columns if c not in out.columns]
    out = pd.concat([out, feats[rest]], axis=1) if rest else out
    for c in ("x", "y"):   # back to the dtype the table had (float32 from localize)
        if c in feats.columns and feats[c].dtype != out[c].dtype and np.issubdtype(feats[c].dtype, np.floating):
            out[c] = out[c].astype(feats[c].dtype)
    attrs = ((metadata or {}).get("spotfit") or {}).get("attrs") or {}
    out.attrs = {"spotfit": dict(attrs)} if attrs else {}
    return out


def camera_of(layer_metadata) -> Camera | None:
    """The camera an image layer carries (from the reader or the sample), else None."""
    cam = ((layer_metadata or {}).get("spotfit") or {}).get("camera")
    return cam if isinstance(cam, Camera) else None


def frame_shape(locs: pd.DataFrame, shape=None):
    """(rows, cols) of the camera frame of a table: ``shape`` if given, else what its metadata records."""
    if shape is not None:
        return tuple(int(s) for s in shape[-2:])
    ms = (locs.attrs.get("spotfit") or {}).get("movie_shape") if isinstance(locs.attrs, dict) else None
    return tuple(int(s) for s in ms[-2:]) if ms is not None and len(ms) >= 2 else None


__all__ = ["DEFAULT_ZOOM", "camera_of", "frame_shape", "movie_layer", "points_layer", "render_geometry",
           "render_layer", "sizes", "table"]
