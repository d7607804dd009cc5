#!/usr/bin/env bash
# Create a separate virtual environment with the peer SMLM tools (Picasso, trackpy, Locan)
# so that they and their pins (numba, numpy 2.x, PyQt6, ...) never leak into
# spotfit's own environment.
#
#   bash bench/peers/install_peers.sh [VENV_DIR]      (default: bench/peers/.venv)
#
# Environment overrides: PYTHON (interpreter, default python3; needs >= 3.10),
# PICASSO_SPEC (default picassosr==0.11.3), TRACKPY_SPEC (default trackpy==0.7), LOCAN_SPEC (default
# locan==0.22.0; tests/test_io.py reads our ThunderSTORM CSV with it).
# Only PyPI is needed. Takes ~2 minutes and ~1 GB (Picasso pulls its GUI stack).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${1:-$here/.venv}"
python="${PYTHON:-python3}"
picasso_spec="${PICASSO_SPEC:-picassosr==0.11.3}"
trackpy_spec="${TRACKPY_SPEC:-trackpy==0.7}"
locan_spec="${LOCAN_SPEC:-locan==0.22.0}"

"$python" - <<'EOF'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"install_peers.sh: Python >= 3.10 needed (picassosr 0.11), got {sys.version.split()[0]}")
EOF

if [ ! -x "$venv/bin/python" ]; then
    echo "creating $venv" >&2
    "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet "$picasso_spec" "$trackpy_spec" "$locan_spec" tifffile pandas scipy

# Smoke test: the APIs run_peers.py calls exist, and report the versions.
# (MPLBACKEND=Agg: Picasso imports matplotlib.pyplot; there is no display here.)
MPLBACKEND=Agg "$venv/bin/python" - <<'EOF' 2>/dev/null
import sys, io
_o, _e = sys.stdout, sys.stderr
sys.stdout = sys.stderr = io.StringIO()   # playsound3 prints about audio backends
import picasso, picasso.io, picasso.localize as L, trackpy, locan, numba, numpy, scipy, pandas, tifffile
sys.stdout, sys.stderr = _o, _e
for name in ("identify", "fit", "get_spots", "fit_spots_gauss", "locs_from_fits_gauss"):
    assert hasattr(L, name), f"picasso.localize.{name} missing"
print("peers venv OK:", " ".join(f"{m.__name__}={m.__version__}" for m in
      (picasso, trackpy, locan, numba, numpy, scipy, pandas, tifffile)))
EOF
echo "python: $venv/bin/python" >&2
