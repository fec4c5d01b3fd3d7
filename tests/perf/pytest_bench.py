#!/usr/bin/python3
"""The pytest plugin's own cost per test (issue 25): 1,000 trivial tests
run as plain pytest, as pytest under the tracer with the plugin's setting
(snapshots on, PYTHONMALLOC=malloc, Python stacks) but without the plugin,
and as `tidemark pytest`.  CPU time (user + system of the child processes,
steadier than wall time on a shared machine), the minimum of --runs rounds.

    PYTHONPATH=build/python /usr/bin/python3 tests/perf/pytest_bench.py [--build DIR]
        [--tests N] [--runs N] [--json FILE]

plugin per test = (tidemark pytest - traced pytest without the plugin) / N.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile


def cpu(cmd, cwd, env):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if p.returncode != 0:
        sys.exit(f"pytest_bench: {' '.join(cmd)} exited {p.returncode}: "
                 f"{(p.stdout + p.stderr).strip().splitlines()[-1:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--tests", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json")
    a = ap.parse_args()
    tm = os.path.abspath(os.path.join(a.build, "bin", "tidemark"))
    work = tempfile.mkdtemp(prefix="tm_pytest_bench.")
    with open(os.path.join(work, "test_trivial.py"), "w") as f:
        for i in range(a.tests):
            f.write(f"def test_{i}():\n    assert {i} == {i}\n\n")
    env = dict(os.environ)
    env.pop("PYTHONMALLOC", None)
    py = ["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider"]
    traced_env = dict(env, TIDEMARK_SNAPSHOT="1", PYTHONMALLOC="malloc")
    modes = {
        "plain pytest": lambda k: cpu(py, work, env),
        "traced pytest, no plugin": lambda k: cpu(
            [tm, "run", "--python-stacks", "-o", f"t{k}.trace", "--", *py], work, traced_env),
        "tidemark pytest": lambda k: cpu(
            [tm, "pytest", "-o", f"p{k}.trace", "-q", "-p", "no:cacheprovider"], work, env),
    }
    best = {m: None for m in modes}
    for k in range(a.runs):
        for m, run in modes.items():
            t = run(k)
            best[m] = t if best[m] is None else min(best[m], t)
    n = a.tests
    plain = best["plain pytest"]
    rows = []
    for m, t in best.items():
        rows.append({"mode": m, "cpu_s": round(t, 3), "per_test_ms": round(1000 * t / n, 3),
                     "ratio": round(t / plain, 2)})
    plugin_ms = 1000 * (best["tidemark pytest"] - best["traced pytest, no plugin"]) / n
    print(f"{n} trivial tests, CPU time (user+sys), min of {a.runs} rounds")
    for r in rows:
        print(f"  {r['mode']:<26} {r['cpu_s']:8.2f} s  {r['per_test_ms']:7.3f} ms/test  "
              f"{r['ratio']:5.2f}x plain")
    print(f"  plugin's own cost per test: {plugin_ms:.3f} ms")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"tests": n, "rows": rows, "plugin_per_test_ms": round(plugin_ms, 3)}, f,
                      indent=1)
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
