"""The plugin's dock widgets (magicgui): localize, render, classify, undrift, link, open localizations; and the
sample."""
import threading
import warnings
from pathlib import Path
from typing import List

import napari
import napari.layers
import napari.types
import numpy as np
import pandas as pd
from magicgui import magic_factory
from magicgui import widgets as mw
from napari.qt.threading import create_worker
from napari.utils.notifications import show_error, show_info
from superqt.utils import ensure_main_thread

from .._front import localize
from .._shared.warnings import CameraWarning
from ..camera import Camera
from ..options import LocalizeOptions
from ..postprocess import link, undrift
from ..postprocess.drift import METHODS as DRIFT_METHODS
from ..simulate import expected_image
from . import _layers, _localize, _reader

#: The methods spotfit.render.render takes (it lists them in its docstring and its check).
RENDER_METHODS = ("gaussian", "histogram")


def _widget_for(s: _localize.Setting):
    label = f"{s.name} ({s.unit})" if s.unit else s.name
    common = {"name": s.name, "label": label, "tooltip": s.help}
    if s.kind is bool:
        return mw.CheckBox(value=s.default, text="", **common)
    if s.choices:
        return mw.ComboBox(value=s.default, choices=list(s.choices), **common)
    if s.kind is int:
        if s.optional:
            common["label"] += " (0 = default)"
        return mw.SpinBox(value=s.default or 0, min=0, max=10**6, **common)
    if s.kind is float:
        if s.optional:
            common["label"] += " (0 = none)"
        w = mw.FloatSpinBox(value=0.0, min=0.0, max=1e6, step=s.step, **common)
        show_float(w, s.default or 0.0)
        return w
    if s.kind is Path:   # e.g. the 3D calibration's JSON file; empty = none
        return mw.FileEdit(value="" if s.default is None else s.default, mode="r", filter="*.json", **common)
    return mw.LineEdit(value=str(s.default), **common)


def show_float(widget, value) -> None:
    """Set a float spin box with enough decimals to hold ``value`` exactly (it rounds to its decimals)."""
    text = repr(float(value))
    digits = len(text.split(".")[1]) if "." in text and "e" not in text else 6
    widget.native.setDecimals(min(max(4, digits, widget.native.decimals()), 8))   # 4: what one types
    widget.value = value


def _camera_text(layer) -> str:
    if layer is None:
        return "no movie layer"
    cam = _layers.camera_of(layer.metadata)
    if cam is None:
        return "none recorded: Camera() defaults below, check them"
    text = "from the movie's metadata" + (", with sCMOS maps" if cam.is_scmos else "")
    if layer.metadata.get("spotfit", {}).get("camera_assumed"):
        text = "the file records none: Camera() defaults below, check them"
    return text


