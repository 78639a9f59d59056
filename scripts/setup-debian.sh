#!/bin/sh
# Installs what building and testing freeha needs on Debian 12, then builds.
set -eu
cd "$(dirname "$0")/.."
# keepalived: bench/compare measures it beside freehad (its Bench test runs in CI).
packages="meson ninja-build pkgconf g++ libsystemd-dev nlohmann-json3-dev libgtest-dev libgmock-dev
          libinih-dev libsodium-dev scdoc systemd dbus-daemon dbus-user-session util-linux python3 iproute2 procps
          clang libclang-rt-dev nftables keepalived
          systemd-container debhelper dpkg-dev lintian rpm
          iputils-arping iputils-ping ndisc6 libndp-tools psmisc e2fsprogs"
missing=""
for p in $packages; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq $missing
fi
# The Cockpit page's browser test (nspawn tier): cockpit-ws and cockpit-bridge
# serve the page, headless Chromium driven by chromedriver through selenium
# shows it. Without recommends (avahi-daemon, udev, a printer stack...); and
# cockpit.socket masked before cockpit-ws's first install, so that neither
# this machine nor the nspawn tier's containers (overlays of this root) listen
# on the web console's port: the test starts cockpit-ws itself.
browser="cockpit-ws cockpit-bridge chromium chromium-driver python3-selenium"
missing=""
for p in $browser; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    export DEBIAN_FRONTEND=noninteractive
    dpkg-query -W -f='${Status}' cockpit-ws 2>/dev/null | grep -q "ok installed" || systemctl mask cockpit.socket
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi
[ -d build ] || meson setup build
ninja -C build
