#!/bin/sh
# Builds the .deb and the .rpm with packaging/build.sh (from the source tree,
# into packaging/out/, where the nspawn tier picks the .deb up) and checks
# them with packaging/check.sh: lintian, and the same files in both. Where
# scripts/test.sh has built them already (FREEHA_PACKAGES_BUILT names the
# build's log), it checks those.
# Usage: test_packages.sh SOURCE_ROOT
set -eu
root=$1
[ "$(id -u)" -eq 0 ] || { echo "SKIP: building packages installs build dependencies: needs root"; exit 77; }
command -v apt-get >/dev/null && command -v dpkg >/dev/null || { echo "SKIP: not a Debian machine (no apt-get)"; exit 77; }
start=$(date +%s)
if [ -n "${FREEHA_PACKAGES_BUILT:-}" ]; then
    # scripts/test.sh built them from this tree beside the other suites: its log.
    echo "packaging/build.sh ran beside the other suites (scripts/test.sh); its output:"
    cat "$FREEHA_PACKAGES_BUILT"
else
    sh "$root/packaging/build.sh"
fi
built=$(date +%s)
sh "$root/packaging/check.sh"
echo "package build: $((built - start)) s; checks: $(($(date +%s) - built)) s"
