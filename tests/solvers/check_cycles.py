#!/usr/bin/python3
"""check_cycles.py TIDEMARK CYCLES WORKDIR — the solvers free everything
they allocate, on success and on every error path."""
import json
import os
import shutil
import subprocess
import sys

tm, prog, work = sys.argv[1:4]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
trace = os.path.join(work, "cycles.trace")
subprocess.run([tm, "run", "-o", trace, "--", prog], check=True)
out = subprocess.run([tm, "regions", "--json", "--region", "cycle", trace], check=True,
                     capture_output=True, text=True).stdout
r = json.loads(out)["regions"][0]
print(json.dumps({k: r[k] for k in ("invocations", "allocs", "net_bytes", "leaked_blocks")}))
problems = []
if r["invocations"] != 90:
    problems.append(f"{r['invocations']} invocations, expected 90")
if r["allocs"]["min"] < 1:
    problems.append("a cycle allocated nothing: the check would prove nothing")
if (r["net_bytes"]["min"], r["net_bytes"]["max"]) != (0, 0):
    problems.append(f"net bytes per cycle {r['net_bytes']}")
if r["leaked_blocks"] or r["escaped_blocks"]:
    problems.append(f"leaked {r['leaked_blocks']}, escaped {r['escaped_blocks']}")
if problems:
    sys.exit("; ".join(problems))
