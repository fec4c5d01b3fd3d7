#!/usr/bin/python3
"""check_pystacks.py TIDEMARK WORKDIR [hook] — runs pyleaks.py under
`tidemark run --python-stacks` and checks that each leak's stack names the
Python function and line exactly, merged with the native frames.  With
`hook`, the profile-hook mechanism is used instead of reading the
interpreter's frames (TIDEMARK_PYTHON_HOOK=1)."""
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
tm, work = sys.argv[1:3]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
prog = os.path.join(HERE, "pyleaks.py")
lines = {}
for n, text in enumerate(open(prog), 1):
    if "# LEAK:" in text:
        lines[text.split("# LEAK:")[1].strip()] = n

trace = os.path.join(work, "py.trace")
env = dict(os.environ)
if sys.argv[3:] == ["hook"]:
    env["TIDEMARK_PYTHON_HOOK"] = "1"
subprocess.run([tm, "run", "--python-stacks", "-o", trace, "--", sys.executable, prog],
               check=True, env=env)


def leaks(*view):
    out = subprocess.run([tm, "leaks", "--json", *view, trace], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out)["groups"]


def python_frames(group):
    return [(f["function"], os.path.basename(f["file"] or ""), f["line"])
            for f in group["stack"] if f["kind"] == "python"]


failures = []
merged = leaks()
by_size = {}
for g in merged:
    by_size.setdefault(g["bytes"], []).append(g)

cases = [("numpy", 400000, "numpy_leak"), ("ctypes", 77777, "ctypes_leak"),
         ("repeat", 3 * 21111, "repeated_leak"),
         ("callback", 480000, "in_callback"), ("thread", 55555, "thread_leak"),
         ("final", 33333, "final_leak")]
for name, size, func in cases:
    groups = by_size.get(size, [])
    if len(groups) != 1:
        failures.append(f"{name}: {len(groups)} groups of {size} bytes")
        continue
    frames = python_frames(groups[0])
    want = (func, "pyleaks.py", lines[name])
    if want not in frames:
        failures.append(f"{name}: {want} not in the Python frames {frames}")
    kinds = [f["kind"] for f in groups[0]["stack"]]
    if name != "thread" and "native" not in kinds[: kinds.index("python")]:
        failures.append(f"{name}: no native frames inside the Python ones: {kinds}")

# After 100k calls that raise and 2000 generators, the stack of the last
# leak is exactly its two Python frames.
final = [g for g in leaks("--python-only") if g["bytes"] == 33333]
if final:
    got = python_frames(final[0])
    if len(got) != 2 or got[0][0] != "final_leak" or got[1][0] != "<module>":
        failures.append(f"final leak's Python stack: {got}")
# The callback's Python frame sits inside native frames (C called Python).
cb = by_size.get(480000, [])
if cb:
    kinds = [f["kind"] for f in cb[0]["stack"]]
    fns = [f["function"] for f in cb[0]["stack"]]
    if "<module>" not in fns or kinds.count("python") < 2:
        failures.append(f"callback stack: {list(zip(fns, kinds))}")
# Native-only shows no Python frames.
if any(f["kind"] == "python" for g in leaks("--native-only") for f in g["stack"]):
    failures.append("--native-only shows Python frames")
if failures:
    sys.exit("\n".join(failures))
print("ok: Python frames name every leak site")
