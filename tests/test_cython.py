"""Cython: the compiled kernels against plain numpy references, and a downstream extension that cimports
spotfit's core (examples/cython_downstream/) built against the installed package."""
import importlib.util
import math
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest
from scipy.special import erf

import spotfit
from spotfit import _kernels
from spotfit.camera import Camera

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cython_downstream"


# ------------------------------------------------------------------------------ numpy references
def histogram_ref(u, v, height, width):
    ok = np.isfinite(u) & np.isfinite(v) & (u >= 0) & (v >= 0) & (u < width) & (v < height)
    idx = v[ok].astype(np.int64) * width + u[ok].astype(np.int64)
    return np.bincount(idx, minlength=height * width).reshape(height, width).astype(np.float32)


def gaussian_ref(u, v, s, height, width):
    """Vectorized splatting: window +-ceil(3 s) around floor(c), pixel-integrated, unit mass."""
    ok = np.isfinite(u) & np.isfinite(v) & (u >= 0) & (v >= 0) & (u < width) & (v < height)
    u, v, s = u[ok], v[ok], s[ok]
    img = np.zeros(height * width, np.float64)
    radius = np.ceil(3.0 * s).astype(np.int64)
    for r in np.unique(radius):
        b = np.flatnonzero(radius == r)
        k = 2 * int(r) + 1

        def weights(c):
            first = np.floor(c).astype(np.int64) - r
            edges = first[:, None] + np.arange(k + 1)[None, :]
            w = 0.5 * np.diff(erf((edges - c[:, None]) / (math.sqrt(2.0) * s[b][:, None])), axis=1)
            return first, w / w.sum(axis=1, keepdims=True)

        x0, wx = weights(u[b])
        y0, wy = weights(v[b])
        rows, cols = y0[:, None] + np.arange(k), x0[:, None] + np.arange(k)
        w = wy[:, :, None] * wx[:, None, :]
        inside = ((rows >= 0) & (rows < height))[:, :, None] & ((cols >= 0) & (cols < width))[:, None, :]
        idx = rows[:, :, None] * width + cols[:, None, :]
        img += np.bincount(idx[inside], weights=w[inside], minlength=height * width)
    return img.reshape(height, width).astype(np.float32)


def cut_ref(frames, f, r, c, size, camera):
    """Fancy indexing with clipped (edge-replicated) coordinates, then the core's float32 conversion."""
    off = np.arange(size) - size // 2
    rr, cc = r[:, None] + off, c[:, None] + off
    nr, nc = frames.shape[1:]
    inside = ((rr >= 0) & (rr < nr))[:, :, None] & ((cc >= 0) & (cc < nc))[:, None, :]
    rr, cc = np.clip(rr, 0, nr - 1)[:, :, None], np.clip(cc, 0, nc - 1)[:, None, :]
    adu = frames[f[:, None, None], rr, cc]
    if camera.is_scmos:
        adu = adu.astype(np.float32)
        return (adu - camera.offset_map[rr, cc]) / camera.gain_map[rr, cc] * np.float32(1.0 / camera.qe), inside
    scale = camera.sensitivity / (camera.em_gain * camera.qe)
    return adu.astype(np.float32) * np.float32(scale) + np.float32(-camera.baseline * scale), inside


def normalize_ref(flat, kernel, floor, fourth_root):
    """regress.normalize's formulas in numpy float32 (the pre-Cython implementation)."""
    size = int(round(np.sqrt(flat.shape[1])))
    ring = np.zeros((size, size), bool)
    ring[0, :] = ring[-1, :] = ring[:, 0] = ring[:, -1] = True
    ring = ring.ravel()
    nr = float(ring.sum())
    z = flat @ np.stack([kernel, ring / nr]).T.astype(np.float32)
    bg = z[:, 1]
    rp = flat[:, ring]
    var = np.maximum(np.einsum("ij,ij->i", rp, rp) / nr - bg * bg, 1e-6)
    amp = z[:, 0] - bg * kernel.sum()
    noise = np.sqrt(var * float(kernel.dot(kernel)))
    d = flat - bg[:, None]
    if fourth_root:
        root = np.sqrt(np.sqrt(np.maximum(d, 0)))
        q = root / np.maximum(root.sum(axis=1), 1e-12)[:, None]
    else:
        q = d / np.maximum(amp, floor * noise)[:, None]
    return q, np.stack([bg, np.sqrt(var), amp, amp / noise, d.sum(axis=1)])


