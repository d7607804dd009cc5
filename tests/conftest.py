import os
import signal

import numpy as np
import pytest

# The C++ core uses OpenMP; keep the suite's thread use predictable on small CI machines.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")
PEERS_PYTHON = os.path.join(os.path.dirname(__file__), "..", "bench", "peers", ".venv", "bin", "python")


@pytest.fixture
def ctrl_c_handled():
    """Ctrl-C handled as in a terminal, whatever started the tests: a shell that runs a job in the background
    without job control starts it with SIGINT ignored, and every process below inherits that (Python then
    never raises KeyboardInterrupt). A caught signal is reset to the default in a child at exec, so the
    child Python installs its own handler."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


@pytest.fixture(scope="session")
def peers_python():
    """The interpreter of the peers' venv (Picasso, Locan: bash bench/peers/install_peers.sh; .ci/run does)."""
    if not os.path.exists(PEERS_PYTHON):
        pytest.skip("peers' venv not installed (bash bench/peers/install_peers.sh)")
    return PEERS_PYTHON


@pytest.fixture(scope="session")
def shared_data():
    path = os.path.join(SHARED, "data")
    if not os.path.isdir(path):
        pytest.skip("../shared/data is not present on this machine")
    return path


@pytest.fixture(scope="session")
def acceptance_movie():
    """The issue-2 acceptance simulation: sigma 1.3 px, 500-5000 photons, 20 photons/px, ~15 spots/frame."""
    import spotfit
    cam = spotfit.Camera(baseline=100, sensitivity=0.5)
    movie, truth = spotfit.simulate(frames=400, shape=(256, 256), density=15, photons=(500, 5000), background=20,
                                    psf_sigma=1.3, camera=cam, seed=2024)
    return movie, truth, cam


def mirror_pad_reference(image, kernel_step):
    """Straightforward numpy reference of one separable B3 smoothing with scipy's 'mirror' border."""
    from scipy import ndimage
    k = np.array([1, 4, 6, 4, 1], dtype=np.float64) / 16
    if kernel_step == 2:
        k = np.array([1, 0, 4, 0, 6, 0, 4, 0, 1], dtype=np.float64) / 16
    tmp = ndimage.correlate1d(image.astype(np.float64), k, axis=0, mode="mirror")
    return ndimage.correlate1d(tmp, k, axis=1, mode="mirror")


# --- napari tests in their own process ------------------------------------------------------------------
# Mesa's OpenGL (napari's canvas) and TensorFlow (spotfit.ml) each carry LLVM; a process that has loaded
# both aborts at exit ("free(): invalid pointer", CI 2026-12-05) after every test has passed. So, inside a
# full run, tests/test_napari.py runs in a child pytest and each of its tests reports the child's outcome.
NAPARI_CHILD = "SPOTFIT_NAPARI_CHILD"


def pytest_pycollect_makemodule(module_path, parent):
    if module_path.name == "test_napari.py" and not os.environ.get(NAPARI_CHILD):
        return _ChildProcessModule.from_parent(parent, path=module_path)
    return None


class _ChildProcessModule(pytest.File):
    def _child(self, *args, tests=None):
        import subprocess
        import sys
        env = dict(os.environ, **{NAPARI_CHILD: "1"})
        targets = [f"{self.path}::{name}" for name in tests] if tests else [str(self.path)]
        return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args, *targets],
                              env=env, cwd=str(self.config.rootpath), capture_output=True, text=True, timeout=1800)

    def collect(self):
        listing = self._child("--collect-only")
        names = [line.split("::", 1)[1] for line in listing.stdout.splitlines()
                 if line.startswith(("tests/", str(self.path))) and "::" in line]
        if not names:   # skipped or broken at import: one item says which
            names = ["<module>"]
        for name in names:
            yield _ChildProcessItem.from_parent(self, name=name)

    def outcomes(self):
        """Run the child once; {test name: (outcome, message)} from its JUnit XML."""
        if not hasattr(self, "_outcomes"):
            import tempfile
            import xml.etree.ElementTree as ET
            with tempfile.TemporaryDirectory() as tmp:
                xml = os.path.join(tmp, "napari.xml")
                selected = [item.name for item in self.session.items
                            if item.parent is self and item.name != "<module>"]
                run = self._child("-rA", f"--junitxml={xml}", tests=selected)
                self._log = run.stdout[-6000:] + run.stderr[-3000:]
                self._returncode = run.returncode
                self._outcomes = {}
                if os.path.exists(xml):
                    for case in ET.parse(xml).iter("testcase"):
                        outcome, message = "passed", ""
                        for child in case:
                            if child.tag in ("failure", "error", "skipped"):
                                outcome = child.tag
                                message = (child.get("message") or "") + "\n" + (child.text or "")
                        self._outcomes[case.get("name")] = (outcome, message)
        return self._outcomes


class _ChildProcessItem(pytest.Item):
    def runtest(self):
        outcomes = self.parent.outcomes()
        if self.name == "<module>":
            if self.parent._returncode == 5 or "skipped" in self.parent._log:
                pytest.skip(self.parent._log.strip().splitlines()[-1] if self.parent._log.strip() else "skipped")
            pytest.fail(f"the napari tests did not run (exit {self.parent._returncode}):\n{self.parent._log}",
                        pytrace=False)
        if self.name not in outcomes:
            pytest.fail(f"the child pytest gave no result for {self.name} (exit {self.parent._returncode}):\n"
                        f"{self.parent._log}", pytrace=False)
        outcome, message = outcomes[self.name]
        if outcome == "skipped":
            pytest.skip(message.strip().splitlines()[0] if message.strip() else "skipped in the child")
        if outcome != "passed":
            pytest.fail(f"{outcome} in the child pytest:\n{message}", pytrace=False)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}::{self.name} (child process)"
