#!/usr/bin/env bash
# tidemark's two entry points on a fresh Debian machine:
#   ./run.sh demo   install missing packages, build, run the Burgers benchmark
#                   under the tracer, write reports and plots to out/
#   ./run.sh test   install missing packages, build, run the whole test suite
#   ./run.sh build  install missing packages and build only
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

usage() {
  sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

build() {
  ./setup.sh
  cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build -j"$(nproc)"
}

case "${1:-}" in
  build) build ;;
  test)
    build
    cd build && ctest --output-on-failure -j"$(nproc)" "${@:2}"
    ;;
  demo)
    build
    exec samples/demo.sh "${@:2}"
    ;;
  -h|--help|help) usage ;;
  *) echo "run.sh: unknown command '${1:-}' (expected demo or test)" >&2; usage ;;
esac
