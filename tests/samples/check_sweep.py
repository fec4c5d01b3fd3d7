#!/usr/bin/python3
"""The Burgers benchmark under the tracer at two small resolutions: the
sweep says PASS for the real right-hand side and FAIL (exit 3, naming the
callback) for the leaky one; plots and sweep.json are written.

    check_sweep.py TIDEMARK PYTHONPATH BENCH WORKDIR
"""
import json
import os
import shutil
import subprocess
import sys

tm, pypath, bench, work = sys.argv[1:5]
shutil.rmtree(work, ignore_errors=True)
os.makedirs(work)
env = dict(os.environ, PYTHONPATH=pypath)
failures = []


def expect(cond, msg):
    if not cond:
        failures.append(msg)


def traces(leaky):
    out = []
    for n in (21, 31, 41):
        t = os.path.join(work, f"{'leaky' if leaky else 'ok'}.{n}.trace")
        cmd = [tm, "run", "-o", t, "--", sys.executable, bench, "--resolutions", str(n),
               "--runs", "1", "--impls", "scipy_dopri5_bridge"] + (["--leaky-rhs"] if leaky else [])
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        out.append(t)
    return out


ok = traces(False)
p = subprocess.run([tm, "sweep", "--json", "-o", os.path.join(work, "ok"), *ok],
                   capture_output=True, text=True)
expect(p.returncode == 0, f"sweep of the real RHS: exit {p.returncode} {p.stderr}")
s = json.loads(p.stdout)
expect(s["verdict"] == "PASS", f"verdict {s['verdict']}: {s['reasons']}")
expect([r["resolution"] for r in s["runs"]] == [21, 31, 41], "resolutions from the marks")
for r in s["runs"]:
    rhs = [g for g in r["regions"] if g["name"] == "burgers_rhs"]
    expect(len(rhs) == 1 and rhs[0]["invocations"] > 100,
           f"burgers_rhs region at N={r['resolution']}: {rhs}")
    expect(rhs and not rhs[0]["retains"], "the real RHS keeps no memory per invocation")
for f in ("memory-vs-resolution.png", "timelines.png", "sweep.json"):
    path = os.path.join(work, "ok", f)
    expect(os.path.exists(path) and os.path.getsize(path) > 1000, f"{f} written")

leaky = traces(True)
p = subprocess.run([tm, "sweep", "-o", os.path.join(work, "leaky"), *leaky],
                   capture_output=True, text=True)
expect(p.returncode == 3, f"sweep of the leaky RHS: exit {p.returncode}, expected 3")
expect("verdict: FAIL" in p.stdout and "burgers_rhs_leaky" in p.stdout,
       f"FAIL names the callback:\n{p.stdout}")

png = os.path.join(work, "timeline.png")
p = subprocess.run([tm, "timeline", "--json", ok[1], "-o", png], capture_output=True, text=True)
expect(p.returncode == 0, f"timeline: {p.stderr}")
tl = json.loads(p.stdout)
expect(tl["bands"] >= 1 and tl["marks"] >= 2 and tl["points"] > 10, f"timeline content {tl}")
expect(os.path.getsize(png) > 10000, "timeline PNG written")

if failures:
    sys.exit("\n".join(failures))
print("ok: sweep PASS on the real RHS, FAIL on the leaky one")
