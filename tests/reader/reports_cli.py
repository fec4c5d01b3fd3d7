#!/usr/bin/python3
"""Reports a person reads, checked exactly on crafted traces and real
programs: the timeline's layout (legend outside, one lane per thread with
regions, RSS on its own axis when far above the heap, folders made for -o,
names cut only with "..."), top --by count shares, diff's units, the signal
that ended a process, --version in --help and exit codes 0/2 only.

    reports_cli.py TIDEMARK WORKDIR
"""
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracegen import Records, block, header  # noqa: E402

TM, WORK = sys.argv[1], sys.argv[2]
PY = "/usr/bin/python3"
failures = []


def run(*args):
    return subprocess.run([TM, *args], capture_output=True, text=True, timeout=120)


def expect(cond, what):
    if not cond:
        failures.append(what)


def write(name, data):
    path = os.path.join(WORK, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
MS = 1_000_000

# --- 11: timeline layout -------------------------------------------------------
LONG = "solver_" + "x" * 200
r = Records().string(1, LONG).string(2, "rhs").string(3, "resolution=101")
r.thread(7).alloc(0x1000, 1024, 1 * MS).region(1, 1, 10 * MS)
r.thread(8).region(2, 1, 20 * MS).alloc(0x2000, 512, 25 * MS)
r.thread(7).region_end(50 * MS)
r.thread(8).region_end(60 * MS).mark(3, 70 * MS)
r.rss(100 << 20, 80 * MS).free(0x2000, 90 * MS).end()
tl_trace = write("timeline.trace", header() + block(0, r.b))
out = os.path.join(WORK, "new", "nested", "timeline.svg")
keep = os.path.join(WORK, "kept", "plot")
p = run("timeline", "--json", tl_trace, "-o", out, "--keep", keep)
expect(p.returncode == 0, f"timeline: exit {p.returncode}: {p.stderr}")
if p.returncode == 0:
    j = json.loads(p.stdout)
    expect(os.path.getsize(out) > 0, "timeline: -o into new nested folders wrote nothing")
    got = {k: j.get(k) for k in ("bands", "lanes", "marks", "rss_axis", "peak_bytes")}
    want = {"bands": 2, "lanes": 2, "marks": 1, "rss_axis": "right", "peak_bytes": 1536}
    expect(got == want, f"timeline --json: {got}, expected {want}")
    expect("schema_version" in j, "timeline --json without schema_version")
    gp = open(os.path.join(keep, "plot.gp")).read()
    expect("set key outside right top vertical" in gp, "timeline: key not outside the plot")
    expect("set key top left opaque" not in gp, "timeline: key still inside")
    rects = re.findall(r"set object rect from [\d.]+, graph ([\d.]+) to [\d.]+, graph ([\d.]+)",
                       gp)
    expect(sorted(rects) == [("0.0000", "0.5000"), ("0.5000", "1.0000")],
           f"timeline: band lanes {rects}, expected two halves")
    lanes = re.findall(r'set label \d+ "thread (\d+)"', gp)
    expect(sorted(lanes) == ["7", "8"], f"timeline: lane labels {lanes}")
    expect("axes x1y2" in gp and 'set y2label "RSS MiB"' in gp, "timeline: RSS not on y2")
    bands = open(os.path.join(keep, "bands.dat")).read().splitlines()
    names = [re.match(r'[\d.]+ [\d.]+ "([^"]*)" (\d+)', b).groups() for b in bands]
    cut = LONG[:124] + "..."
    expect(sorted(names) == sorted([(cut, "7"), ("rhs", "8")]), f"timeline: bands {names}")
    expect(f'title "region {LONG[:37]}..."' in gp, "timeline: key's region name not cut with '...'")
    expect(j.get("regions") == [LONG, "rhs"], f"timeline --json regions: {j.get('regions')}")

# One thread, heap close to RSS: one lane, one shared axis.
r = Records().string(1, "work").thread(7).region(1, 1, 1 * MS).alloc(0x1000, 3 << 20, 2 * MS)
r.region_end(3 * MS).rss(4 << 20, 4 * MS).end()
p = run("timeline", "--json", write("one.trace", header() + block(0, r.b)), "-o",
        os.path.join(WORK, "one.png"))
j = json.loads(p.stdout) if p.returncode == 0 else {}
expect((j.get("lanes"), j.get("rss_axis")) == (1, "left"),
       f"timeline one thread: {p.returncode} {j} {p.stderr}")

# -o under a file: no folder can be made there, exit 2 with one line.
p = run("timeline", tl_trace, "-o", os.path.join(tl_trace, "x", "t.png"))
expect(p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
       and "cannot write" in p.stderr, f"timeline under a file: {p.returncode} {p.stderr}")

# --- 12: top --by count shares are of the count --------------------------------
r = Records().thread(7).node(1, 0, 0x401000).node(2, 0, 0x402000)
r.alloc(0x1000, 1000, 1 * MS, stack=1)
for i in range(3):
    r.alloc(0x2000 + 0x100 * i, 10, (2 + i) * MS, stack=2)
r.end()
top_trace = write("top.trace", header() + block(0, r.b))
p = run("top", "--by", "count", top_trace)
shares = re.findall(r"in (\d) allocations? \(([\d.]+)%( of the count)?\)", p.stdout)
expect(shares == [("3", "75.0", " of the count"), ("1", "25.0", " of the count")],
       f"top --by count shares {shares}: {p.stdout}")
p = run("top", top_trace)
shares = re.findall(r"in (\d) allocations? \(([\d.]+)%\)", p.stdout)
expect(shares == [("1", "97.1"), ("3", "2.9")], f"top by bytes shares {shares}: {p.stdout}")

# --- 12: diff, one unit per column ---------------------------------------------
old = Records().thread(7).alloc(0x1000, 1000, 1 * MS).end()
new = Records().thread(7).alloc(0x1000, 1000, 1 * MS).alloc(0x9000, 2048, 2 * MS).end()
p = run("diff", write("old.trace", header() + block(0, old.b)),
        write("new.trace", header() + block(0, new.b)))
rows = {ln.split()[0]: ln for ln in p.stdout.splitlines()[1:4]}
expect(re.fullmatch(r"leaked +1000 B +2\.98 KiB +\+2\.00 KiB", rows.get("leaked", "")),
       f"diff leaked row: {rows.get('leaked')!r}")
expect(re.fullmatch(r"heap peak +1000 B +2\.98 KiB +\+2\.00 KiB", rows.get("heap", "")),
       f"diff peak row: {rows.get('heap')!r}")
expect(re.fullmatch(r"allocations +1 +2 +\+1", rows.get("allocations", "")),
       f"diff allocations row: {rows.get('allocations')!r}")

# --- 12: summary names the signal that ended a real process ---------------------
for sig, num, code in (("SIGSEGV", 11, "import ctypes; ctypes.string_at(0)"),
                       ("SIGTERM", 15, "import os, signal; os.kill(os.getpid(), signal.SIGTERM)")):
    path = os.path.join(WORK, f"{sig}.trace")
    p = run("run", "-o", path, "--", PY, "-c", code)
    expect(p.returncode == 128 + num, f"{sig}: run exit {p.returncode}, expected {128 + num}")
    p = run("summary", path)
    expect(f"ended by signal {num} ({sig}, " in p.stdout, f"{sig}: summary says {p.stdout[:200]}")
    j = json.loads(run("summary", "--json", path).stdout)
    expect((j.get("end"), j.get("end_signal"), j.get("end_signal_name")) == ("signal", num, sig),
           f"{sig}: summary --json {j}")

# --- 12: summary says when threads or RSS were not recorded, never "0" ------------
p = run("summary", write("empty_run.trace", header() + block(0, Records().end().b)))
lines = dict(ln.split(None, 1) if not ln.startswith(("heap", "RSS")) else (ln[:8], ln[8:].strip())
             for ln in p.stdout.splitlines())
expect(lines.get("threads") == "none recorded an event", f"summary threads: {p.stdout}")
expect(lines.get("RSS peak", "").startswith("not sampled"), f"summary RSS: {p.stdout}")

# --- 12: --version in --help, exit codes only 0, 2, 3 ---------------------------
p = run("--help")
expect(p.returncode == 0 and re.search(r"^  --version ", p.stdout, re.M), "--help lacks --version")
p = run("--version")
expect(p.returncode == 0 and p.stdout.startswith("tidemark "), f"--version: {p.returncode}")
expect(run().returncode == 2, "no command: not exit 2")
for cmd in ("summary", "leaks", "peak", "top", "regions", "diff", "timeline", "sweep"):
    for args in ([], ["--no-such-option", tl_trace]):
        p = run(cmd, *args)
        lines = p.stderr.strip().splitlines()
        expect(p.returncode == 2 and len(lines) == 1,
               f"{cmd} {' '.join(args)}: exit {p.returncode}, {len(lines)} lines")
    p = run(cmd, "--help")
    expect(p.returncode == 0 and p.stdout.startswith("usage: tidemark " + cmd),
           f"{cmd} --help: exit {p.returncode}")

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print("ok: report layout and CLI contracts")