class LocalizeWidget(mw.Container):
    """spotfit.localize on an Image layer: settings from LocalizeOptions, a worker thread, progress, cancel.

    The result is a Points layer ``<movie> spots`` at (frame, y, x) over the movie. With *live* on, every
    change of a setting (or of the frame on screen) localizes the frame on screen into ``<movie> preview``.
    """

    def __init__(self, viewer: napari.viewer.Viewer):
        self._viewer = viewer
        self.movie = mw.ComboBox(name="movie", label="movie", choices=self._image_layers, nullable=True)
        self.camera = mw.Label(name="camera_info", label="camera")
        self.camera_widgets = [_widget_for(s) for s in _localize.camera_settings()]
        self.setting_widgets = [_widget_for(s) for s in _localize.settings()]
        self.live = mw.CheckBox(name="live", text="live: localize the frame on screen as settings change")
        self.run_button = mw.PushButton(name="run", text="Localize movie")
        self.cancel_button = mw.PushButton(name="cancel", text="Cancel", enabled=False)
        self.progress = mw.ProgressBar(name="progress", label="frames", min=0, max=1, value=0)
        self.status = mw.Label(name="status", label="")
        super().__init__(widgets=[self.movie, self.camera, *self.camera_widgets, *self.setting_widgets, self.live,
                                  self.run_button,
                                  self.cancel_button, self.progress, self.status])
        self.worker = None
        self.result = None
        self._cancel = threading.Event()
        self.run_button.changed.connect(self.start)
        self.cancel_button.changed.connect(self.cancel)
        self.movie.changed.connect(self._movie_changed)
        for w in self.camera_widgets + self.setting_widgets:
            w.changed.connect(self._preview_if_live)
        self.live.changed.connect(self._preview_if_live)
        viewer.dims.events.current_step.connect(self._preview_if_live)
        viewer.layers.events.inserted.connect(self._reset)
        viewer.layers.events.removed.connect(self._reset)
        self._reset()

    # -- layers --------------------------------------------------------------------------------------
    def _image_layers(self, _widget=None) -> list:
        return [(layer.name, layer) for layer in self._viewer.layers
                if isinstance(layer, napari.layers.Image) and not layer.rgb and layer.ndim in (2, 3)
                and "zoom" not in layer.metadata.get("spotfit", {})]   # not a rendered image

    def _reset(self, *_):
        self.movie.reset_choices()
        if self.movie.value is None and self.movie.choices:
            self.movie.value = self.movie.choices[0]
        self._movie_changed()

    def _movie_changed(self, *_):
        layer = self.movie.value
        self.camera.value = _camera_text(layer)
        cam = (_layers.camera_of(layer.metadata) if layer is not None else None) or Camera()
        for w in self.camera_widgets:    # the movie's camera, to check or change
            with w.changed.blocked():
                show_float(w, getattr(cam, w.name) or 0.0)

    def values(self) -> dict:
        return {w.name: w.value for w in self.setting_widgets}

    def camera_values(self) -> dict:
        return {w.name: w.value for w in self.camera_widgets}

    def _camera(self, layer):
        """(camera, assumed): the movie's camera with the widget's numbers; assumed when the movie records
        none and the numbers are still the defaults (localize then says so, once)."""
        base = _layers.camera_of(layer.metadata)
        camera = _localize.camera_from(self.camera_values(), base)
        recorded = base is not None and not layer.metadata.get("spotfit", {}).get("camera_assumed")
        return camera, not recorded and camera == (base or Camera())

    def _watched(self, layer, report=None) -> _localize.WatchedMovie:
        camera, assumed = self._camera(layer)
        return _localize.WatchedMovie(layer.data, camera, assumed, report=report, cancel=self._cancel)

    def _show(self, locs, layer, name):
        data, kwargs, kind = _layers.points_layer(locs, name, ndim=layer.ndim, scale=layer.scale,
                                                  translate=layer.translate)
        if name in self._viewer.layers:      # same layer, new spots: keeps its place and display settings
            old = self._viewer.layers[name]
            old.data = data
            old.features = kwargs["features"]
            old.size = kwargs["size"]
            old.metadata = kwargs["metadata"]
            return old
        return self._viewer.add_layer(napari.layers.Layer.create(data, kwargs, kind))

    # -- the run -------------------------------------------------------------------------------------
    def start(self, *_):
        """Localize the whole movie in a worker thread (its ``returned`` adds the Points layer)."""
        layer = self.movie.value
        if layer is None:
            show_error("spotfit: open a movie first (File > Open, or the spotfit sample)")
            return None
        try:
            options = _localize.options_from(self.values())
            self._cancel = threading.Event()
            movie = self._watched(layer, report=self._progressed)
        except (ValueError, TypeError) as exc:
            self.status.value = str(exc)
            show_error(f"spotfit: {exc}")
            return None
        self.progress.max = movie.shape[0] if movie.ndim == 3 else 1
        self.progress.value = 0
        self.status.value = "localizing..."
        self.run_button.enabled, self.cancel_button.enabled = False, True
        # errors go to the status line and a notification (_failed), not re-raised in the event loop
        worker = create_worker(_localize.run, movie, options, _start_thread=False, _ignore_errors=True)
        worker.returned.connect(lambda locs: self._done(locs, layer))
        worker.errored.connect(self._failed)
        worker.finished.connect(self._finished)
        self.worker = worker
        worker.start()
        return worker

    def cancel(self, *_):
        self._cancel.set()
        self.status.value = "cancelling..."

    @ensure_main_thread
    def _progressed(self, done, total):
        self.progress.max = total
        self.progress.value = done

    def _done(self, locs, layer):
        if locs is None:
            self.status.value = "cancelled"
            return
        self.result = locs
        self._show(locs, layer, f"{layer.name} spots")
        self.status.value = f"{len(locs)} localizations in {self.progress.max} frames"

    def _failed(self, exc):
        self.status.value = f"failed: {exc}"
        show_error(f"spotfit: localize failed: {exc}")

    def _finished(self):
        self.run_button.enabled, self.cancel_button.enabled = True, False
        self.worker = None

    # -- live preview of one frame -------------------------------------------------------------------
    def _preview_if_live(self, *_):
        if self.live.value:
            self.preview()

    def preview(self):
        """Localize the frame on screen with the current settings (milliseconds: in the GUI thread)."""
        layer = self.movie.value
        if layer is None:
            return None
        try:
            options = _localize.options_from(self.values())
            camera, _ = self._camera(layer)
        except (ValueError, TypeError) as exc:
            self.status.value = str(exc)
            return None
        frame = 0
        if layer.ndim == 3:   # the frame on screen, in the layer's own frame index
            world = self._viewer.dims.point[-3]
            frame = int(round((world - layer.translate[0]) / layer.scale[0]))
            frame = min(max(frame, 0), layer.data.shape[0] - 1)
        image = np.asarray(layer.data[frame] if layer.ndim == 3 else layer.data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CameraWarning)   # said once by the full run, not at every change
            locs = localize(image, options, camera=camera)
        locs["frame"] = frame
        self._show(locs, layer, f"{layer.name} preview")
        self.status.value = f"frame {frame}: {len(locs)} spots"
        return locs


