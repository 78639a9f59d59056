#!/bin/sh
# The unit tests under ASan+UBSan, then the heartbeat decoder fuzzed for
# FUZZ_SECONDS (default 60), both from one clang build in build-sanitize/.
# Prints the fuzzer's exec count. Exits non-zero on any finding.
# Usage: test-sanitizers.sh [build|unit|fuzz]: one step alone (scripts/test.sh
# builds and fuzzes beside the system suites); all three without.
set -eu
cd "$(dirname "$0")/.."
step="${1:-all}"
case "$step" in
all | build | unit | fuzz) ;;
*) echo "usage: sh scripts/test-sanitizers.sh [build|unit|fuzz]" >&2; exit 2 ;;
esac
seconds="${FUZZ_SECONDS:-60}"
[ -d build-sanitize ] || CXX=clang++ meson setup build-sanitize -Dfuzzing=true -Db_sanitize=address,undefined \
    -Db_lundef=false -Dman=disabled >/dev/null
# Only what the unit suite runs (and the fuzzer), not the whole tree: the list comes from meson,
# so a new unit test cannot be forgotten here.
unit=$(meson introspect --tests build-sanitize | python3 -c '
import json, os, sys
build = os.path.realpath("build-sanitize")
for t in json.load(sys.stdin):
    if any(s.split(":")[-1] == "unit" for s in t["suite"]):
        print(os.path.relpath(t["cmd"][0], build))')
# shellcheck disable=SC2086
ninja -C build-sanitize tests/fuzz/fuzz-decode $unit
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
if [ "$step" = all ] || [ "$step" = unit ]; then
    meson test -C build-sanitize --no-rebuild --suite unit --print-errorlogs
    echo "sanitizers: unit tests clean under ASan+UBSan"
fi
[ "$step" = all ] || [ "$step" = fuzz ] || exit 0
# The fuzzer adds what it finds to its first directory: work on a copy of the seed corpus.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/corpus"
cp tests/fuzz/corpus/* "$work/corpus/"
status=0
build-sanitize/tests/fuzz/fuzz-decode -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix=build-sanitize/ "$work/corpus" >"$work/log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
    tail -n 60 "$work/log"
    echo "fuzz-decode: a finding (exit status $status); the input is saved under build-sanitize/"
    exit 1
fi
grep -E "^(Done |stat::number_of_executed_units)" "$work/log"
echo "sanitizers: fuzz-decode ran ${seconds}s with no finding"
