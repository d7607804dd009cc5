"""Fuzz target: arbitrary bytes as a TIFF file -> spotfit.io -> spotfit.localize.

Contract checked: a damaged or unsupported file raises spotfit.io.MovieError (a ValueError) naming
the file; a readable one gives a well-formed localization table. Anything else (another exception,
a crash, a hang, unbounded memory) is a finding. Seeds: fuzz/corpus/tiff (fuzz/make_corpus.py).
"""
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import instrumented, main  # noqa: E402

with instrumented("spotfit", "tifffile"):
    import spotfit  # noqa: E402
    import spotfit.io  # noqa: E402

import numpy as np  # noqa: E402

PATH = os.path.join(tempfile.mkdtemp(prefix="spotfit-fuzz-"), "movie.tif")
MAX_PIXELS = 1 << 21  # larger (valid) movies are only opened and read one frame: keeps runs fast
OK_VALUE_ERRORS = ("larger than the frame", "NaN or inf", "float32 range")


def check_table(locs, n, rows, cols):
    assert len(locs) == 0 or (locs.frame.min() >= 0 and locs.frame.max() < n), "frame out of range"
    if len(locs):
        assert locs.peak_row.between(0, rows - 1).all() and locs.peak_col.between(0, cols - 1).all()
    conv = locs[locs.status == "converged"]
    assert np.isfinite(conv.drop(columns="status").to_numpy(float)).all(), "NaN in a converged row"


def test_one_input(data: bytes):
    with open(PATH, "wb") as f:
        f.write(data)
    try:
        n, rows, cols = spotfit.io.movie_info(PATH)[:3]
    except spotfit.io.MovieError as exc:
        assert PATH in str(exc) or "movie.tif" in str(exc), f"error does not name the file: {exc}"
        return
    if n < 1 or rows < 1 or cols < 1:
        # Known io finding (corpus/tiff/regress_zero_size_frame.tif): movie_info accepts a 0x0 frame.
        # localize must still refuse it clearly.
        try:
            spotfit.localize(PATH, box=3, threads=1)
        except ValueError as exc:
            assert "empty" in str(exc) or "larger than the frame" in str(exc), exc
            return
        raise AssertionError(f"localize accepted an empty movie {(n, rows, cols)}")
    try:
        if n * rows * cols > MAX_PIXELS:
            if rows * cols <= MAX_PIXELS:
                first, chunk = next(spotfit.io.iter_chunks(PATH, chunk_frames=1))
                assert first == 0 and chunk.shape == (1, rows, cols), chunk.shape
            return
        locs = spotfit.localize(PATH, box=3, chunk_frames=2, threads=1)
    except spotfit.io.MovieError:
        return
    except ValueError as exc:
        if any(s in str(exc) for s in OK_VALUE_ERRORS):
            return
        raise
    check_table(locs, n, rows, cols)


if __name__ == "__main__":
    main(test_one_input)