# --------------------------------------------------------------------------
# render, classify, open
# --------------------------------------------------------------------------

def render_points(points: napari.layers.Points, zoom: float = _layers.DEFAULT_ZOOM,
                  method: str = "gaussian") -> napari.types.LayerDataTuple:
    """A super-resolution image of a Points layer, placed over its movie (``<points> rendered``)."""
    if points is None:
        raise ValueError("choose a Points layer of localizations")
    locs = _layers.table(points.data, points.features, points.metadata)
    if "uncertainty_x" not in locs and method == "gaussian":
        method = "histogram"
    return _layers.render_layer(locs, f"{points.name} rendered", zoom=zoom, method=method,
                                shape=_layers.frame_shape(locs), scale=points.scale, translate=points.translate)


def classify_points(points: napari.layers.Points, movie: napari.layers.Image, classifier_file: Path = Path(),
                    threshold: float = LocalizeOptions().classify_threshold) -> None:
    """Colour a Points layer good/bad: with a saved :class:`spotfit.ml.SpotClassifier` (its P(good) >=
    threshold, from the spots' images in ``movie``) or, without a file, the fit-parameter rules of
    :func:`spotfit.ml.label_spots`. Adds ``good`` (and ``p_good``) features."""
    from .. import ml   # scikit-learn and friends load only when asked for
    if points is None:
        raise ValueError("choose a Points layer of localizations")
    locs = _layers.table(points.data, points.features, points.metadata)
    features = points.features.copy()
    path = Path(classifier_file) if classifier_file else None
    if path is not None and str(path) not in ("", "."):
        if movie is None:
            raise ValueError("a classifier reads each spot's image: choose the movie layer")
        clf = ml.SpotClassifier.load(path)
        files = movie.metadata.get("spotfit", {}).get("files")   # a file is read in chunks, not all at once
        stack = files if files else np.asarray(movie.data)
        good, p = clf.predict_spots(stack, locs, camera=_layers.camera_of(movie.metadata), threshold=threshold)
        features["p_good"] = np.asarray(p, np.float32)
    else:
        good, _ = ml.label_spots(locs)
    features["good"] = np.asarray(good, bool)
    points.features = features
    points.border_color = np.where(features["good"].to_numpy()[:, None], _layers.GOOD, _layers.BAD)
    show_info(f"spotfit: {int(features['good'].sum())} of {len(features)} spots good")


def _points_table(points) -> pd.DataFrame:
    if points is None:
        raise ValueError("choose a Points layer of localizations")
    return _layers.table(points.data, points.features, points.metadata)


def _like(points, locs: pd.DataFrame, name: str) -> napari.types.LayerDataTuple:
    """A Points layer of ``locs`` over the same movie as ``points`` (same scale and translate)."""
    return _layers.points_layer(locs, name, scale=points.scale, translate=points.translate)


def undrift_points(points: napari.layers.Points, method: str = "aim",
                   max_jump: float = 2.0) -> napari.types.LayerDataTuple:
    """``<points> undrifted``: the layer with :func:`spotfit.undrift`'s drift removed; the per-frame drift
    table is in the new layer's ``metadata["spotfit"]["drift"]``. Runs in the viewer's thread: AIM takes
    a second or two per million localizations."""
    corrected, drift = undrift(_points_table(points), method=method, max_jump=max_jump)
    data, kwargs, kind = _like(points, corrected, f"{points.name} undrifted")
    kwargs["metadata"]["spotfit"]["drift"] = drift
    span = float(np.hypot(drift["x"] - drift["x"].iloc[0], drift["y"] - drift["y"].iloc[0]).max())
    show_info(f"spotfit: {method} drift over {len(drift)} frames, up to {span:.2f} px from the first frame")
    return data, kwargs, kind


