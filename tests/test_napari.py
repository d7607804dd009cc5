"""The napari plugin (issue 20): readers, writers and widgets in a real viewer under a real Qt platform.

CI (.ci/run) installs ``spotfit[napari]``, pytest-qt and Xvfb and sets SPOTFIT_REQUIRE_NAPARI=1, so these
tests run there and fail, never skip, when something is missing. On a user's machine without napari, or
without a display and without Xvfb, they skip. In a full run, tests/conftest.py runs this module in its own
process (OpenGL and TensorFlow in one process abort at exit).
"""
import atexit
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spotfit

REQUIRED = os.environ.get("SPOTFIT_REQUIRE_NAPARI") == "1"


def _need(module):
    if REQUIRED:
        return __import__(module)
    return pytest.importorskip(module)


def _display():
    """A display for Qt: the session's, else a private Xvfb (OpenGL through Mesa) for this test run."""
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or sys.platform != "linux":
        return True
    xvfb = shutil.which("Xvfb")
    if xvfb is None:
        return False
    read, write = os.pipe()
    proc = subprocess.Popen([xvfb, "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as f:
        number = f.readline().strip()
    if not number:
        proc.kill()
        return False
    atexit.register(proc.terminate)
    os.environ["DISPLAY"] = f":{number}"
    return True


napari = _need("napari")
_need("pytestqt")
if not _display():
    if REQUIRED:
        raise RuntimeError("SPOTFIT_REQUIRE_NAPARI=1 but there is no display and no Xvfb")
    pytest.skip("no display and no Xvfb for Qt", allow_module_level=True)
if os.environ.get("QT_QPA_PLATFORM") in ("offscreen", "minimal"):
    del os.environ["QT_QPA_PLATFORM"]   # no OpenGL there, and napari draws every layer with it

from spotfit.napari import _layers, _localize, _reader, _widgets, _writer  # noqa: E402

CAMERA = spotfit.Camera(baseline=100.0, sensitivity=0.5, pixel_size_nm=107.0)


@pytest.fixture(scope="module")
def simulated():
    movie, truth = spotfit.simulate(frames=12, shape=(64, 80), camera=CAMERA, seed=3)
    return movie, truth


@pytest.fixture
def movie_path(tmp_path, simulated):
    import tifffile
    md = {"axes": "TYX", "spotfit.baseline": CAMERA.baseline, "spotfit.sensitivity": CAMERA.sensitivity,
          "unit": "nm"}
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, simulated[0], imagej=True, metadata=md,
                     resolution=(1 / CAMERA.pixel_size_nm, 1 / CAMERA.pixel_size_nm))
    return path


@pytest.fixture(autouse=True, scope="module")
def _plugin_registered():
    """The plugin as napari finds it. An editable (meson-python) install hides the package folder from npe2's
    entry-point lookup, so there the manifest is registered from its file (test_manifest... checks the
    entry point wherever it can)."""
    import npe2
    pm = npe2.PluginManager.instance()
    pm.discover()
    if "spotfit" not in pm:
        pm.register(npe2.PluginManifest.from_file(Path(_widgets.__file__).with_name("napari.yaml")))
    yield


def _locs_equal_points(locs, layer):
    expected = np.column_stack([locs["frame"], locs["y"], locs["x"]]).astype(np.float64)
    np.testing.assert_array_equal(layer.data, expected)


def _wait(qtbot, widget):
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60_000)


# --------------------------------------------------------------------------
# packaging: entry point, manifest, no Qt in `import spotfit`, the extra's name
# --------------------------------------------------------------------------

