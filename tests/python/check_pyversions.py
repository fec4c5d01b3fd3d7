#!/usr/bin/python3
"""check_pyversions.py PYTHON TIDEMARK WORKDIR — runs pyversions.py with
PYTHON under `tidemark run --python-stacks` and checks the exact leak
sites (file, function, line), a 31-frame recursion, a ctypes leak inside
a region and a leak in a thread.  Exit 77 (skipped) when PYTHON is absent."""
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
py, tm, work = sys.argv[1:4]
if not os.access(py, os.X_OK):
    print(f"skipped: no interpreter at {py}")
    sys.exit(77)
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
prog = os.path.join(HERE, "pyversions.py")
lines = {}
for n, text in enumerate(open(prog), 1):
    if "# LEAK:" in text:
        lines[text.split("# LEAK:")[1].strip()] = n
trace = os.path.join(work, "py.trace")
run = subprocess.run([tm, "run", "--python-stacks", "-o", trace, "--", py, prog],
                     capture_output=True, text=True)
if run.returncode != 0 or "cannot import" in run.stderr:
    sys.exit(f"run failed ({run.returncode}): {run.stderr}")


def report(*args):
    out = subprocess.run([tm, *args, "--json", trace], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)


def python_frames(group):
    return [(f["function"], os.path.basename(f["file"] or ""), f["line"])
            for f in group["stack"] if f["kind"] == "python"]


failures = []
by_size = {}
for g in report("leaks")["groups"]:
    by_size.setdefault(g["bytes"], []).append(g)
cases = [("site", 41111, "site_leak"), ("recursion", 42222, "recurse"),
         ("region", 43333, "region_leak"), ("thread", 44444, "thread_leak")]
for name, size, func in cases:
    groups = by_size.get(size, [])
    if len(groups) != 1 or groups[0]["blocks"] != 1:
        failures.append(f"{name}: {len(groups)} groups of {size} bytes")
        continue
    frames = python_frames(groups[0])
    want = (func, "pyversions.py", lines[name])
    if not frames or frames[0] != want:
        failures.append(f"{name}: innermost Python frame {frames[:1]}, want {want}")
    if name == "recursion" and [f[0] for f in frames].count("recurse") != 31:
        failures.append(f"recursion: {[f[0] for f in frames].count('recurse')} recurse frames")
regions = {r["name"]: r for r in report("regions")["regions"]}
r = regions.get("pyversions")
if not r or r["invocations"] != 1 or r["allocs"]["total"] < 1:
    failures.append(f"region: {r}")
# 3.11 and later are walked; older ones use the profile hook.
version = subprocess.run([py, "-c", "import sys; print(sys.version_info >= (3, 11))"],
                         capture_output=True, text=True).stdout.strip()
mode = report("summary").get("python_stacks")
if mode != ("walker" if version == "True" else "hook"):
    failures.append(f"summary python_stacks: {mode} (version >= 3.11: {version})")
if failures:
    sys.exit("\n".join(failures))
print(f"ok: {py}: Python frames name every leak site")
