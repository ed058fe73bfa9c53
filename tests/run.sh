#!/usr/bin/env bash
# tests/run.sh [--unit-only] <build-dir>...: run every unit test binary and the integration
# suite against each build directory, then print the closing tally "N passed, N failed".
set -uo pipefail
cd "$(dirname "$0")/.."
unit_only=0
if [ "${1:-}" = --unit-only ]; then unit_only=1; shift; fi
[ $# -gt 0 ] || set -- build

out=$(mktemp)
one=$(mktemp)
trap 'rm -f "$out" "$one"' EXIT
for build in "$@"; do
    echo "== $build"
    # A sanitizer report in any process fails the run (exit code and text are both checked).
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
    for t in "$build"/tests/test_*; do
        [ -x "$t" ] || continue
        "$t" > "$one" 2>&1
        rc=$?
        sed -E "s#^(PASS|FAIL) #\1 [$build] #" "$one" | tee -a "$out"
        if [ "$rc" -ne 0 ] && ! grep -q '^FAIL ' "$one"; then
            echo "FAIL [$build] $(basename "$t"): exited with status $rc" | tee -a "$out"
            tail -n 30 "$one"
        fi
    done
    if [ "$unit_only" -eq 0 ]; then
        python3 tests/integration/run.py "$build/bin" 2>&1 \
            | sed -E "s#^(PASS|FAIL) #\1 [$build] #" | tee -a "$out"
        rc=${PIPESTATUS[0]}
        if [ "$rc" -ne 0 ] && ! grep -q "^FAIL \[$build\] integration" "$out"; then
            echo "FAIL [$build] integration: runner exited with status $rc" | tee -a "$out"
        fi
    fi
done
# The fuzz targets replay their corpus and regressions and fuzz a few seconds each (clang).
if [ "$unit_only" -eq 0 ] && [ -z "${LP_SKIP_FUZZ:-}" ]; then
    echo "== fuzz (smoke)"
    make --no-print-directory fuzz-smoke 2>&1 | grep -E '^(PASS|FAIL) ' | tee -a "$out"
    if [ "${PIPESTATUS[0]}" -ne 0 ] && ! grep -q '^FAIL fuzz' "$out"; then
        echo "FAIL fuzz: make fuzz-smoke failed (is clang installed? scripts/deps.sh test)" \
            | tee -a "$out"
    fi
fi
passed=$(grep -c '^PASS ' "$out")
failed=$(grep -c '^FAIL ' "$out")
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
