#!/usr/bin/env bash
# The main job (./run.sh demo, after the build): the Burgers benchmark over
# resolutions, timed plainly, then traced once per resolution; sweep verdict,
# regions, leaks and plots in out/.
#
#   samples/demo.sh [--resolutions 101,201,...|seed] [--runs N] [--leaky-rhs]
#
# seed = the seed's full range 101..20001 (hours here: docs/solvers.md says
# how long); the default stops at 2001.
# out/timings.txt|json, out/runtime-normalized.png   run time vs native scipy
# out/traces/burgers.N.trace                           one trace per resolution
# out/sweep/{memory-vs-resolution,timelines}.png, sweep.json   the verdict
# out/regions.N.txt, out/leaks.N.txt, out/timeline.N.png      per resolution
# out/report.html          the HTML report: sweep page over every trace
# out/report.N.html        the HTML report of the largest N alone
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."

resolutions=101,201,401,801,1001,2001
runs=2   # timing repetitions; keeps the default demo near 3 minutes here
leaky=()
while [ $# -gt 0 ]; do
  case "$1" in
    --resolutions) resolutions=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --leaky-rhs) leaky=(--leaky-rhs); shift ;;
    -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done

[ "$resolutions" = seed ] && resolutions=101,201,401,801,1001,2001,4001,8001,10001,20001
began=$(date +%s)

tm=build/bin/tidemark
py=/usr/bin/python3
bench=samples/burgers/bench.py
export PYTHONPATH=$PWD/build/python
[ -x "$tm" ] || { echo "demo: build/bin/tidemark is not built (./run.sh build)" >&2; exit 1; }

out=out
rm -rf "$out"
mkdir -p "$out/traces"

echo "== 1/3 timing: Burgers over N = $resolutions, $runs run(s) each, no tracer"
$py "$bench" --resolutions "$resolutions" --runs "$runs" --out "$out" "${leaky[@]}"

echo
echo "== 2/3 tracing: one traced run per resolution (tidemark run, full stacks)"
traces=()
IFS=, read -ra ns <<<"$resolutions"
for n in "${ns[@]}"; do
  trace="$out/traces/burgers.$n.trace"
  start=$(date +%s%N)
  "$tm" run -o "$trace" -- $py "$bench" --resolutions "$n" --runs 1 "${leaky[@]}" \
    >"$out/traces/burgers.$n.log" 2>&1
  ms=$(( ($(date +%s%N) - start) / 1000000 ))
  printf '   N=%-6s traced in %3d.%01d s  ' "$n" $((ms / 1000)) $((ms % 1000 / 100))
  "$tm" summary --json "$trace" | $py -c 'import json,sys; s=json.load(sys.stdin); print(
      "heap peak %.1f MiB, leaked %.1f KiB in %d blocks, RSS peak %.1f MiB, %d allocations" % (
      s["peak_bytes"]/2**20, s["leaked_bytes"]/1024, s["leaked_blocks"],
      s["rss_peak_bytes"]/2**20, s["alloc_calls"]))'
  "$tm" regions "$trace" >"$out/regions.$n.txt"
  "$tm" leaks "$trace" --limit 5 >"$out/leaks.$n.txt"
  "$tm" timeline "$trace" -o "$out/timeline.$n.png" --title "Burgers N=$n under tidemark" >/dev/null
  traces+=("$trace")
done

echo
echo "== 3/3 sweep: does memory come back?"
largest=${ns[-1]}
echo "regions at N=$largest (out/regions.$largest.txt):"
sed 's/^/   /' "$out/regions.$largest.txt"
echo
set +e
"$tm" sweep "${traces[@]}" -o "$out/sweep"
verdict=$?
set -e
echo
echo "HTML reports (open in a browser; nothing is fetched):"
"$tm" report "${traces[@]}" -o "$out/report.html" \
  --title "Burgers under tidemark: N = $resolutions" >/dev/null || echo "   (report: exit $?)"
"$tm" report "$out/traces/burgers.$largest.trace" -o "$out/report.$largest.html" \
  --title "Burgers under tidemark: N = $largest" >/dev/null || echo "   (report: exit $?)"
for page in "$out/report.html" "$out/report.$largest.html"; do
  printf '   %-24s %6.2f MiB\n' "$page" "$(du -b "$page" | cut -f1 | awk '{print $1 / 1048576}')"
done
echo
echo "outputs in $out/: timings.txt runtime-normalized.png sweep/ report.html report.$largest.html"
echo "   regions.N.txt leaks.N.txt timeline.N.png traces/"
echo "demo took $(( $(date +%s) - began )) s"
exit $verdict
