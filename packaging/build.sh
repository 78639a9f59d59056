#!/bin/sh
# Builds the Debian package and the RPM of this source tree into
# packaging/out/ (freeha_VERSION_ARCH.deb and the Debian source package with
# its .changes, freeha-VERSION-1.ARCH.rpm),
# installing the build tools and build dependencies it needs (Debian 12, root).
# The packages are built without their unit-test step (nocheck: scripts/test.sh
# runs every suite on the tree itself) and without debug-symbol packages.
# packaging/check.sh then checks them.
# Usage: sh packaging/build.sh
set -eu
[ $# -eq 0 ] || { echo "usage: sh packaging/build.sh" >&2; exit 2; }
cd "$(dirname "$0")/.."
top=$(pwd)
out=$top/packaging/out

# NEWS lists the releases; meson.build and both changelogs must follow it.
python3 packaging/check-versions.py "$top" || { echo "build.sh: add the release to NEWS and both changelogs" >&2; exit 1; }
version=$(sed -n "s/^  version: '\([^']*\)',$/\1/p" meson.build)

install_missing() {
    missing=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
    done
    if [ -n "$missing" ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        # shellcheck disable=SC2086
        apt-get install -y -qq --no-install-recommends $missing
    fi
}
install_missing dpkg-dev debhelper rpm

stage=$(mktemp -d /tmp/freeha-package.XXXXXX)
trap 'rm -rf "$stage"' EXIT
src=$stage/freeha-$version
mkdir "$src"
# The tree as it is (committed or not), without build directories and outputs.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard | xargs -0 sh -c \
        'for f; do [ -e "$f" ] && printf "%s\0" "$f"; done' sh | tar --null -T - -cf - | tar -xf - -C "$src"
else
    tar --exclude='./build*' --exclude=./packaging/out -cf - . | tar -xf - -C "$src"
fi
rm -rf "$src/packaging/out"

# Debian: debian/ lives in packaging/ in this tree.
cp -r "$src/packaging/debian" "$src/debian"
( cd "$src" && DEBIAN_FRONTEND=noninteractive apt-get build-dep -y -qq -Pnocheck . >/dev/null )
# Source and binary, so that lintian sees both (packaging/check.sh).
( cd "$src" && DEB_BUILD_OPTIONS="nocheck noautodbgsym ${DEB_BUILD_OPTIONS:-}" dpkg-buildpackage -us -uc -Pnocheck )
rm -rf "$src/debian"

# RPM: --nodeps because the BuildRequires name RPM packages, which dpkg
# provides under Debian names (installed just above).
mkdir -p "$stage/rpm/SOURCES"
tar -C "$stage" -czf "$stage/rpm/SOURCES/freeha-$version.tar.gz" "freeha-$version"
rpmbuild -bb --nodeps --without check --define "_topdir $stage/rpm" packaging/rpm/freeha.spec

mkdir -p "$out"
rm -f "$out"/freeha[_-]*
cp "$stage"/freeha_"$version"* "$out"/
cp "$stage"/rpm/RPMS/*/freeha-"$version"-*.rpm "$out"/
echo "build.sh: wrote"; ls -l "$out"
