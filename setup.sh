#!/usr/bin/env bash
# Installs the Debian packages tidemark needs, skipping what is already there.
# Run as root (or with sudo available) on Debian 12.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libunwind-dev libdw-dev libelf-dev libzstd-dev
  libsundials-dev libcmocka-dev gnuplot-nox fonts-dejavu-core
  chromium  # headless, loads the HTML reports in the tests
  python3 python3-dev python3-numpy python3-scipy
  python3-pytest  # the pytest plugin (tidemark pytest) and its pytester tests
  libjemalloc2  # tests: another allocator preloaded with the tracer
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "setup: installing ${missing[*]}"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
