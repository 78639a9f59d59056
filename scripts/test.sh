#!/bin/sh
# Installs what is missing, builds, runs every test suite, and prints a
# closing "N passed, N failed" line.
#
# The system suites mostly wait (for timeouts, elections, systemd), one at a
# time. What only needs the CPU and is timed by no test runs beside them at
# idle CPU priority (SCHED_IDLE: it gets a CPU only when no test wants it, so
# no test's timing changes): the packages (packaging/build.sh), the
# sanitizer build and its fuzzer (scripts/test-sanitizers.sh), and the
# simulated schedules (the Schedules suite). Then the Packages and Nspawn
# suites check and install the packages built, and the sanitized unit tests
# run. A package build that failed beside the suites is built again by the
# Packages suite, where its error shows.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup-debian.sh
logs=build/meson-logs
mkdir -p "$logs"
rm -f "$logs"/background-* "$logs"/suites.json "$logs"/schedules.json "$logs"/packages.json
(
    chrt -i 0 sh packaging/build.sh >"$logs/background-packages.log" 2>&1 && touch "$logs/background-packages.ok"
    chrt -i 0 sh scripts/test-sanitizers.sh build >"$logs/background-sanitize.log" 2>&1 &&
        chrt -i 0 sh scripts/test-sanitizers.sh fuzz >>"$logs/background-sanitize.log" 2>&1 &&
        touch "$logs/background-sanitize.ok"
) &
builds=$!
( chrt -i 0 meson test -C build --no-rebuild --suite schedules --logbase schedules --print-errorlogs \
    >"$logs/background-schedules.log" 2>&1 ) &
schedules=$!
status=0
meson test -C build --print-errorlogs --no-suite packaging --no-suite nspawn --no-suite schedules --logbase suites ||
    status=$?
wait "$schedules" || status=$?
wait "$builds" || true  # (what failed is seen below)
cat "$logs/background-schedules.log"
if [ -e "$logs/background-packages.ok" ]; then
    export FREEHA_PACKAGES_BUILT="$(pwd)/$logs/background-packages.log"  # (the suite runs elsewhere)
else
    echo "packaging/build.sh failed beside the suites; the Packages suite builds again:"
    tail -n 20 "$logs/background-packages.log"
fi
meson test -C build --print-errorlogs --suite packaging --suite nspawn --logbase packages || status=$?
cat "$logs/background-sanitize.log"
[ -e "$logs/background-sanitize.ok" ] || status=1
sh scripts/test-sanitizers.sh unit || status=$?
python3 - "$logs"/suites.json "$logs"/schedules.json "$logs"/packages.json <<'PY'
import json, sys
passed = failed = skipped = 0
for log in sys.argv[1:]:
    for line in open(log):
        r = json.loads(line)["result"]
        if r == "OK": passed += 1
        elif r == "SKIP": skipped += 1
        else: failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
