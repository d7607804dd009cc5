"""The one way to import an optional dependency: a missing package names the extra that installs it."""
from __future__ import annotations

import importlib
from types import ModuleType

#: Extra of ``pip install spotfit[...]`` that provides each optional top-level package.
EXTRAS = {"h5py": "io", "pyarrow": "io", "yaml": "io", "sklearn": "ml", "skops": "ml", "joblib": "ml",
          "threadpoolctl": "ml", "matplotlib": "plot", "tensorflow": "tf", "dask": "dask", "distributed": "dask",
          "zarr": "dask", "napari": "napari"}


def need(module: str, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise ImportError naming the ``pip install spotfit[extra]`` that provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = EXTRAS.get(top, "all")
        what = f"{purpose} needs" if purpose else "this needs"
        raise ImportError(f"{what} {top!r} ({module!r} could not be imported: {exc}); "
                          f"install it with `pip install spotfit[{extra}]`") from exc