def test_import_spotfit_loads_no_napari_or_qt():
    code = ("import sys, spotfit; spotfit.localize; print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('napari', 'magicgui', 'qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'superqt', 'vispy', 'npe2') "
            "or m.startswith('spotfit.napari')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_without_napari_the_plugin_names_the_extra():
    code = ("import sys; sys.modules['napari'] = None\n"
            "try:\n    import spotfit.napari._reader\nexcept ImportError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "pip install spotfit[napari]" in out.stdout


def test_manifest_is_valid_and_declared_as_entry_point():
    import npe2
    from importlib.metadata import entry_points
    manifest = Path(_widgets.__file__).with_name("napari.yaml")
    mf = npe2.PluginManifest.from_file(manifest)
    mf.validate_imports()   # every python_name resolves
    eps = [ep for ep in entry_points(group="napari.manifest") if ep.name == "spotfit"]
    assert [ep.value for ep in eps] == ["spotfit.napari:napari.yaml"]
    contrib = mf.contributions
    assert {w.display_name for w in contrib.widgets} >= {"Localize", "Render", "Classify"}
    assert {tuple(w.layer_types) for w in contrib.writers} == {("points",)}
    patterns = set(contrib.readers[0].filename_patterns)
    assert {f"*{s}" for s in _reader.MOVIE_SUFFIXES + _reader.TABLE_SUFFIXES} == patterns
    import importlib.util
    locations = importlib.util.find_spec("spotfit.napari").submodule_search_locations
    if any(Path(loc, "napari.yaml").is_file() for loc in locations):   # a real install (CI): found by napari
        pm = npe2.PluginManager.instance()
        pm.discover()
        assert pm.get_manifest("spotfit").contributions.readers[0].command == "spotfit.get_reader"


def test_every_widget_docks_from_the_plugins_menu(make_napari_viewer):
    viewer = make_napari_viewer()
    from magicgui.widgets import FunctionGui
    widgets = {name: viewer.window.add_plugin_dock_widget("spotfit", name)[1]
               for name in ("Localize", "Render", "Classify", "Undrift", "Link", "Open localizations")}
    assert isinstance(widgets.pop("Localize"), _widgets.LocalizeWidget)   # napari gave it the viewer
    assert all(isinstance(w, FunctionGui) for w in widgets.values())
    assert len(viewer.window.dock_widgets) == 6


# --------------------------------------------------------------------------
# one list of settings
# --------------------------------------------------------------------------

def test_localize_settings_are_generated_from_localize_options(make_napari_viewer):
    import dataclasses
    viewer = make_napari_viewer()
    widget = _widgets.LocalizeWidget(viewer)
    fields = dataclasses.fields(spotfit.LocalizeOptions)
    assert [w.name for w in widget.setting_widgets] == [f.name for f in fields]
    for w, f in zip(widget.setting_widgets, fields):
        assert w.tooltip == f.metadata["help"]
        if f.metadata["unit"]:
            assert f"({f.metadata['unit']})" in w.label
    by_name = {w.name: w for w in widget.setting_widgets}
    assert list(by_name["estimator"].choices) == list(spotfit.registry.ESTIMATORS)
    assert list(by_name["model"].choices) == list(spotfit.registry.MODELS)
    assert list(by_name["threshold_mode"].choices) == list(spotfit.registry.THRESHOLD_MODES)
    assert _localize.options_from(widget.values()) == spotfit.LocalizeOptions()   # same defaults
    camera_fields = [f.name for f in dataclasses.fields(spotfit.Camera) if not f.name.endswith("_map")]
    assert [w.name for w in widget.camera_widgets] == camera_fields           # the camera's numbers, too
    assert all(w.tooltip for w in widget.camera_widgets)                     # from Camera's docstring
    assert _localize.camera_from(widget.camera_values()) == spotfit.Camera()
    by_name["tolerance"].value = 2e-4   # fine steps survive the spin box
    assert _localize.options_from(widget.values()).tolerance == pytest.approx(2e-4)
    by_name["box"].value = 8            # LocalizeOptions' own check: an even box is refused, with its name
    with pytest.raises(ValueError, match="box"):
        _localize.options_from(widget.values())


# --------------------------------------------------------------------------
# readers
# --------------------------------------------------------------------------

def test_movie_reader_gives_an_image_layer_with_its_camera(make_napari_viewer, movie_path, simulated):
    viewer = make_napari_viewer()
    layers = viewer.open(movie_path, plugin="spotfit")
    assert len(layers) == 1
    layer = layers[0]
    assert isinstance(layer, napari.layers.Image)
    assert layer.data.shape == simulated[0].shape
    np.testing.assert_array_equal(np.asarray(layer.data[5]), simulated[0][5])
    cam = layer.metadata["spotfit"]["camera"]
    assert (cam.baseline, cam.sensitivity, cam.pixel_size_nm) == (100.0, 0.5, pytest.approx(107.0))
    assert layer.metadata["spotfit"]["camera_assumed"] is False
    assert tuple(layer.scale) == (1, 1, 1) and tuple(layer.translate) == (0, 0, 0)
    assert _reader.get_reader(str(movie_path.with_suffix(".png"))) is None
    with pytest.raises(spotfit.io.MovieError):
        bad = movie_path.with_name("bad.tif")
        bad.write_bytes(b"not a tiff at all")
        _reader.read_movie(str(bad))


def _localize_through_widget(qtbot, viewer, layer, **values):
    widget = _widgets.LocalizeWidget(viewer)
    widget.movie.value = layer
    for w in widget.setting_widgets:
        if w.name in values:
            w.value = values[w.name]
    assert widget.camera.value == "from the movie's metadata"
    assert widget.camera_values() == {"baseline": 100.0, "sensitivity": 0.5, "em_gain": 1.0, "qe": 1.0,
                                      "pixel_size_nm": pytest.approx(107.0)}
    worker = widget.start()
    assert worker is not None
    _wait(qtbot, widget)
    return widget


def test_localize_widget_gives_spotfit_localize_as_points(make_napari_viewer, qtbot, movie_path, simulated):
    viewer = make_napari_viewer()
    movie_layer = viewer.open(movie_path, plugin="spotfit")[0]
    widget = _localize_through_widget(qtbot, viewer, movie_layer, threshold=2.0, box=9, chunk_frames=5)
    points = viewer.layers["movie spots"]
    assert isinstance(points, napari.layers.Points)
    expected = spotfit.localize(movie_path, threshold=2.0, box=9)
    assert len(expected) > 100
    _locs_equal_points(expected, points)        # (frame, row, col) = (frame, y, x), every row, exactly
    pd.testing.assert_frame_equal(points.features, expected, check_dtype=True)
    assert widget.progress.value == widget.progress.max == 12
    assert widget.status.value.startswith(f"{len(expected)} localizations")
    # the frame axis: spots of frame f lie on frame f's true emitters (not on f +- 1's)
    truth = simulated[1]
    for f in (0, 7, 11):
        got = points.data[points.data[:, 0] == f][:, 1:]
        true = truth.loc[truth.frame == f, ["y", "x"]].to_numpy()
        nearest = np.min(np.linalg.norm(got[:, None, :] - true[None, :, :], axis=2), axis=1)
        assert np.median(nearest) < 0.1
    # napari shows only the current frame's points
    viewer.dims.set_point(0, 7)
    shown = points._view_indices   # private in napari, no public equivalent
    assert len(shown) and np.all(points.data[shown, 0] == 7)
    # sizes from the uncertainty, within the clip
    u = 0.5 * (expected["uncertainty_x"] + expected["uncertainty_y"]).to_numpy()
    np.testing.assert_allclose(points.size, np.clip(6 * u, 1.0, 10.0), rtol=1e-6)


def test_localize_widget_cancel_stops_the_run(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    movie, _ = spotfit.simulate(frames=400, shape=(32, 32), camera=CAMERA, seed=1)
    layer = viewer.add_image(movie, metadata={"spotfit": {"camera": CAMERA}})
    widget = _widgets.LocalizeWidget(viewer)
    widget.movie.value = layer
    {w.name: w for w in widget.setting_widgets}["chunk_frames"].value = 1
    widget.start()
    widget.cancel()
    _wait(qtbot, widget)
    assert widget.status.value == "cancelled"
    assert "movie spots" not in viewer.layers and widget.result is None
    assert widget.run_button.enabled and not widget.cancel_button.enabled


def test_watched_movie_reports_each_chunk_and_cancels_between_chunks(simulated):
    movie = simulated[0]
    seen = []
    watched = _localize.WatchedMovie(movie, CAMERA, report=lambda done, total: seen.append((done, total)))
    locs = _localize.run(watched, spotfit.LocalizeOptions(chunk_frames=5))
    assert seen == [(0, 12), (5, 12), (10, 12), (12, 12)]
    pd.testing.assert_frame_equal(locs, spotfit.localize(movie, camera=CAMERA))
    reads = []

    def cancel_after_first(done, total):
        reads.append(done)
        watched.cancel.set()

    watched = _localize.WatchedMovie(movie, CAMERA, report=cancel_after_first)
    assert _localize.run(watched, spotfit.LocalizeOptions(chunk_frames=5)) is None
    assert reads == [0]


def test_live_preview_localizes_the_frame_on_screen(make_napari_viewer, movie_path):
    viewer = make_napari_viewer()
    layer = viewer.open(movie_path, plugin="spotfit")[0]
    widget = _widgets.LocalizeWidget(viewer)
    widget.movie.value = layer
    viewer.dims.set_point(0, 4)
    widget.live.value = True
    threshold = {w.name: w for w in widget.setting_widgets}["threshold"]
    for value in (2.5, 1.2):            # each change re-localizes the frame, into the same layer
        threshold.value = value
        preview = viewer.layers["movie preview"]
        expected = spotfit.localize(np.asarray(layer.data[4]), threshold=value, camera=CAMERA)
        assert len(expected) > 5
        np.testing.assert_array_equal(preview.data, np.column_stack([np.full(len(expected), 4.0), expected.y,
                                                                     expected.x]))
        assert len(preview.features) == len(expected) and len(preview.size) == len(expected)
    assert [layer.name for layer in viewer.layers].count("movie preview") == 1
    viewer.dims.set_point(0, 9)         # so does a change of frame
    expected = spotfit.localize(np.asarray(layer.data[9]), threshold=1.2, camera=CAMERA)
    np.testing.assert_array_equal(viewer.layers["movie preview"].data[:, 0], np.full(len(expected), 9.0))
    # and of the camera, to its exact value (a spin box would round 0.4875 to 0.49)
    {w.name: w for w in widget.camera_widgets}["sensitivity"].value = 0.4875
    import dataclasses
    expected = spotfit.localize(np.asarray(layer.data[9]), threshold=1.2,
                                camera=dataclasses.replace(CAMERA, sensitivity=0.4875))
    pd.testing.assert_frame_equal(viewer.layers["movie preview"].features.drop(columns="frame"),
                                  expected.drop(columns="frame"))


def test_localize_widget_reports_a_failure_in_the_worker(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    layer = viewer.add_image(np.full((3, 5, 5), 100, np.uint16))
    widget = _widgets.LocalizeWidget(viewer)
    widget.movie.value = layer
    assert "Camera() defaults" in widget.camera.value
    assert widget.camera_values()["baseline"] == spotfit.Camera().baseline
    widget.start()                      # box 7 > a 5 x 5 frame: spotfit.localize's ValueError, in the thread
    _wait(qtbot, widget)
    assert widget.status.value.startswith("failed: box 7 is larger than the frame")
    assert widget.run_button.enabled and "movie spots" not in viewer.layers


LOC_FORMATS = ["parquet", "csv", "thunderstorm", "picasso"]
SUFFIX = {"parquet": ".parquet", "csv": ".csv", "thunderstorm": ".csv", "picasso": ".hdf5"}


@pytest.mark.parametrize("fmt", LOC_FORMATS)
def test_localization_reader_opens_each_format(make_napari_viewer, tmp_path, simulated, fmt):
    locs = spotfit.localize(simulated[0], camera=CAMERA)
    path = tmp_path / f"locs_{fmt}{SUFFIX[fmt]}"
    spotfit.io.save(locs, path, format=fmt)
    if fmt == "thunderstorm":   # ThunderSTORM writes its camera settings beside the table
        path.with_name(path.stem + "-protocol.txt").write_text(
            "ThunderSTORM (1.3)\n\nCamera settings:\n" + json.dumps({"cameraSettings": {"pixelSize": 107.0}}))
    viewer = make_napari_viewer()
    points, rendered = viewer.open(path, plugin="spotfit")
    assert isinstance(points, napari.layers.Points) and isinstance(rendered, napari.layers.Image)
    back = spotfit.io.load(path)
    assert {"frame", "x", "y", "photons"} <= set(points.features.columns)
    assert list(points.features.columns) == list(back.columns)            # all columns as features
    tol = 1e-9 if fmt == "thunderstorm" else 0
    np.testing.assert_allclose(points.data, np.column_stack([locs.frame, locs.y, locs.x]), atol=tol + 1e-4 * (
        fmt == "thunderstorm"))
    # rendered at the default zoom, over a 64 x 80 movie where the file records its shape
    zoom = _layers.DEFAULT_ZOOM
    assert tuple(rendered.scale) == pytest.approx((1 / zoom, 1 / zoom))
    assert tuple(rendered.translate) == pytest.approx((0.5 / zoom - 0.5,) * 2)
    if fmt != "thunderstorm":
        assert rendered.data.shape == (64 * zoom, 80 * zoom)
    assert rendered.data.sum() == pytest.approx(len(locs), rel=0.02)


def test_thunderstorm_without_pixel_size_says_what_to_do(make_napari_viewer, tmp_path, simulated):
    locs = spotfit.localize(simulated[0], camera=CAMERA)
    path = tmp_path / "ts.csv"
    spotfit.io.save(locs, path, format="thunderstorm")
    reader = _reader.get_reader(str(path))
    assert reader is _reader.read_localizations
    with pytest.raises(ValueError, match="Open localizations"):
        reader(str(path))
    viewer = make_napari_viewer()          # the widget that takes the pixel size and the zoom
    widget = _widgets.open_widget()
    viewer.window.add_dock_widget(widget)
    widget.path.value, widget.pixel_size_nm.value, widget.zoom.value = path, 107.0, 4.0
    widget()
    points, rendered = viewer.layers["ts"], viewer.layers["ts rendered"]
    np.testing.assert_allclose(points.data, np.column_stack([locs.frame, locs.y, locs.x]), atol=1e-4)
    np.testing.assert_allclose(rendered.scale, (0.25, 0.25))


def test_reader_leaves_other_csv_files_to_other_readers(tmp_path):
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    assert _reader.get_reader(str(other)) is None
    assert _reader.get_reader(str(tmp_path)) is None


# --------------------------------------------------------------------------
# the rendered image sits over the movie
# --------------------------------------------------------------------------

def test_rendered_layer_puts_a_known_spot_where_it_belongs():
    """Layers' own data -> world transforms (what the viewer draws with), without a viewer: 24 cases."""
    movie = np.zeros((2, 20, 30), np.uint16)
    movie[1, 6, 11] = 1000                                     # camera pixel (row 6, col 11)
    spot = pd.DataFrame({"frame": [1], "x": [11.0], "y": [6.0], "uncertainty_x": [0.05], "uncertainty_y": [0.05]})
    placements = [((1, 1, 1), (0, 0, 0)), ((1, 2.0, 2.0), (0, 3.0, -1.0))]   # as read; any movie placement
    for (scale, translate), zoom, (x, y) in [(p, z, xy) for p in placements for z in (8.0, 5.0, 2.5)
                                             for xy in [(11.0, 6.0), (11.3, 5.8)]]:
        base = napari.layers.Image(movie, scale=scale, translate=translate)
        spot.loc[0, ["x", "y"]] = x, y
        data, kwargs, _ = _layers.render_layer(spot, "r", zoom=zoom, method="histogram", shape=(20, 30),
                                               scale=base.scale, translate=base.translate)
        rendered = napari.layers.Image(data, **kwargs)
        j, i = np.unravel_index(np.argmax(rendered.data), rendered.data.shape)
        world = np.asarray(rendered.data_to_world((j, i)))
        expected = np.asarray(base.data_to_world((1, y, x)))[1:]    # the movie's point at (y, x)
        # the rendered pixel holding the spot has its centre within half a rendered pixel of the spot
        assert np.all(np.abs(world - expected) <= 0.5 * base.scale[1:] / zoom + 1e-9), (world, expected)
        if (x, y) == (11.0, 6.0):   # and the bright camera pixel's centre is that rendered pixel's area
            bright = np.asarray(base.data_to_world((1, 6, 11)))[1:]
            assert np.all(np.abs(world - bright) <= 0.5 * base.scale[1:] / zoom + 1e-9)
        # the rendered image covers the movie exactly: first and last pixel edges on the movie's edges
        for corner, side in (((0, 0), -0.5), ((data.shape[0] - 1, data.shape[1] - 1), 0.5)):
            edge = np.asarray(rendered.data_to_world(corner)) + side * np.asarray(rendered.scale)
            movie_corner = (0, 0, 0) if side < 0 else (0, 19, 29)
            movie_edge = np.asarray(base.data_to_world(movie_corner))[1:] + side * np.asarray(base.scale)[1:]
            np.testing.assert_allclose(edge, movie_edge, atol=1e-9)


def test_render_widget_over_localize_output(make_napari_viewer, qtbot, movie_path):
    viewer = make_napari_viewer()
    layer = viewer.open(movie_path, plugin="spotfit")[0]
    _localize_through_widget(qtbot, viewer, layer)
    points = viewer.layers["movie spots"]
    widget = _widgets.render_widget()
    viewer.window.add_dock_widget(widget)
    widget.points.value = points
    widget.zoom.value = 4.0
    widget()
    rendered = viewer.layers["movie spots rendered"]
    assert rendered.data.shape == (64 * 4, 80 * 4)
    assert rendered.metadata["spotfit"]["method"] == "gaussian"
    np.testing.assert_allclose(rendered.scale, (0.25, 0.25))
    np.testing.assert_allclose(rendered.translate, (0.125 - 0.5,) * 2)
    np.testing.assert_array_equal(rendered.data, spotfit.render.render(spotfit.localize(movie_path), zoom=4.0,
                                                                       method="gaussian"))


def test_undrift_and_link_widgets_give_the_api_results(make_napari_viewer):
    sim = spotfit.simulate_smlm("grid", frames=3000, shape=(64, 64), count=12, mean_on=3.0, seed=4)
    locs = sim.locs
    viewer = make_napari_viewer()
    data, kwargs, _ = _layers.points_layer(locs, "sim")
    points = viewer.add_points(data, **kwargs)
    undrift = _widgets.undrift_widget()
    viewer.window.add_dock_widget(undrift)
    undrift.points.value = points
    undrift()
    corrected_layer = viewer.layers["sim undrifted"]
    corrected, drift = spotfit.undrift(_layers.table(points.data, points.features, points.metadata))
    np.testing.assert_allclose(corrected_layer.data[:, 1:], corrected[["y", "x"]].to_numpy(), atol=1e-9)
    np.testing.assert_array_equal(corrected_layer.data[:, 0], corrected["frame"].to_numpy())
    pd.testing.assert_frame_equal(corrected_layer.metadata["spotfit"]["drift"], drift)
    true = sim.drift.set_index("frame").loc[drift["frame"], ["x", "y"]].to_numpy()
    error = drift[["x", "y"]].to_numpy() - true
    error -= error.mean(axis=0)
    assert np.sqrt(np.mean(error ** 2)) < 0.05    # px: the drift really came out (~6.5 nm at 130 nm/px)
    link = _widgets.link_widget()
    viewer.window.add_dock_widget(link)
    link.points.value = corrected_layer
    link()
    events_layer = viewer.layers["sim undrifted linked"]
    events = spotfit.link(corrected)
    assert len(events) < 0.7 * len(corrected)        # blinks of 3 frames on average were merged
    np.testing.assert_allclose(events_layer.data, np.column_stack([events.frame, events.y, events.x]), atol=1e-9)
    np.testing.assert_array_equal(events_layer.features["n"], events["n"])


# --------------------------------------------------------------------------
# writer, classifier, sample, screenshot
# --------------------------------------------------------------------------

@pytest.mark.parametrize("fmt", LOC_FORMATS)
def test_writer_saves_a_points_layer_in_our_formats(make_napari_viewer, qtbot, tmp_path, movie_path, fmt):
    viewer = make_napari_viewer()
    layer = viewer.open(movie_path, plugin="spotfit")[0]
    _localize_through_widget(qtbot, viewer, layer)
    points = viewer.layers["movie spots"]
    locs = spotfit.localize(movie_path)
    moved = points.data.copy()
    moved[0, 1:] += (0.25, -0.5)            # a point moved in the viewer is saved where it now is
    points.data = moved
    path = tmp_path / f"out{SUFFIX[fmt]}"
    written = _writer.write_thunderstorm(str(path), points.data, points._get_state()) if fmt == "thunderstorm" \
        else points.save(str(path), plugin="spotfit")
    assert [str(path)] == list(written)
    back = spotfit.io.load(path, pixel_size_nm=107.0 if fmt == "thunderstorm" else None)
    assert len(back) == len(locs)
    np.testing.assert_allclose(np.column_stack([back.frame, back.y, back.x]), moved, atol=1e-4)
    np.testing.assert_allclose(back.photons, locs.photons, rtol=1e-5)
    assert back.attrs["spotfit"]["pixel_size_nm"] == pytest.approx(107.0)   # the movie's metadata went along


def test_writer_refuses_fractional_frames(tmp_path):
    with pytest.raises(ValueError, match="frame"):
        _writer.write_points(str(tmp_path / "x.csv"), np.array([[0.5, 1.0, 2.0]]), {"features": None})


def test_classify_widget_colours_good_and_bad(make_napari_viewer, qtbot, movie_path):
    viewer = make_napari_viewer()
    layer = viewer.open(movie_path, plugin="spotfit")[0]
    _localize_through_widget(qtbot, viewer, layer)
    points = viewer.layers["movie spots"]
    widget = _widgets.classify_widget()     # no classifier file: the fit rules
    viewer.window.add_dock_widget(widget)
    widget.points.value, widget.movie.value = points, layer
    widget()
    good, _ = spotfit.ml.label_spots(spotfit.localize(movie_path))
    np.testing.assert_array_equal(points.features["good"].to_numpy(), good.to_numpy())
    assert 0 < good.sum() < len(good)
    colours = np.where(good.to_numpy()[:, None], _layers.GOOD, _layers.BAD)
    np.testing.assert_allclose(points.border_color, colours)


def test_classify_widget_with_a_saved_classifier(make_napari_viewer, qtbot, movie_path, tmp_path):
    _need("sklearn")   # spotfit[ml]: CI installs it
    viewer = make_napari_viewer()
    layer = viewer.open(movie_path, plugin="spotfit")[0]
    _localize_through_widget(qtbot, viewer, layer)
    points = viewer.layers["movie spots"]
    qs = spotfit.ml.simulate_quality_set(n=600, seed=2)
    clf = spotfit.ml.SpotClassifier("logistic").fit(qs.patches, qs.locs.truth)
    saved = clf.save(tmp_path / "clf.zip")
    _widgets.classify_points(points, layer, classifier_file=saved, threshold=0.5)
    locs = spotfit.localize(movie_path)
    good, p = clf.predict_spots(spotfit.io.open_movie(movie_path)[:], locs, camera=layer.metadata["spotfit"]["camera"])
    np.testing.assert_allclose(points.features["p_good"], p, rtol=1e-6)
    np.testing.assert_array_equal(points.features["good"], good)


def test_sample_movie_and_screenshot(make_napari_viewer, qtbot):
    viewer = make_napari_viewer(show=True)
    layers = viewer.open_sample("spotfit", "simulated")
    movie = layers[0]
    assert movie.data.shape == (300, 96, 128) and movie.metadata["spotfit"]["camera"].sensitivity == 0.5
    widget = _widgets.LocalizeWidget(viewer)
    viewer.window.add_dock_widget(widget, name="spotfit: Localize")
    widget.movie.value = movie
    widget.start()
    _wait(qtbot, widget)
    points = viewer.layers["simulated movie spots"]
    truth = layers[1].features      # the detections are the simulated emitters
    assert len(points.data) > 1500 and abs(len(points.data) - len(truth)) < 0.1 * len(truth)
    rendered = _widgets.render_widget()
    viewer.window.add_dock_widget(rendered, name="spotfit: Render")
    rendered.points.value = points
    rendered()
    movie.contrast_limits = (100, 400)
    viewer.layers.selection.active = points
    viewer.dims.set_point(0, 10)
    viewer.window.resize(1400, 1000)
    qtbot.wait(100)
    viewer.reset_view()
    viewer.camera.center = (0, 42, 64)    # spots, rings and the rendered filaments all visible
    viewer.camera.zoom *= 1.3
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.ndim == 3 and shot.shape[2] == 4
    rgb = shot[..., :3].astype(int)
    assert rgb.std() > 10                                    # something is drawn
    yellowish = (rgb[..., 0] > 200) & (rgb[..., 1] > 150) & (rgb[..., 2] < 100)
    assert yellowish.sum() > 20                              # the detections' rings
    magenta = (rgb[..., 0] > 120) & (rgb[..., 2] > 60) & (rgb[..., 1] < rgb[..., 0] - 60)
    assert magenta.sum() > 200                               # the rendered filaments
    out = os.environ.get("SPOTFIT_NAPARI_SCREENSHOT")        # docs/napari_screenshot.png is made this way
    if out:
        from PIL import Image
        Image.fromarray(viewer.screenshot(canvas_only=False, flash=False)).save(out)
