#!/usr/bin/env bash
# CI step (issue 8): the C++ core and the Python extension built with -fsanitize=address,undefined.
#   1. The extension built with -Dsanitize=true -Dexamples=true into a throwaway venv (build/sanitize/);
#      the same meson build gives the C++ core tests (test_core, test_multi, test_frame_fit) and example, run under ASan/UBSan,
#      leaks checked.
#   2. The core tests and example again under valgrind (a plain build: valgrind and ASan do not mix).
#   3. The C++-touching pytest files with libasan preloaded into Python, detect_leaks=1. Python itself
#      keeps memory at exit by design, so a leak report fails the step only when one of its stacks runs
#      through our code (spotcore / _spotcore); pybind11's one-off module-init allocations are suppressed.
# Exits non-zero on any failure. Time-boxed: each stage has a `timeout`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=$ROOT/build/sanitize
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} OMP_WAIT_POLICY=passive
PY=${PYTHON:-python3}
start=$SECONDS
stage() { echo; echo "== sanitize: $* ($((SECONDS - start)) s) =="; }

need_apt=()
command -v valgrind >/dev/null || need_apt+=(valgrind)
command -v g++ >/dev/null || need_apt+=(g++)
if [ ${#need_apt[@]} -gt 0 ]; then
  stage "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
LIBASAN=$(g++ -print-file-name=libasan.so)
if [ ! -e "$LIBASAN" ]; then echo "libasan.so not found (g++ -print-file-name gave '$LIBASAN')" >&2; exit 1; fi

rm -rf "$OUT"
mkdir -p "$OUT/logs"
stage "venv with the build tools"
"$PY" -m venv "$OUT/venv"
VPY=$OUT/venv/bin/python
timeout 600 "$VPY" -m pip install -q meson-python meson ninja pybind11 cython \
  numpy scipy pandas tifffile tqdm pytest hypothesis psutil h5py pyarrow pyyaml
export PATH=$OUT/venv/bin:$PATH

cat > "$OUT/lsan.supp" <<'SUPP'
# One-off allocations of pybind11's module initialisation (type records, docstrings, internals) live
# until the interpreter exits; they are not per-call leaks.
leak:pybind11::cpp_function::
leak:pybind11::detail::get_internals
leak:pybind11::detail::make_new_python_type
leak:pybind11::class_
leak:pybind11::enum_
leak:pybind11::detail::enum_base
leak:pybind11_init__spotcore
leak:PyInit__spotcore
SUPP
asan_common="abort_on_error=0:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1"

stage "extension + C++ core test with -Dsanitize=true (one meson build, installed into the venv)"
# -Dexamples=true builds test_core and localize_synthetic in the same (sanitized) build directory.
timeout 1200 "$VPY" -m pip install -q --no-build-isolation --no-deps "$ROOT" \
  -Csetup-args=-Dsanitize=true -Csetup-args=-Dexamples=true -Csetup-args=-Dbuildtype=debug \
  -Cbuild-dir="$OUT/ext-build" >"$OUT/logs/ext-build.log" 2>&1 || { tail -50 "$OUT/logs/ext-build.log"; exit 1; }
# The installed copy must be the sanitized one (not a dev install of the main environment).
(cd "$OUT" && LD_PRELOAD="$LIBASAN" ASAN_OPTIONS=detect_leaks=0 "$VPY" - <<'PYCHECK'
import spotfit._spotcore as m, subprocess, sys
out = subprocess.run(["ldd", m.__file__], capture_output=True, text=True).stdout
print("extension:", m.__file__)
sys.exit(0 if "libasan" in out and "/build/sanitize/venv/" in m.__file__ else "extension is not the ASan build")
PYCHECK
) || exit 1

stage "C++ core test and example under ASan/UBSan"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ASAN_OPTIONS="detect_leaks=1:$asan_common" timeout 300 "$OUT/ext-build/cpp/test_core"
ASAN_OPTIONS="detect_leaks=1:$asan_common" timeout 300 "$OUT/ext-build/cpp/test_multi"
ASAN_OPTIONS="detect_leaks=1:$asan_common" timeout 300 "$OUT/ext-build/cpp/test_frame_fit"
ASAN_OPTIONS="detect_leaks=1:$asan_common" timeout 300 "$OUT/ext-build/cpp/localize_synthetic" 10 64

stage "C++ core test and example under valgrind"
meson setup "$OUT/core-plain" -Dexamples=true -Dbuildtype=plain -Doptimization=1 -Ddebug=true >"$OUT/logs/core-plain-setup.log"
timeout 1200 ninja -C "$OUT/core-plain" cpp/test_core cpp/test_multi cpp/test_frame_fit cpp/localize_synthetic >"$OUT/logs/core-plain-build.log"
# OpenMP's thread pool is kept until exit (reported as "possibly lost"); definite leaks fail the step.
vg=(valgrind -q --error-exitcode=9 --leak-check=full --errors-for-leak-kinds=definite --track-origins=yes)
OMP_NUM_THREADS=2 timeout 900 "${vg[@]}" "$OUT/core-plain/cpp/test_core"
OMP_NUM_THREADS=2 timeout 600 "${vg[@]}" "$OUT/core-plain/cpp/test_multi"
OMP_NUM_THREADS=2 timeout 600 "${vg[@]}" "$OUT/core-plain/cpp/test_frame_fit"
OMP_NUM_THREADS=2 timeout 300 "${vg[@]}" "$OUT/core-plain/cpp/localize_synthetic" 3 48

stage "pytest (C++-touching files) under ASan, detect_leaks=1"
TESTS=(tests/test_filter.py tests/test_fit.py tests/test_localize.py tests/test_io.py tests/test_api.py
       tests/test_hardening.py tests/test_properties.py tests/test_fit_starts.py)
rm -f "$OUT"/logs/lsan.*
status=0
# From the repository root `import spotfit` finds only the venv's copy (the sources are in python/).
(LD_PRELOAD="$LIBASAN" \
  ASAN_OPTIONS="detect_leaks=1:$asan_common:log_path=$OUT/logs/lsan" \
  LSAN_OPTIONS="suppressions=$OUT/lsan.supp:print_suppressions=0:exitcode=0" \
  SPOTFIT_SANITIZE=1 HYPOTHESIS_PROFILE=sanitize \
  timeout 900 "$VPY" -m pytest -q -p no:cacheprovider -x "${TESTS[@]}") || status=$?
# Memory errors abort the process (non-zero above); leak reports are written to logs/lsan.<pid>.
leaks=0
for f in "$OUT"/logs/lsan.*; do
  [ -e "$f" ] || continue
  if grep -q "ERROR: AddressSanitizer\|runtime error:" "$f"; then cat "$f"; status=1; fi
  # A leak block counts when any frame of its stack is in our code.
  if awk 'BEGIN{RS=""} /(Direct|Indirect) leak/ && /spotcore/ {found=1; print} END{exit !found}' "$f"; then
    leaks=1
  fi
done
if [ "$leaks" -ne 0 ]; then echo "LeakSanitizer: leaks through spotcore (above)" >&2; status=1; fi
if [ "$status" -eq 5 ]; then echo "pytest collected no tests: failing" >&2; status=1; fi
stage "done, status $status"
exit "$status"
