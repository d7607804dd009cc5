"""``python -m spotfit.cli``: the same program as ``spotfit``."""
import sys

from . import main

sys.exit(main())
