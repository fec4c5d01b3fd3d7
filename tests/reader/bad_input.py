#!/usr/bin/python3
"""The CLI on bad input: every failure is one line on stderr and exit 2,
never a crash; damaged traces still give a partial report.  Ends with a
fuzz pass: a real trace truncated and mutated many ways.

    bad_input.py TIDEMARK WORKDIR
"""
import json
import os
import random
import shutil
import struct
import subprocess
import sys

TM, WORK = sys.argv[1], sys.argv[2]
REPORTS = (["summary"], ["leaks"])
failures = []


def run(*args, env=None):
    return subprocess.run([TM, *args], capture_output=True, text=True, timeout=60, env=env)


def check(name, p, status, stderr_has=None):
    lines = [l for l in p.stderr.splitlines() if l.strip()]
    problems = []
    if p.returncode != status:
        problems.append(f"exit {p.returncode}, expected {status}")
    if status == 2 and len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines: {lines}")
    if stderr_has and not any(stderr_has in l for l in lines):
        problems.append(f"stderr lacks {stderr_has!r}: {lines}")
    if problems:
        failures.append(f"{name}: " + "; ".join(problems))


def write(name, data):
    path = os.path.join(WORK, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)

# A real trace: hundreds of thousands of events over several blocks.
real = os.path.join(WORK, "real.trace")
env = dict(os.environ, PYTHONMALLOC="malloc")
p = run("run", "-o", real, "--", sys.executable, "-c",
        "for i in range(100000): x = bytearray(64 + i % 50)", env=env)
if p.returncode != 0:
    sys.exit(f"tidemark run failed: {p.stderr}")
data = open(real, "rb").read()
header = bytearray(data[:64])
wrong_version = bytearray(header)
struct.pack_into("<H", wrong_version, 8, 99)

cases = {
    "missing": (os.path.join(WORK, "nope.trace"), "No such file"),
    "directory": (WORK, "not a regular file"),
    "empty": (write("empty", b""), "not a tidemark trace"),
    "text": (write("text", b"hello world, this is not a trace at all\n" * 3), "not a tidemark trace"),
    "header_cut": (write("header_cut", data[:30]), "truncated"),
    "wrong_version": (write("wrong_version", bytes(wrong_version) + data[64:]), "version 99"),
    "no_blocks": (write("no_blocks", data[:64]), "no end record"),
    "cut": (write("cut", data[: len(data) * 2 // 3]), None),
    "flipped": (write("flipped", data[:200] + bytes([data[200] ^ 0xFF]) + data[201:]), "checksum"),
}
for name, (path, msg) in cases.items():
    for report in REPORTS:
        check(f"{name} {report[0]}", run(*report, path), 2, msg)
        check(f"{name} {report[0]} --json", run(*report, "--json", path), 2, msg)

# A damaged trace still reports what it read.
p = run("summary", "--json", cases["cut"][0])
s = json.loads(p.stdout)
full = json.loads(run("summary", "--json", real).stdout)
if not (0 < s["alloc_calls"] < full["alloc_calls"]):
    failures.append(f"cut trace: alloc_calls {s['alloc_calls']} of {full['alloc_calls']}")

# Usage errors.
bad_supp = write("bad.supp", b"# comment\nleak:ok\nrace:nope\n")
for name, args, msg in [
    ("unknown command", ["frobnicate"], "unknown command"),
    ("no trace", ["leaks"], "expected one TRACE"),
    ("two traces", ["summary", real, real], "expected one TRACE"),
    ("bad limit", ["leaks", "--limit", "x", real], "--limit"),
    ("missing suppressions", ["leaks", "--suppressions", "/nonexistent", real], "nonexistent"),
    ("bad suppressions", ["leaks", "--suppressions", bad_supp, real], "bad.supp:3"),
    ("unknown region", ["leaks", "--region", "no-such-region", real], "no region named"),
    ("run without command", ["run"], "no command"),
    ("run bad stacks", ["run", "--stacks", "some", "--", "true"], "--stacks"),
    ("run existing output", ["run", "-o", real, "--", "true"], "exists"),
]:
    check(name, run(*args), 2, msg)
check("unknown option", run("summary", "--bogus", real), 2, "option '--bogus'")
# A folder of the output path that is a file: no folder can be made there.
check("unwritable plot", run("timeline", real, "-o", os.path.join(real, "dir", "plot.png")),
      2, "cannot write")
check("run missing program", run("run", "-o", os.path.join(WORK, "x.%p.trace"), "--",
                                  "/nonexistent/prog"), 127, "/nonexistent/prog")

# Fuzz, as separate processes: truncations and mutations of a smaller real
# trace; exit 0 or 2, never a crash or a hang, and stdout always parses.
# reader.fuzz (fuzz.py) covers every truncation point and checksum-correct
# mutations in one process; this pass keeps the JSON check, kept short.
small = os.path.join(WORK, "small.trace")
p = run("run", "-o", small, "--", sys.executable, "-c",
        "for i in range(3000): x = bytearray(64 + i % 50)", env=env)
data = open(small, "rb").read()
rng = random.Random(1234)
fuzzed = os.path.join(WORK, "fuzz.trace")
for i in range(300):
    b = bytearray(data)
    kind = i % 3
    if kind == 0:
        b = b[: rng.randrange(64, len(b))]
    else:
        for _ in range(rng.randrange(1, 8)):
            pos = rng.randrange(64 if kind == 1 else 0, len(b))
            b[pos] = rng.randrange(256)
    with open(fuzzed, "wb") as f:
        f.write(b)
    # leaks and regions cost more (symbolizing): every tenth variant
    for report in (*REPORTS, ["regions"]) if i % 10 == 0 else REPORTS[:1]:
        p = run(*report, "--json", fuzzed)
        if p.returncode not in (0, 2):
            failures.append(f"fuzz {i} {report[0]}: exit {p.returncode} {p.stderr[-300:]}")
            continue
        try:
            if p.stdout:
                json.loads(p.stdout)
        except ValueError as e:
            failures.append(f"fuzz {i} {report[0]}: bad JSON ({e})")

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print("ok: bad input handled")
