import os

import numpy as np
import pytest

# The C++ core uses OpenMP; keep the suite's thread use predictable on small CI machines.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")
PEERS_PYTHON = os.path.join(os.path.dirname(__file__), "..", "bench", "peers", ".venv", "bin", "python")


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