# ----------------------------------------------------------------------------------- the kernels
def test_histogram_matches_numpy_and_histogram2d():
    rng = np.random.default_rng(0)
    h, w = 37, 53
    u, v = rng.uniform(-3, w + 3, 20000), rng.uniform(-3, h + 3, 20000)
    u[:5] = [np.nan, np.inf, -np.inf, 0.0, w - 1e-9]   # skipped, skipped, skipped, kept, kept
    v[5:8] = [np.nan, h, -1e-12]                        # all three skipped (h is the open upper edge)
    img = _kernels.histogram(u, v, h, w)
    assert img.dtype == np.float32 and img.shape == (h, w)
    assert np.array_equal(img, histogram_ref(u, v, h, w))
    ok = (u >= 0) & (u < w) & (v >= 0) & (v < h)
    h2d = np.histogram2d(v[ok], u[ok], bins=(h, w), range=((0, h), (0, w)))[0]
    assert np.array_equal(img, h2d)
    with pytest.raises(ValueError):
        _kernels.histogram(u, v[:-1], h, w)


@pytest.mark.parametrize("band", [1, 7, 64])
def test_gaussian_splatting_matches_numpy_for_any_threads(band):
    rng = np.random.default_rng(1)
    h, w, n = 61, 47, 3000
    u, v = rng.uniform(-2, w + 2, n), rng.uniform(-2, h + 2, n)
    s = rng.uniform(0.3, 4.0, n)        # radii 1..12: windows cross bands and image borders
    u[0], v[1] = np.nan, np.inf
    ref = gaussian_ref(u, v, s, h, w)
    one = _kernels.gaussian(u, v, s, h, w, threads=1, band=band)
    two = _kernels.gaussian(u, v, s, h, w, threads=2, band=band)
    assert np.array_equal(one, two)      # one writer per band, sums in point order
    # float64 sums in another order, then float32: within a few float32 ulps of the largest pixel.
    assert np.max(np.abs(one - ref)) <= 1e-6 * ref.max()
    # A point far from the border keeps unit mass.
    single = _kernels.gaussian(np.array([20.3]), np.array([30.7]), np.array([1.5]), h, w)
    assert single.sum() == pytest.approx(1.0, abs=1e-6)


def test_render_uses_kernels_with_same_result():
    rng = np.random.default_rng(2)
    import pandas as pd
    locs = pd.DataFrame({"x": rng.uniform(-0.5, 19.49, 500), "y": rng.uniform(-0.5, 14.49, 500),
                         "uncertainty_x": rng.uniform(0.02, 0.2, 500), "uncertainty_y": rng.uniform(0.02, 0.2, 500)})
    hist = spotfit.render.render(locs, zoom=8, shape=(15, 20))
    u, v = (locs.x.to_numpy() + 0.5) * 8, (locs.y.to_numpy() + 0.5) * 8
    assert np.array_equal(hist, histogram_ref(u, v, 120, 160)) and hist.sum() == 500
    gauss = spotfit.render.render(locs, zoom=8, shape=(15, 20), method="gaussian")
    s = np.clip(0.5 * (locs.uncertainty_x + locs.uncertainty_y).to_numpy() * 8, 0.5, 50.0)
    ref = gaussian_ref(u, v, s, 120, 160)
    assert np.max(np.abs(gauss - ref)) <= 1e-6 * ref.max()


@pytest.mark.parametrize("camera", [Camera(), Camera(baseline=99.5, sensitivity=0.46, em_gain=3, qe=0.9),
                                    Camera(offset_map=np.linspace(95, 105, 30 * 41).reshape(30, 41),
                                           gain_map=np.linspace(1.5, 2.5, 30 * 41).reshape(30, 41), qe=0.8)])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.uint32, np.float32, np.float64])
