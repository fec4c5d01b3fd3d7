#!/usr/bin/python3
"""Memory and time per distinct stack in the traced process (issue 32).

    python3 tests/perf/stack_memory_bench.py [--build build]
        [--iterations 20000,200000,2000000] [--cap "32 MiB"] [--no-heaptrack]
        [--json FILE]

tests/perf/many_stacks.c allocates once per iteration through a random
path of 12 nested calls among 4 functions, so nearly every allocation has a
stack never seen before.  For each iteration count it runs, once each: the
program plainly, under `tidemark run --stacks none`, `--stacks full`,
`--stacks full --stack-memory CAP` (when this tidemark has the option) and
heaptrack (when on PATH), and prints wall time and the peak RSS of the
traced process (/usr/bin/time's %M: the largest process's VmHWM) and its
CPU time (user + system: steadier than wall time on a shared machine).  Per
distinct stack: the peak RSS and the CPU time above the `--stacks none`
run, divided by the distinct stacks the iterations take
(`many_stacks N --count`).  One run per mode: a measurement, not a test;
the exit status is 0 whatever the figures, 1 when a run fails.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(cmd, cwd):
    """Wall seconds, the peak RSS of cmd's largest process in bytes and the
    CPU seconds (user + system) of cmd and its children.
    Through /usr/bin/time -f %M: ru_maxrss survives exec, so a child forked
    from this Python process would count Python's RSS as its own."""
    out = os.path.join(cwd, "maxrss")
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M %U %S", "-o", out] + cmd, cwd=cwd,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    wall = time.perf_counter() - t0
    if p.returncode != 0:
        lines = [l for l in p.stderr.decode(errors="replace").splitlines() if l.strip()]
        sys.exit(f"stack_memory_bench: `{' '.join(cmd)}` exited with status {p.returncode}"
                 + (f": {lines[-1]}" if lines else ""))
    with open(out) as f:
        rss, user, system = f.read().split()[-3:]
    return wall, int(rss) * 1024, float(user) + float(system)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--iterations", default="20000,200000,2000000")
    ap.add_argument("--cap", default="32 MiB", help="--stack-memory for the capped run")
    ap.add_argument("--no-heaptrack", action="store_true")
    ap.add_argument("--json", help="write the figures here too")
    a = ap.parse_args()
    prog = os.path.join(a.build, "bin", "many_stacks")
    tidemark = os.path.join(a.build, "bin", "tidemark")
    for f in (prog, tidemark):
        if not os.access(f, os.X_OK):
            sys.exit(f"stack_memory_bench: {f} is missing (build first)")
    helptext = subprocess.run([tidemark, "run", "--help"], capture_output=True,
                              text=True).stdout + subprocess.run(
        [tidemark, "run", "--help"], capture_output=True, text=True).stderr
    has_cap = "--stack-memory" in helptext
    heaptrack = None if a.no_heaptrack else shutil.which("heaptrack")
    rows = []
    with tempfile.TemporaryDirectory(prefix="tm_stackbench.") as tmp:
        for n in [int(x) for x in a.iterations.split(",")]:
            distinct = int(subprocess.run([prog, str(n), "--count"], capture_output=True,
                                          text=True, check=True).stdout)
            trace = os.path.join(tmp, "t.trace")
            modes = [("plain", [prog, str(n)]),
                     ("tidemark none", [tidemark, "run", "--stacks", "none", "-o", trace,
                                        "--", prog, str(n)]),
                     ("tidemark full", [tidemark, "run", "-o", trace, "--", prog, str(n)])]
            if has_cap:
                modes.append((f"full, cap {a.cap}",
                              [tidemark, "run", "--stack-memory", a.cap, "-o", trace,
                               "--", prog, str(n)]))
            if heaptrack:
                modes.append(("heaptrack", [heaptrack, "-o", os.path.join(tmp, "ht"),
                                            prog, str(n)]))
            base = None
            for name, cmd in modes:
                for f in os.listdir(tmp):
                    os.unlink(os.path.join(tmp, f))
                wall, hwm, cpu = run(cmd, tmp)
                if name == "tidemark none":
                    base = (cpu, hwm)
                row = {"iterations": n, "distinct_stacks": distinct, "mode": name,
                       "wall_s": round(wall, 3), "cpu_s": round(cpu, 3), "vm_hwm_bytes": hwm}
                if base and name not in ("plain", "tidemark none"):
                    row["bytes_per_stack"] = round((hwm - base[1]) / distinct, 1)
                    row["us_per_stack"] = round((cpu - base[0]) / distinct * 1e6, 3)
                rows.append(row)
    print(f"{'iterations':>10} {'stacks':>9}  {'mode':<20} {'wall s':>7} {'cpu s':>7}"
          f" {'VmHWM MiB':>10} {'B/stack':>8} {'us/stack':>8}")
    for r in rows:
        bps = f"{r['bytes_per_stack']:8.1f}" if "bytes_per_stack" in r else f"{'':8}"
        ups = f"{r['us_per_stack']:8.3f}" if "us_per_stack" in r else f"{'':8}"
        print(f"{r['iterations']:>10} {r['distinct_stacks']:>9}  {r['mode']:<20}"
              f" {r['wall_s']:7.2f} {r['cpu_s']:7.2f} {r['vm_hwm_bytes'] / 2**20:10.1f} {bps} {ups}")
    print("B/stack: VmHWM above `--stacks none`, us/stack: CPU time (user + system, the\n"
          "tracer's thread included) above `--stacks none`, per distinct stack; one run each")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
