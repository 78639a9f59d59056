#!/bin/sh
# Installs what is missing, builds, runs every test suite, and prints a
# closing "N passed, N failed" line.
#
# The system suites mostly wait (for timeouts, elections, systemd), one at a
# time; the two long builds that no suite times, the packages
# (packaging/build.sh) and the sanitizer build (scripts/test-sanitizers.sh
# --build-only), run beside them at idle CPU priority (SCHED_IDLE: they get
# the CPU only when no test wants it, so no test's timing changes). Then the
# Packages and Nspawn suites use the packages built, and the sanitized unit
# tests and the fuzzer run. A failed background build is built again by its
# own suite, in the foreground, where its error shows.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup-debian.sh
logs=build/meson-logs
mkdir -p "$logs"
rm -f "$logs"/background-*
(
    chrt -i 0 sh packaging/build.sh >"$logs/background-packages.log" 2>&1 &&
        touch "$logs/background-packages.ok"
    chrt -i 0 sh scripts/test-sanitizers.sh --build-only >"$logs/background-sanitize.log" 2>&1 &&
        touch "$logs/background-sanitize.ok"
) &
background=$!
status=0
meson test -C build --print-errorlogs --no-suite packaging --no-suite nspawn --logbase suites || status=$?
wait "$background" || true  # (what failed is seen below)
if [ -e "$logs/background-packages.ok" ]; then
    export FREEHA_PACKAGES_BUILT="$logs/background-packages.log"
else
    echo "packaging/build.sh failed beside the suites; the Packages suite builds again:"
    tail -n 20 "$logs/background-packages.log"
fi
meson test -C build --print-errorlogs --suite packaging --suite nspawn --logbase packages || status=$?
[ -e "$logs/background-sanitize.ok" ] || tail -n 40 "$logs/background-sanitize.log"
sh scripts/test-sanitizers.sh || status=$?
python3 - "$logs/suites.json" "$logs/packages.json" <<'PY'
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