def link_points(points: napari.layers.Points, radius: float = 0.0,
                max_dark_frames: int = 1) -> napari.types.LayerDataTuple:
    """``<points> linked``: one point per event (blink) from :func:`spotfit.link`, at the event's first
    frame; ``radius`` 0 takes the default gate from the uncertainties."""
    locs = _points_table(points)
    events = link(locs, radius=radius or None, max_dark_frames=max_dark_frames)
    show_info(f"spotfit: {len(locs)} localizations linked into {len(events)} events")
    return _like(points, events, f"{points.name} linked")


def open_localizations(path: Path = Path(), pixel_size_nm: float = 0.0,
                       zoom: float = _layers.DEFAULT_ZOOM) -> List[napari.types.LayerDataTuple]:
    """A localization file with a chosen zoom and, for ThunderSTORM nm, the camera pixel size
    (0: from the file or its ``-protocol.txt``); rapidSTORM ``.txt`` too."""
    return _reader.read_localizations(path, pixel_size_nm=pixel_size_nm or None, zoom=zoom)


render_widget = magic_factory(render_points, call_button="Render",
                              zoom={"min": 0.1, "max": 100.0, "step": 0.5, "label": "zoom (px per camera px)"},
                              method={"choices": RENDER_METHODS})
classify_widget = magic_factory(classify_points, call_button="Classify",
                                classifier_file={"filter": "*.zip *.skops *.joblib", "label": "classifier "
                                                 "(empty: fit rules)"},
                                threshold={"min": 0.0, "max": 1.0, "step": 0.05, "label": "P(good) threshold"})
undrift_widget = magic_factory(undrift_points, call_button="Correct drift",
                               method={"choices": DRIFT_METHODS},
                               max_jump={"min": 0.1, "max": 50.0, "step": 0.5, "label": "largest stage jump (px)"})
link_widget = magic_factory(link_points, call_button="Link",
                            radius={"min": 0.0, "max": 20.0, "step": 0.1, "label": "radius (px, 0 = from uncertainties)"},
                            max_dark_frames={"min": 0, "max": 100})
open_widget = magic_factory(open_localizations, call_button="Open",
                            path={"filter": "*.parquet *.csv *.hdf5 *.h5 *.txt", "label": "localizations"},
                            pixel_size_nm={"min": 0.0, "max": 10000.0, "label": "pixel size (nm, 0 = file's)"},
                            zoom={"min": 0.1, "max": 100.0, "step": 0.5})


def _filaments(rng, n: int, rows: int, cols: int):
    """``n`` random points on three smooth filaments, two of them crossing: what a rendering resolves."""
    t = rng.uniform(0.0, 1.0, n)
    k = rng.integers(0, 3, n)
    x = 6.0 + t * (cols - 12.0)
    y = np.choose(k, [0.3 * rows + 0.12 * rows * np.sin(2 * np.pi * t),
                      0.3 * rows + 0.12 * rows * np.cos(2 * np.pi * t),
                      0.72 * rows + 0.08 * rows * np.sin(3 * np.pi * t)])
    return x, y


def sample_movie(frames: int = 300, shape=(96, 128), per_frame: float = 8.0, seed: int = 1
                 ) -> List[napari.types.LayerDataTuple]:
    """npe2 sample: blinking emitters on filaments (pixel-integrated Gaussians, sigma 1.3 px, 500-5000
    photons, 20 photons/px background, Poisson noise, a known camera), and the true positions."""
    camera = Camera(baseline=100.0, sensitivity=0.5)
    rng = np.random.default_rng(seed)
    rows, cols = shape
    movie = np.empty((frames, rows, cols), np.uint16)
    truth = []
    for f in range(frames):
        x, y = _filaments(rng, rng.poisson(per_frame), rows, cols)
        photons = rng.uniform(500.0, 5000.0, len(x))
        mu = expected_image(shape, x, y, photons, 20.0, 1.3)
        movie[f] = np.clip(np.rint(camera.to_adu(rng.poisson(mu))), 0, 65535)
        truth.append(pd.DataFrame({"frame": f, "x": x, "y": y, "photons": photons}))
    meta = {"spotfit": {"camera": camera, "camera_assumed": False}}
    image = (movie, {"name": "simulated movie", "metadata": meta, "colormap": "gray"}, "image")
    data, kwargs, kind = _layers.points_layer(pd.concat(truth, ignore_index=True), "simulated truth")
    kwargs.update(border_color="#4dccff", size=1.0, visible=False)
    return [image, (data, kwargs, kind)]
