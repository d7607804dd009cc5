"""Real recordings from ../shared/data (skipped with a reason when that folder is absent)."""
import os

import numpy as np
import pytest
import tifffile

import spotfit


def test_locan_dstorm_rapidstorm_references_found_within_1px(shared_data):
    folder = os.path.join(shared_data, "locan-dstorm")
    ref = np.loadtxt(os.path.join(folder, "rapidSTORM_from_images.txt"), comments="#")
    movie = tifffile.imread(os.path.join(folder, "images.tif"))
    ref = ref[ref[:, 2] < len(movie)]  # columns: x [nm], y [nm], frame (0-based)
    assert len(ref) > 0
    locs = spotfit.localize(movie, camera=spotfit.Camera(baseline=520, sensitivity=1.0), psf_sigma=1.3)
    # rapidSTORM measures from the image corner in 133 nm pixels: column = x / 133 - 0.5.
    for x, y, frame in ref[:, :3]:
        here = locs[locs.frame == int(frame)]
        d = np.hypot(here.x - (x / 133 - 0.5), here.y - (y / 133 - 0.5))
        assert len(here) and d.min() <= 1.0, (x, y, frame)



def test_locan_rapidstorm_file_reads_as_the_manual_conversion(shared_data):
    folder = os.path.join(shared_data, "locan-dstorm")
    ref = np.loadtxt(os.path.join(folder, "rapidSTORM_from_images.txt"), comments="#")
    df = spotfit.io.load(os.path.join(folder, "rapidSTORM_from_images.txt"), pixel_size_nm=133.0)
    assert len(df) == len(ref) > 0
    np.testing.assert_allclose(df["x"], ref[:, 0] / 133 - 0.5)
    np.testing.assert_allclose(df["y"], ref[:, 1] / 133 - 0.5)
    np.testing.assert_array_equal(df["frame"], ref[:, 2].astype(np.int64))
