#!/bin/sh
# The unit tests under ASan+UBSan, then the heartbeat decoder fuzzed for
# FUZZ_SECONDS (default 60), both from one clang build in build-sanitize/.
# Prints the fuzzer's exec count. Exits non-zero on any finding.
# --build-only: builds what it would run, and stops there (scripts/test.sh
# builds beside the system suites, then runs).
set -eu
cd "$(dirname "$0")/.."
build_only=false
case "${1:-}" in
--build-only) build_only=true ;;
"") ;;
*) echo "usage: sh scripts/test-sanitizers.sh [--build-only]" >&2; exit 2 ;;
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
[ "$build_only" = false ] || exit 0
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
meson test -C build-sanitize --no-rebuild --suite unit --print-errorlogs
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
echo "sanitizers: unit tests clean under ASan+UBSan; fuzz-decode ran ${seconds}s with no finding"
