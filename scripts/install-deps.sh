#!/usr/bin/env bash
# Installs every Debian package vpcd needs to build, run and test (Debian 12, as root). Idempotent.
# Usage: scripts/install-deps.sh [build|test|bench|all]   (default: test)
set -euo pipefail
what=${1:-test}
export DEBIAN_FRONTEND=noninteractive

build_pkgs=(build-essential cmake ninja-build pkg-config git
  libboost-dev libssl-dev libsqlite3-dev libnl-3-dev libnl-route-3-dev nlohmann-json3-dev uuid-dev libpcap-dev libnftables-dev
  libbpf-dev clang
  libcpprest-dev libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev
  iproute2 openssl ca-certificates procps)
# dpdk-dev: dpdk-testpmd (DPDK's virtio-user), the vhost-user front-end of tests/slow/test_vhost_user.py and
# bench/e2e/vhost_user.sh (Debian 12's dpdk 22.11.11 ships testpmd in dpdk-dev, not in dpdk).
# debhelper, dpkg-dev, lintian, fakeroot: packaging/build-deb.sh, which scripts/test.sh runs in the background for the
# package test (installed here, in the foreground, so no apt-get runs at the same time as another).
# nftables (nft): tests/integration/uplink_os_test.cc reads the uplink's ingress table back.
test_pkgs=(python3 python3-pytest python3-jsonschema clang libclang-rt-14-dev iputils-ping iperf3 ethtool curl sqlite3 kmod psmisc tcpdump iproute2 nftables dpdk-dev
  debhelper dpkg-dev lintian fakeroot)
# nftables: nft, the kernel router's firewall that bench/e2e/firewall.py compares vpcd's security groups with.
bench_pkgs=(netsniff-ng openvswitch-switch wrk linux-perf nftables)

pkgs=("${build_pkgs[@]}")
case "$what" in
  build) ;;
  test) pkgs+=("${test_pkgs[@]}") ;;
  bench) pkgs+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  all) pkgs+=("${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
  *) echo "usage: $0 [build|test|bench|all]" >&2; exit 2 ;;
esac

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Test tooling from npm (playwright-core, @redocly/cli) needs node and npm: Debian's, unless a node that brings its
# own npm is installed already (a nodesource nodejs conflicts with Debian's npm package).
if [ "$what" != build ] && ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
