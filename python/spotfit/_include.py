"""Where a downstream Cython or C++ build finds spotfit's headers, ``.pxd`` and core library.

In the manner of ``numpy.get_include()``; see docs/cython.md. Works for a wheel / ``pip install .``
(files inside the installed package) and for a meson-python editable install (files in the source
and build trees, found through the package's resource reader).
"""
from __future__ import annotations

import importlib.resources
import os
import sys
from pathlib import Path
from typing import List

__all__ = ["get_include", "get_library_dir", "get_library_name"]

_HEADER = ("include", "spotcore", "spotcore.h")
_PXD = "spotcore.pxd"


def _resource(*parts: str) -> Path:
    # A plain install gives a pathlib.Path; the editable loader maps each installed file to its
    # source or build path (a pathlib.Path too).
    node = importlib.resources.files("spotfit").joinpath(*parts)
    path = Path(os.fspath(node)) if isinstance(node, os.PathLike) else None
    if path is None or not path.is_file():
        raise FileNotFoundError(f"spotfit installation lacks {'/'.join(parts)}; reinstall spotfit "
                                "(`pip install spotfit`) to build against it")
    return path


def get_include() -> List[str]:
    """Folders to add to a downstream build's include path.

    Returns
    -------
    list of str
        ``[pxd_root, header_root]``: ``pxd_root`` holds ``spotfit/spotcore.pxd`` (for Cython's
        ``-I``/``include_path``, so ``from spotfit.spotcore cimport ...`` works); ``header_root``
        holds ``spotcore/*.h`` (for the C++ compiler's ``-I``). Pass both to both tools.
    """
    pxd_root = _resource(_PXD).parent.parent
    header_root = _resource(*_HEADER).parent.parent
    return [str(pxd_root), str(header_root)]


def get_library_name() -> str:
    """File name of the core's shared library on this platform (``libspotcore.so`` on Linux)."""
    if sys.platform == "win32":
        return "spotcore.dll"
    return "libspotcore.dylib" if sys.platform == "darwin" else "libspotcore.so"


def get_library_dir() -> str:
    """Folder holding the core's shared library; link with ``-L<dir> -lspotcore -Wl,-rpath,<dir>``."""
    return str(_resource("lib", get_library_name()).parent)