def test_patch_extraction_identical_to_fancy_indexing(camera, dtype):
    rng = np.random.default_rng(3)
    frames = rng.integers(0, 250, (4, 30, 41)).astype(dtype)
    n = 400
    f, r, c = rng.integers(0, 4, n), rng.integers(0, 30, n), rng.integers(0, 41, n)
    r[:4], c[:4] = [0, 29, 0, 29], [0, 40, 40, 0]        # the four corners: most of the patch padded
    p, _, inside = spotfit.cut_boxes(frames, f, r, c, 9, camera=camera, border="edge", threads=2)
    p_ref, inside_ref = cut_ref(frames, f, r, c, 9, camera)
    assert p.dtype == np.float32 and np.array_equal(p, p_ref)   # same float32 operations: bit-identical
    assert np.array_equal(inside, inside_ref) and not inside[0].all() and inside[0, 4:, 4:].all()
    with pytest.raises(ValueError, match="outside"):
        spotfit.cut_boxes(frames, f, r + 30, c, 9, camera=camera)


def test_extract_patches_kernel_equals_numpy_path():
    import pandas as pd
    from spotfit.ml import extract_patches
    rng = np.random.default_rng(4)
    movie = rng.integers(90, 3000, (6, 25, 33)).astype(np.uint16)
    f, r, c = rng.integers(0, 6, 300), rng.integers(0, 25, 300), rng.integers(0, 33, 300)
    cam = Camera(baseline=100, sensitivity=0.5)
    a = extract_patches(movie, pd.DataFrame({"frame": f, "peak_row": r, "peak_col": c}), 7, camera=cam,
                        return_mask=True, chunk_frames=2)
    b = cut_ref(movie, f, r, c, 7, cam)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("fourth_root", [False, True])
def test_normalize_matches_numpy(fourth_root):
    from spotfit.ml import regress
    rng = np.random.default_rng(5)
    p, _ = regress.training_set(2000, size=9, seed=5)
    p = p * 3.0 + 100.0                        # raw-count-like offset: stresses float32 cancellation
    q, st = regress.normalize(p, 1.3, "fourth_root" if fourth_root else "none")
    flat = p.reshape(len(p), -1).astype(np.float32)
    q_ref, st_ref = normalize_ref(flat, regress._kernel(9, 1.3), 3.0, fourth_root)
    # The kernel sums in float64, numpy in float32 (BLAS order): differences are float32 rounding of
    # sums of 81 terms of ~1e3-1e4, i.e. ~1e-4 of the pixel scale at most.
    assert q.shape == (2000, 9, 9) and q.dtype == np.float32
    scale = np.abs(q_ref).max(axis=1, keepdims=True)
    assert np.max(np.abs(q.reshape(2000, -1) - q_ref) / scale) < 1e-4
    for k, name in enumerate(["background", "noise", "amplitude", "snr", "total"]):
        ref = st_ref[k]
        tol = 1e-4 * np.abs(ref).max() if name == "total" else 1e-3 * np.abs(ref).max()
        assert np.max(np.abs(st[name].to_numpy() - ref)) <= tol, name
    assert rng is not None


# ---------------------------------------------------------------------------- downstream cimport
def test_get_include_points_at_headers_pxd_and_library():
    assert hasattr(spotfit, "get_include"), "spotfit must re-export spotfit._include.get_include"
    pxd_root, header_root = map(Path, spotfit.get_include())
    assert (pxd_root / "spotfit" / "spotcore.pxd").is_file()
    for h in ("spotcore.h", "types.h", "filter.h", "detect.h", "fit.h", "localize.h"):
        assert (header_root / "spotcore" / h).is_file(), h
    from spotfit._include import get_library_dir, get_library_name
    assert (Path(get_library_dir()) / get_library_name()).is_file()


def _build_tools_env():
    missing = [m for m in ("Cython", "mesonbuild") if importlib.util.find_spec(m) is None]
    if shutil.which("ninja") is None and importlib.util.find_spec("ninja") is None:
        missing.append("ninja")
    assert not missing, f"building the downstream example needs {missing}: pip install cython meson ninja"
    env = dict(os.environ)
    # cython and ninja scripts of this interpreter's environment first on PATH (venv not activated).
    env["PATH"] = os.pathsep.join([sysconfig.get_path("scripts"), os.path.dirname(sys.executable),
                                   env.get("PATH", "")])
    return env


