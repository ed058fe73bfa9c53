#!/usr/bin/env bash
# tests/fuzz/run.sh <smoke|fuzz|merge> <fuzz-dir> <seconds> <jobs> <name:max_len:dict>...
#
# Called by tests/fuzz/module.mk (make fuzz-smoke / fuzz / fuzz-corpus) once the targets are
# built in <fuzz-dir>/bin. For each target:
#   1. replay every file of tests/fuzz/corpus/<name>/ and tests/fuzz/regressions/<name>/
#      (exact bytes, any size): a crash there fails the target at once;
#   2. fuzz for <seconds>, with max_len and the dictionary given; new inputs go to the working
#      corpus <fuzz-dir>/corpus/<name>/ (the repository's corpus is only read), crash inputs
#      to <fuzz-dir>/crashes/<name>/.
# One line per target, "PASS fuzz/<name>: ..." or "FAIL fuzz/<name>: <reason>: <input>", as
# tests/run.sh counts them; logs in <fuzz-dir>/logs/. Exits 1 when any target failed.
# merge: add to tests/fuzz/corpus/<name>/ the working-corpus inputs that bring new coverage.
set -uo pipefail
cd "$(dirname "$0")/../.."

if [ $# -lt 4 ]; then
    echo "usage: $0 <smoke|fuzz|merge> <fuzz-dir> <seconds> <jobs> <name:max_len:dict>..." >&2
    exit 2
fi
mode=$1 work=$2 secs=$3 jobs=$4
shift 4
case "$mode" in smoke | fuzz | merge) ;; *)
    echo "$0: unknown mode $mode" >&2
    exit 2
    ;;
esac
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || jobs=1

# Per-input time limit (a hang is a failure) and memory limit.
timeout=${FUZZ_TIMEOUT:-20}
rss=${FUZZ_RSS_MB:-2048}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

mkdir -p "$work/logs" "$work/results"

# Regular, non-hidden files of a directory, sorted (none when it does not exist).
list_inputs() {
    [ -d "$1" ] && find "$1" -maxdepth 1 -type f ! -name '.*' | LC_ALL=C sort
}

# The most telling line of a failed run's log.
reason_of() {
    local log=$1 line
    line=$(grep -m1 -E '^fuzz invariant broken: ' "$log") ||
        line=$(grep -m1 -E 'runtime error: ' "$log") ||
        line=$(grep -m1 -E '^SUMMARY: ' "$log") ||
        line=$(grep -m1 -E 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)' "$log") ||
        line="exited with status $2"
    line=${line#==*== }
    printf '%s' "${line:0:240}"
}

run_target() {
    local spec=$1 name maxlen dict
    IFS=: read -r name maxlen dict <<<"$spec"
    local bin=$work/bin/fuzz_$name
    local seeds=tests/fuzz/corpus/$name regs=tests/fuzz/regressions/$name
    local rlog=$work/logs/$name.replay.log flog=$work/logs/$name.fuzz.log
    if [ ! -x "$bin" ]; then
        echo "FAIL fuzz/$name: not built ($bin)"
        return 1
    fi

    local -a inputs=()
    mapfile -t inputs < <(list_inputs "$seeds"; list_inputs "$regs")
    if [ ${#inputs[@]} -gt 0 ]; then
        "$bin" -timeout="$timeout" -rss_limit_mb="$rss" "${inputs[@]}" >"$rlog" 2>&1
        local rc=$?
        if [ $rc -ne 0 ]; then
            local culprit
            culprit=$(grep -E '^Running: ' "$rlog" | tail -n 1 | cut -c10-)
            echo "FAIL fuzz/$name: $(reason_of "$rlog" $rc): replaying ${culprit:-?} (log $rlog)"
            return 1
        fi
    fi

    local corpus=$work/corpus/$name crashes=$work/crashes/$name
    mkdir -p "$corpus" "$crashes"
    if [ "$mode" = merge ]; then
        mkdir -p "$seeds"
        local before after
        before=$(list_inputs "$seeds" | wc -l)
        "$bin" -merge=1 -max_len="$maxlen" -timeout="$timeout" -rss_limit_mb="$rss" \
            "$seeds" "$corpus" >"$work/logs/$name.merge.log" 2>&1 || {
            echo "merge fuzz/$name failed (log $work/logs/$name.merge.log)"
            return 1
        }
        after=$(list_inputs "$seeds" | wc -l)
        echo "merge fuzz/$name: $((after - before)) new inputs in $seeds"
        return 0
    fi

    local -a args=(-max_total_time="$secs" -max_len="$maxlen" -timeout="$timeout"
        -rss_limit_mb="$rss" -print_final_stats=1 -artifact_prefix="$crashes/")
    [ -n "$dict" ] && [ -f "tests/fuzz/dict/$dict.dict" ] && args+=(-dict="tests/fuzz/dict/$dict.dict")
    local -a dirs=("$corpus")
    [ -d "$seeds" ] && dirs+=("$seeds")
    [ -d "$regs" ] && dirs+=("$regs")
    local start=$SECONDS
    "$bin" "${args[@]}" "${dirs[@]}" >"$flog" 2>&1
    local rc=$? took=$((SECONDS - start))
    local execs
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$flog" | grep -oE '[0-9]+$' | tail -n 1)
    if [ $rc -ne 0 ]; then
        local input
        input=$(grep -oE 'Test unit written to [^ ]+' "$flog" | tail -n 1 | cut -c22-)
        echo "FAIL fuzz/$name: $(reason_of "$flog" $rc): crash input ${input:-none written} (log $flog)"
        return 1
    fi
    echo "PASS fuzz/$name: ${took}s, ${execs:-?} execs, ${#inputs[@]} inputs replayed," \
        "working corpus $(list_inputs "$corpus" | wc -l) files"
}

# Run targets, at most $jobs at once; each prints its own line as it finishes.
status=0
running=0
declare -a names=()
for spec in "$@"; do
    name=${spec%%:*}
    names+=("$name")
    (
        run_target "$spec"
        echo $? >"$work/results/$name"
    ) &
    running=$((running + 1))
    if [ $running -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait
passed=0 failed=0
for name in "${names[@]}"; do
    if [ "$(cat "$work/results/$name" 2>/dev/null)" = 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        status=1
    fi
done
[ "$mode" = merge ] || echo "fuzz ($mode): $passed targets passed, $failed failed"
exit $status
