#!/bin/sh
# Installs what building and testing freeha needs on Debian 12, then builds.
set -eu
cd "$(dirname "$0")/.."
# keepalived: bench/compare measures it beside freehad (its Bench test runs in CI).
packages="meson ninja-build pkgconf g++ libsystemd-dev nlohmann-json3-dev libgtest-dev libgmock-dev
          libinih-dev libsodium-dev libcurl4-openssl-dev scdoc systemd dbus-daemon dbus-user-session util-linux python3 iproute2 procps
          clang libclang-rt-dev nftables keepalived
          systemd-container debhelper dpkg-dev lintian rpm
          iputils-arping iputils-ping ndisc6 libndp-tools psmisc e2fsprogs"
# The packages of $* that are not installed yet.
missing() {
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || printf '%s ' "$p"
    done
}
export DEBIAN_FRONTEND=noninteractive
missing=$(missing $packages)
if [ -n "$missing" ]; then
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq $missing
fi
# Tools of the nspawn and etcd tiers, without recommends (avahi-daemon, udev,
# a printer stack, a node exporter...):
# - the Cockpit page's browser test: cockpit-ws and cockpit-bridge serve the
#   page, headless Chromium driven by chromedriver through selenium shows it;
# - the Prometheus test: a Prometheus of its own (its own configuration,
#   storage and network namespace) scrapes the cluster;
# - the etcd tests (issue 21): etcd-server's members run in the tests' own
#   namespaces, etcd-client's etcdctl asks them who leads, openssl makes
#   their TLS certificates.
# Their packages' own services (cockpit.socket, prometheus.service,
# etcd.service) would start on this machine at the install and at every boot,
# and in the test containers, which boot this machine's tree: they are masked
# before the first install (`systemctl unmask ...` to run one here); the tests
# start their own.
tier="cockpit-ws cockpit-bridge chromium chromium-driver python3-selenium prometheus etcd-server etcd-client openssl"
missing=$(missing $tier)
if [ -n "$missing" ]; then
    mkdir -p /etc/systemd/system
    for unit in cockpit.socket prometheus.service etcd.service; do
        [ -e "/etc/systemd/system/$unit" ] || ln -s /dev/null "/etc/systemd/system/$unit"
    done
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing
fi
[ -d build ] || meson setup build
ninja -C build