def test_downstream_extension_builds_and_matches_localize(tmp_path):
    assert hasattr(spotfit, "get_include"), "spotfit must re-export spotfit._include.get_include"
    env = _build_tools_env()
    src = tmp_path / "src"
    shutil.copytree(EXAMPLE, src)
    build = tmp_path / "build"
    meson = [sys.executable, "-m", "mesonbuild.mesonmain"]
    for cmd in (meson + ["setup", str(build), str(src)], meson + ["compile", "-C", str(build)]):
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    so = next(build.glob("localize_frame*" + sysconfig.get_config_var("EXT_SUFFIX")))
    spec = importlib.util.spec_from_file_location("localize_frame", so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    camera = Camera(baseline=100, sensitivity=0.5)
    movie, truth = spotfit.simulate(frames=2, shape=(96, 128), density=20, camera=camera, seed=7)
    frame = np.ascontiguousarray(movie[1])
    got = mod.localize_frame(frame, baseline=100, sensitivity=0.5, psf_sigma=1.3, box=7, threshold=1.5)
    ref = spotfit.localize(frame, camera=camera, psf_sigma=1.3, box=7, threshold=1.5)
    assert len(ref) >= 10 and len(got["x"]) == len(ref)
    # Same core code and inputs, so bit-identical results (fits do not depend on threads or batching).
    for key, col in [("x", "x"), ("y", "y"), ("photons", "photons"), ("background", "background"),
                     ("sigma", "sigma_x"), ("uncertainty_x", "uncertainty_x")]:
        assert np.array_equal(got[key], ref[col].to_numpy(np.float32)), key
    assert np.array_equal(got["peak_row"], ref.peak_row.to_numpy()) and np.array_equal(got["peak_col"],
                                                                                         ref.peak_col.to_numpy())
    assert np.array_equal(got["status"], ref.status.cat.codes.to_numpy())
    with pytest.raises(ValueError, match="box"):
        mod.localize_frame(frame, box=4)      # the core's error message crosses the boundary


_FRESH_VENV_CHECK = r"""
import importlib.util, subprocess, sys, sysconfig
from pathlib import Path
import numpy as np
import spotfit
venv, src, build = map(Path, sys.argv[1:4])
assert Path(spotfit.__file__).resolve().is_relative_to(venv.resolve()), spotfit.__file__
meson = [sys.executable, "-m", "mesonbuild.mesonmain"]
for cmd in (meson + ["setup", str(build), str(src)], meson + ["compile", "-C", str(build)]):
    subprocess.run(cmd, check=True, capture_output=True, text=True)
so = next(build.glob("localize_frame*" + sysconfig.get_config_var("EXT_SUFFIX")))
spec = importlib.util.spec_from_file_location("localize_frame", so)
mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mod)
camera = spotfit.Camera(baseline=100, sensitivity=0.5)
movie, _ = spotfit.simulate(frames=1, shape=(96, 128), density=20, camera=camera, seed=3)
frame = np.ascontiguousarray(movie[0])
got = mod.localize_frame(frame, baseline=100, sensitivity=0.5)
ref = spotfit.localize(frame, camera=camera)
assert len(ref) >= 10 and np.array_equal(got["x"], ref.x.to_numpy(np.float32)), "x differs"
assert np.array_equal(got["photons"], ref.photons.to_numpy(np.float32)), "photons differ"
print("fresh-venv downstream OK", len(ref))
"""


def test_downstream_extension_builds_against_wheel_in_fresh_venv(tmp_path):
    """Issue 11: build a wheel of this checkout, install it alone into a new virtual environment, and
    build + run the downstream example there. The venv sees the build tools and spotfit's dependencies
    through a path entry (not the parent's site hooks, so an editable install cannot shadow the wheel)."""
    root = Path(__file__).resolve().parents[1]
    env = _build_tools_env()
    wheels = tmp_path / "wheels"
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", str(root), "--no-build-isolation", "--no-deps",
                           "-q", "-w", str(wheels)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    wheel = next(wheels.glob("spotfit-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    vpy = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    vsite = Path(subprocess.run([str(vpy), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                                check=True, capture_output=True, text=True).stdout.strip())
    # Install the wheel with this interpreter's pip into the venv's site-packages (pip has no --prefix
    # for another interpreter; --target is exactly "unpack the wheel here").
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q",
                           "--target", str(vsite), str(wheel)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (vsite / "zz_parent_packages.pth").write_text(sysconfig.get_path("purelib") + "\n")
    src = tmp_path / "src"
    shutil.copytree(EXAMPLE, src)
    proc = subprocess.run([str(vpy), "-c", _FRESH_VENV_CHECK, str(venv), str(src), str(tmp_path / "build")],
                          env=env, capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "fresh-venv downstream OK" in proc.stdout
