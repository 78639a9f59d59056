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
# prometheus: the nspawn tier scrapes the cluster with a Prometheus of its own
# (its own configuration, storage and network namespace). The package's own
# service would start on this machine at the install and at every boot, and in
# the test containers, which boot this machine's tree: it is masked first
# (`systemctl unmask prometheus` to run one here), and its recommended
# node exporter is left out.
if ! dpkg-query -W -f='${Status}' prometheus 2>/dev/null | grep -q "ok installed"; then
    mkdir -p /etc/systemd/system
    [ -e /etc/systemd/system/prometheus.service ] || ln -s /dev/null /etc/systemd/system/prometheus.service
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends prometheus
fi
[ -d build ] || meson setup build
ninja -C build
