"""spotfit's version, read from the installed package's metadata (its one source is meson.build)."""
from __future__ import annotations

from importlib import metadata

try:
    VERSION = metadata.version("spotfit")
except metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    VERSION = "0+unknown"
