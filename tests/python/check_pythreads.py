#!/usr/bin/python3
"""check_pythreads.py TIDEMARK WORKDIR [hook] — runs pythreads.py (1600
threads one after another) under `tidemark run --python-stacks`.  The
program itself fails (exit 91) when the tracer's per-thread Python state is
not reused; here every thread's allocation must carry its exact Python
stack, reused state or not.  With `hook`, the profile-hook mechanism is
used (TIDEMARK_PYTHON_HOOK=1)."""
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
tm, work = sys.argv[1:3]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
prog = os.path.join(HERE, "pythreads.py")
line = next(n for n, text in enumerate(open(prog), 1) if "# ALLOC" in text)
threads = next(int(text.split("=")[1]) for text in open(prog) if text.startswith("THREADS ="))

trace = os.path.join(work, "threads.trace")
env = dict(os.environ, MALLOC_ARENA_MAX="1")
if sys.argv[3:] == ["hook"]:
    env["TIDEMARK_PYTHON_HOOK"] = "1"
run = subprocess.run([tm, "run", "--python-stacks", "-o", trace, "--", sys.executable, prog],
                     env=env)
if run.returncode != 0:
    sys.exit(f"check_pythreads: pythreads.py exited {run.returncode} (91: state not reused)")

top = json.loads(subprocess.run([tm, "top", "--json", "--by", "count", trace], check=True,
                                capture_output=True, text=True).stdout)
mine = [s for s in top["stacks"]
        if [(f["function"], f["line"]) for f in s["stack"] if f["kind"] == "python"][:1]
        == [("worker", line)]]
# The bytearray's 5001-byte buffer; the object beside it (a Python-domain
# block below 512 bytes, traced by default) has a stack of its own.
mine = [s for s in mine if s["bytes"] > 512 * s["allocs"]]
if len(mine) != 1 or (mine[0]["allocs"], mine[0]["bytes"]) != (threads, threads * 5001):
    sys.exit(f"check_pythreads: worker's allocations {[(s['allocs'], s['bytes']) for s in mine]}, "
             f"want one stack of {threads} allocations of 5001 bytes")
print(f"check_pythreads: ok ({threads} threads, state reused)")
