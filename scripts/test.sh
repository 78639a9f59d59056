#!/bin/sh
# Installs what is missing, builds, runs every test suite, and prints a
# closing "N passed, N failed" line.
set -eu
cd "$(dirname "$0")/.."
sh scripts/setup-debian.sh
status=0
meson test -C build --print-errorlogs || status=$?
sh scripts/test-sanitizers.sh || status=$?
python3 - build/meson-logs/testlog.json <<'PY'
import json, sys
passed = failed = skipped = 0
for line in open(sys.argv[1]):
    r = json.loads(line)["result"]
    if r == "OK": passed += 1
    elif r == "SKIP": skipped += 1
    else: failed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
PY
exit $status
