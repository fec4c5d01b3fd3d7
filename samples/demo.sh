#!/usr/bin/env bash
# The main job: the Burgers benchmark over resolutions under the tracer,
# reports and plots into out/.  Called by ./run.sh demo after the build.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
out=out
mkdir -p "$out"
tm=build/bin/tidemark
if [ ! -x "$tm" ]; then
  echo "demo: build/bin/tidemark is not built yet" >&2
  exit 1
fi
trace="$out/exact.trace"
rm -f "$trace"
"$tm" run -o "$trace" -- build/tests/tracer/progs/exact
"$tm" summary "$trace"
"$tm" leaks "$trace"
