#!/bin/sh
# scripts/deps.sh - install the Debian packages SAGE needs to build, test and benchmark (only those missing).
# Usage: scripts/deps.sh [--test] [--bench]
set -eu
pkgs="cmake make gcc pkg-config libjansson-dev libsqlite3-dev clang libclang-rt-14-dev clang-format"
# `sage cluster` (cli/cluster.c) runs Slurm 22.05 and munge; its test (tests/integration/test_cluster.sh)
# also uses iproute2 (network namespaces) and jq.
pkgs="$pkgs slurm-wlm slurmctld slurmd munge slurm-client iproute2 jq"
# The Python package (python/): Debian's interpreter headers, pytest for its tests, setuptools and pip for
# `pip install --no-build-isolation .`.
pkgs="$pkgs python3-dev python3-pytest python3-setuptools python3-pip"
for arg in "$@"; do
    case $arg in
    # The dashboard's browser test (tests/integration/test_dashboard.c) runs Debian's Chromium headless:
    # installed for the tests only (make test), not for make demo.
    --test) pkgs="$pkgs chromium" ;;
    --bench) pkgs="$pkgs gstreamer1.0-tools gstreamer1.0-plugins-base libzmq3-dev libtbb-dev g++" ;;
    *) echo "usage: scripts/deps.sh [--test] [--bench]" >&2; exit 2 ;;
    esac
done
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing Debian packages:$missing" >&2
    echo "deps: run as root, or: sudo apt-get install -y$missing" >&2
    exit 1
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || apt-get update
# shellcheck disable=SC2086
apt-get install -y -qq $missing >/dev/null
