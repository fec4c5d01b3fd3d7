#!/usr/bin/python3
"""check_zero_alloc.py TIDEMARK PYTHONPATH WORKDIR — runs zero_alloc.py
under the tracer and checks the per-invocation numbers."""
import json
import os
import shutil
import subprocess
import sys

tm, pypath, work = sys.argv[1:4]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
trace = os.path.join(work, "zero.trace")
script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zero_alloc.py")
env = dict(os.environ, PYTHONPATH=pypath, PYTHONMALLOC="malloc")
subprocess.run([tm, "run", "-o", trace, "--", sys.executable, script], env=env, check=True)
out = subprocess.run([tm, "regions", "--json", trace], capture_output=True, text=True, check=True)
regions = {r["name"]: r for r in json.loads(out.stdout)["regions"]}
failed = []
direct = regions["direct"]["allocs"]["total"]
print(f"direct calls: {direct} allocations in 100000 invocations")
for name, budget in (("py_in_place", direct), ("copy_rhs", 0)):
    r = regions.get(name)
    if r is None:
        failed.append(f"{name}: no region")
        continue
    if r["invocations"] != 100000:
        failed.append(f"{name}: {r['invocations']} invocations")
    # The first invocations build the cached views; after that, nothing
    # beyond what the function does when called directly.
    if r["allocs"]["total"] > budget + 8:
        failed.append(f"{name}: {r['allocs']['total']} allocations in 100000 invocations, "
                      f"budget {budget}")
    # Nothing may stay behind per invocation.  (An invocation may come out
    # net negative: bridge_call_rhs looks its capsule up by a name string
    # CPython makes and frees around the call, and whether that free lands
    # before or inside the region depends on CPython's address-keyed
    # attribute cache, so on where malloc put things in this run.)
    if r["invocations_net_positive"] > 4:
        failed.append(f"{name}: {r['invocations_net_positive']} invocations kept memory")
    if r["leaked_blocks"] > 4:
        failed.append(f"{name}: {r['leaked_blocks']} blocks leaked")
    print(f"{name}: invocations {r['invocations']}, allocations {r['allocs']['total']}, "
          f"net-zero invocations {r['invocations_net_zero']}, "
          f"net-positive {r['invocations_net_positive']}")
if failed:
    sys.exit("\n".join(failed))
