#!/usr/bin/env bash
# tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...] — runs libFuzzer targets (a -DCL_FUZZ=ON build)
# for SECONDS each, starting from a copy of the committed corpus (tests/fuzz/corpus/<target>/,
# left untouched) with the target's dictionary (tests/fuzz/<target>.dict) when there is one.
# Exits non-zero at the first target that crashes, leaks or times out; the input that did it is
# kept under $CL_FUZZ_OUT (default: a temporary directory) and its path printed: commit it as
# tests/fuzz/corpus/<target>/regress-<issue> once fixed, so fuzz-regress-<target> replays it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run.sh BUILD_DIR SECONDS [TARGET...]}
secs=${2:?usage: run.sh BUILD_DIR SECONDS [TARGET...]}
shift 2
out=${CL_FUZZ_OUT:-$(mktemp -d /tmp/cl-fuzz-XXXXXX)}
if [ $# -eq 0 ]; then
    set -- $(cd "$here/corpus" && ls)
fi
for t in "$@"; do
    bin="$build/tests/fuzz_$t"
    [ -x "$bin" ] || { echo "run.sh: no $bin (configure with -DCL_FUZZ=ON)" >&2; exit 2; }
    work="$out/$t"
    mkdir -p "$work/corpus" "$work/crash"
    cp -r "$here/corpus/$t/." "$work/corpus/"
    args=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
          -artifact_prefix="$work/crash/")
    [ -f "$here/$t.dict" ] && args+=(-dict="$here/$t.dict")
    start=$(date +%s)
    if ! "$bin" "${args[@]}" "$work/corpus" >"$work/log" 2>&1; then
        echo "fuzz $t: FAILED after $(( $(date +%s) - start ))s; log $work/log" >&2
        ls "$work/crash" >&2
        tail -40 "$work/log" >&2
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
    echo "fuzz $t: ${runs:-?} runs in ${secs}s, no failure"
done
[ -n "${CL_FUZZ_OUT:-}" ] || rm -rf "$out"
