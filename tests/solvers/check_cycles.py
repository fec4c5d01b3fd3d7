#!/usr/bin/python3
"""check_cycles.py TIDEMARK CYCLES WORKDIR — the solvers free everything
they allocate, on success and on every error path, and allocate nothing
while integrating (no allocation per right-hand side call)."""
import json
import os
import shutil
import subprocess
import sys

VARIANTS, MODES, ROUNDS, OUTPUTS = 7, 3, 10, 20

tm, prog, work = sys.argv[1:4]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
trace = os.path.join(work, "cycles.trace")
rhs_calls = int(subprocess.run([tm, "run", "-o", trace, "--", prog], check=True,
                               capture_output=True, text=True).stdout.split()[0])
out = subprocess.run([tm, "regions", "--json", trace], check=True,
                     capture_output=True, text=True).stdout
regions = {r["name"]: r for r in json.loads(out)["regions"]}
problems = []


def expect(cond, msg):
    if not cond:
        problems.append(msg)


r = regions["cycle"]
print(json.dumps({k: r[k] for k in ("invocations", "allocs", "net_bytes", "leaked_blocks")}))
expect(r["invocations"] == VARIANTS * MODES * ROUNDS,
       f"{r['invocations']} cycles, expected {VARIANTS * MODES * ROUNDS}")
expect(r["allocs"]["min"] >= 1, "a cycle allocated nothing: the check would prove nothing")
expect((r["net_bytes"]["min"], r["net_bytes"]["max"]) == (0, 0),
       f"net bytes per cycle {r['net_bytes']}")
expect(not r["leaked_blocks"] and not r["escaped_blocks"],
       f"leaked {r['leaked_blocks']}, escaped {r['escaped_blocks']}")

# The solver loop: every integrate() call after the first (where CVODE's
# linear solvers finish setting up) and every right-hand side call is a
# region; none may allocate or free.
for name, want in (("integrate", VARIANTS * ROUNDS * (OUTPUTS - 1)), ("rhs", rhs_calls)):
    r = regions.get(name)
    expect(r is not None, f"no region {name}")
    if r is None:
        continue
    print(json.dumps({k: r[k] for k in ("name", "invocations", "allocs", "frees")}))
    expect(r["invocations"] == want, f"{name}: {r['invocations']} invocations, expected {want}")
    expect(r["allocs"]["max"] == 0 and r["frees"]["max"] == 0,
           f"{name} allocates: allocs {r['allocs']}, frees {r['frees']}")
expect(rhs_calls > VARIANTS * ROUNDS * OUTPUTS, f"only {rhs_calls} right-hand side calls")
if problems:
    sys.exit("; ".join(problems))
