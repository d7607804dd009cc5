"""spotfit's napari plugin (``pip install spotfit[napari]``), found by napari through the npe2 manifest
``napari.yaml`` (entry point ``napari.manifest``).

- Readers: movies (every format :func:`spotfit.io.open_movie` reads; the Image layer carries the camera in
  ``metadata["spotfit"]["camera"]``) and localization files (:func:`spotfit.io.load`: Points at
  (frame, y, x) with every column a feature, and a rendered super-resolution Image over the movie).
- Writers: a Points layer to parquet, csv, Picasso hdf5 or ThunderSTORM csv (:func:`spotfit.io.save`).
- Widgets: Localize (settings from :class:`spotfit.LocalizeOptions`, worker thread, progress, cancel),
  Render, Classify (good/bad colours), Open localizations (pixel size, zoom); a simulated sample movie.

napari, magicgui and Qt are imported only in this subpackage; ``import spotfit`` never loads them.
"""
from .._shared.optional import need

need("napari", "the spotfit napari plugin")
