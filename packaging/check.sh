#!/bin/sh
# Checks the packages that packaging/build.sh wrote to packaging/out/:
# lintian (source and binary) reports no error or warning that an override
# does not justify, and the .rpm installs the same files and conffiles as
# the .deb.
# Usage: sh packaging/check.sh
set -eu
[ $# -eq 0 ] || { echo "usage: sh packaging/check.sh" >&2; exit 2; }
cd "$(dirname "$0")/out"
for tool in lintian rpm dpkg-deb; do
    command -v "$tool" >/dev/null || { echo "check.sh: $tool is not installed" >&2; exit 1; }
done
set -- freeha_*.changes; changes=$1
set -- freeha_*.deb; deb=$1
set -- freeha-*.rpm; rpm=$1
[ -f "$changes" ] && [ -f "$deb" ] && [ -f "$rpm" ] || { echo "check.sh: run packaging/build.sh first" >&2; exit 1; }

echo "== lintian $changes"
lintian --display-info --info --fail-on error,warning "$changes"
echo "lintian: no errors, no warnings"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The same tree on both sides: merged /usr (Debian 12 keeps units in /lib),
# compression left to each distribution, and each format's own bookkeeping
# (Debian's changelog, copyright and lintian overrides, RPM's .build-id
# links) left out.
normalise() {
    sed -e 's|^\./|/|' -e 's|^/lib/|/usr/lib/|' -e 's|\.gz$||' \
        -e '\|^/usr/share/doc/freeha/changelog$|d' -e '\|^/usr/share/doc/freeha/copyright$|d' \
        -e '\|^/usr/share/lintian/overrides/freeha$|d' -e '\|^/usr/lib/\.build-id/|d' | sort
}
dpkg-deb --fsys-tarfile "$deb" | tar -tf - | grep -v '/$' | normalise > "$work/deb"
rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm" | grep -v '^d' | cut -d' ' -f2- | normalise > "$work/rpm"
echo "== files: $deb vs $rpm"
diff -u "$work/deb" "$work/rpm" || { echo "FAIL: the packages install different files"; exit 1; }
echo "same $(wc -l < "$work/deb") files"
dpkg-deb --ctrl-tarfile "$deb" | tar -xOf - ./conffiles | sort > "$work/deb.conf"
rpm -qcp "$rpm" | sort > "$work/rpm.conf"
echo "== conffiles"
diff -u "$work/deb.conf" "$work/rpm.conf" || { echo "FAIL: the packages mark different conffiles"; exit 1; }
cat "$work/deb.conf"
