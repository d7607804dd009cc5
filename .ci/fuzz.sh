#!/usr/bin/env bash
# CI step (issue 8): coverage-guided fuzzing (atheris/libFuzzer) of the TIFF -> localize path and of the
# fitter's inputs, FUZZ_SECONDS (default 60) per target, libFuzzer -seed FUZZ_SEED (default 1), starting
# from the seed corpus in fuzz/corpus/.
# New corpus entries go to build/fuzz/ (the committed corpus is not modified); a crash, a hang
# (-timeout), an out-of-memory (-rss_limit_mb) or a broken invariant leaves its input in build/fuzz/
# and fails the step. Past findings (fuzz/findings/; any bytes are a valid input of either target) are
# run first, as seeds of both targets, so a regression fails at once. Without atheris (no wheel for this Python) a bounded
# random-mutation loop runs the same targets instead (fuzz/_common.py). Uses the spotfit of the current
# Python (installs it if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
PY=${PYTHON:-python3}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
SEED=${FUZZ_SEED:-1}   # libFuzzer -seed (fixed in CI so that a run is reproducible)
OUT=$PWD/build/fuzz
start=$SECONDS

"$PY" -c "import spotfit" 2>/dev/null || timeout 900 "$PY" -m pip install -q .
"$PY" -c "import atheris" 2>/dev/null || timeout 300 "$PY" -m pip install -q atheris \
  || echo "atheris could not be installed: using the random-mutation fallback" >&2

rm -rf "$OUT"
status=0
for target in tiff fit boxes drift link multi; do
  echo "== fuzz: $target, ${SECONDS_PER_TARGET} s ($((SECONDS - start)) s) =="
  mkdir -p "$OUT/$target/corpus" "$OUT/$target/artifacts"
  rc=0
  # Outer timeout: fuzz budget + start-up (instrumenting imports) + slack; a hang past it fails too.
  timeout $((SECONDS_PER_TARGET + 420)) "$PY" -u "fuzz/fuzz_$target.py" \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=30 -rss_limit_mb=3072 -max_len=16384 -seed="$SEED" \
    -print_final_stats=1 -artifact_prefix="$OUT/$target/artifacts/" \
    "$OUT/$target/corpus" "fuzz/corpus/$target" fuzz/findings >"$OUT/$target/log.txt" 2>&1 || rc=$?
  grep -E "^(#[0-9]+ *DONE|stat::number_of_executed_units|stat::peak_rss_mb|fallback fuzzer)" "$OUT/$target/log.txt" || true
  if [ "$rc" -ne 0 ]; then
    echo "fuzz target $target FAILED (exit $rc); log tail:" >&2
    tail -60 "$OUT/$target/log.txt" >&2
    ls -l "$OUT/$target/artifacts/" >&2 || true
    status=1
  fi
done
echo "== fuzz: done in $((SECONDS - start)) s, status $status =="
exit "$status"
