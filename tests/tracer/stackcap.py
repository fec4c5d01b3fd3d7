#!/usr/bin/python3
"""Bounded stack memory in the traced process (issue 32): the HWM record and
the stack table cap (tracer.stackcap.*).

    stackcap.py CASE --tidemark BIN --progs DIR --work DIR
"""
import json
import os
import subprocess
import sys

from cases import expect, expect_eq, run_cases

MIB = 1 << 20


def case_hwm(c):
    # One sample an hour: the samples (at the start, at the end) miss the
    # 64 MiB touched and freed at once; the HWM record has them.
    c.run([c.prog("hwm_peak")], extra=["--rss-interval", "3600000"])
    s = c.report("summary")
    expect(64 * MIB <= s["rss_peak_bytes"] < 128 * MIB,
           f"rss_peak_bytes {s['rss_peak_bytes']}: VmHWM holds the 64 MiB peak")
    expect_eq((s["alloc_calls"], s["free_calls"]), (1, 1), "calls")


ITER, LEAK_EVERY = 300000, 1000       # many_stacks: 300 leaks at distinct stacks
CAP = "4 MiB"


def leak_groups(c, trace):
    """leaks --group-by stack as a sorted list (ids and addresses differ
    between traces, so do the orders of equal groups)."""
    d = c.report("leaks", "--group-by", "stack", trace=trace)
    groups = []
    for g in d["groups"]:
        for f in g["stack"]:
            f.pop("address", None)
        groups.append(json.dumps(g, sort_keys=True))
    return (d["leaked_bytes"], d["leaked_blocks"]), sorted(groups), d


def case_exact(c):
    # The same program capped and uncapped: the capped trace's tables were
    # rebuilt, and every count and every leak's stack is the same.
    full, capped = os.path.join(c.work, "full.trace"), os.path.join(c.work, "capped.trace")
    argv = [c.prog("many_stacks"), str(ITER), str(LEAK_EVERY)]
    c.run(argv, output=full)
    c.run(argv, output=capped, extra=["--stack-memory", CAP])
    leaks = ITER // LEAK_EVERY
    sums = {}
    for name, t in (("full", full), ("capped", capped)):
        s = c.report("summary", trace=t)
        expect_eq((s["alloc_calls"], s["free_calls"], s["leaked_blocks"], s["leaked_bytes"]),
                  (ITER + 1, ITER - leaks, leaks + 1, 32 * leaks + 777), f"{name}: counts")
        sums[name] = s
    expect_eq(sums["full"]["stack_table_rebuilds"], 0, "uncapped: no rebuild")
    expect(sums["capped"]["stack_table_rebuilds"] >= 1,
           f"capped at {CAP}: rebuilt ({sums['capped']['stack_table_rebuilds']})")
    a, b = leak_groups(c, full), leak_groups(c, capped)
    expect_eq(b[0], a[0], "leaked bytes and blocks")
    expect_eq(len(b[1]), leaks + 1, "one group per leak stack")
    expect(a[1] == b[1], "capped leak groups are the uncapped ones")
    # The planted leak comes last, after every rebuild.
    planted = [g for g in b[2]["groups"] if g["bytes"] == 777]
    expect_eq(len(planted), 1, "the planted leak's group")
    expect_eq([f["function"] for f in planted[0]["stack"][:2]], ["planted_leak", "main"],
              "the planted leak's stack")


def case_bound(c):
    # VmHWM (summary's rss_peak_bytes is at least it) stays within the cap
    # and a margin above the same run without stacks; uncapped it does not.
    argv = [c.prog("many_stacks"), "600000"]
    peaks = {}
    for name, extra in (("none", ["--stacks", "none"]), ("capped", ["--stack-memory", CAP]),
                        ("full", [])):
        t = os.path.join(c.work, name + ".trace")
        c.run(argv, output=t, extra=extra)
        peaks[name] = c.report("summary", trace=t)["rss_peak_bytes"]
    bound = peaks["none"] + 4 * MIB + 8 * MIB
    expect(peaks["capped"] <= bound, f"capped peak {peaks['capped']} <= {bound} ({peaks})")
    expect(peaks["full"] > bound, f"uncapped peak {peaks['full']} above {bound}: the "
           f"workload is big enough to tell ({peaks})")


def case_fork(c):
    # A fork after rebuilds (--follow-fork): the child's trace defines the
    # tables it inherited under the ids they have now (a STACK_RESET first
    # says they start above 1), and what the child leaks symbolizes, the
    # path the parent's first iteration took too (its cached ids are of an
    # earlier generation, defined only in the parent's trace).
    import glob
    c.run([c.prog("many_stacks"), str(ITER), str(LEAK_EVERY), "fork"],
          extra=["--follow-fork", "--stack-memory", CAP])
    children = [t for t in glob.glob(c.trace + ".*")]
    expect_eq(len(children), 1, f"one child trace: {children}")
    parent = c.report("summary")
    expect_eq((parent["leaked_blocks"], parent["leaked_bytes"]),
              (ITER // LEAK_EVERY, 32 * (ITER // LEAK_EVERY)), "parent's leaks")
    expect(parent["stack_table_rebuilds"] >= 1, "the parent rebuilt its tables")
    child = c.report("summary", trace=children[0])
    expect_eq((child["alloc_calls"], child["leaked_blocks"], child["leaked_bytes"]),
              (2, 2, 32 + 777), "child's counts")
    groups = {g["bytes"]: [f["function"] for f in g["stack"]]
              for g in c.report("leaks", "--group-by", "stack", trace=children[0])["groups"]}
    expect_eq(groups[777][:2], ["planted_leak", "main"], "child's planted leak")
    path = groups[32]
    expect(len(path) >= 26 and path[0] == "go" and path[24] == "go" and path[25] == "main"
           and all(f.startswith("way") for f in path[1:24:2]),
           f"child's 32-byte leak: go and way* 12 levels deep, then main: {path}")


def python_leaks(c, trace):
    d = c.report("leaks", "--group-by", "stack", "--python-only", trace=trace)
    groups = sorted(json.dumps([(f["function"], os.path.basename(f["file"] or ""), f["line"])
                                for f in g["stack"]]) for g in d["groups"] if g["bytes"] == 4321)
    final = [g for g in d["groups"] if g["bytes"] == 33333]
    return groups, final


def case_python_hook(c):
    # The same through the profile hook (shadow stacks, not the walker).
    os.environ["TIDEMARK_PYTHON_HOOK"] = "1"
    case_python(c, "hook")


def case_python(c, mode=None):
    # Many distinct Python call paths (--python-stacks): capped, the Python
    # frame table is rebuilt too, the traced process stays smaller, and every
    # leak's Python stack is the uncapped one's.
    prog = os.path.join(os.path.dirname(os.path.abspath(__file__)), "progs", "many_pystacks.py")
    argv = [sys.executable, prog, "20000", "100"]
    got = {}
    for name, extra in (("full", []), ("capped", ["--stack-memory", "2 MiB"])):
        t = os.path.join(c.work, name + ".trace")
        c.run(argv, output=t, extra=["--python-stacks", *extra])
        got[name] = (c.report("summary", trace=t), python_leaks(c, t))
    (sf, (lf, ff)), (sc, (lc, fc)) = got["full"], got["capped"]
    want = mode or ("walker" if sys.version_info[:2] == (3, 11) else "hook")
    expect_eq((sf["python_stacks"], sc["python_stacks"]), (want, want), "Python stacks")
    expect_eq(sf["stack_table_rebuilds"], 0, "uncapped: no rebuild")
    expect(sc["stack_table_rebuilds"] >= 1, f"capped: rebuilt ({sc['stack_table_rebuilds']})")
    expect_eq(len(lf), 200, "200 leaks of 4321 bytes, each at its path")
    expect(all(json.loads(g)[0][0] == "go" and len(json.loads(g)) == 26 for g in lf),
           f"go, then 12 levels of way*/go, then <module>: {lf[0]}")
    expect(lc == lf, "capped Python leak stacks are the uncapped ones")
    expect_eq(len(fc), 1, "the final leak")
    expect_eq([f["function"] for f in fc[0]["stack"]], ["final_leak", "<module>"],
              "the final leak's Python stack after rebuilds")
    expect(sc["rss_peak_bytes"] < sf["rss_peak_bytes"],
           f"capped peak {sc['rss_peak_bytes']} below uncapped {sf['rss_peak_bytes']}")


def case_bad_size(c):
    p = subprocess.run([c.tm, "run", "--stack-memory", "12 parsecs", "--", "true"],
                       capture_output=True, text=True, timeout=60)
    expect_eq(p.returncode, 2, "exit status")
    expect_eq(p.stderr.strip().splitlines(),
              ["tidemark run: --stack-memory must be a size of at least 1 MiB (like 64 MiB), "
               "got '12 parsecs' (see 'tidemark run --help')"], "one line")
    # The variable, set by hand: one line, and the default.
    env = dict(os.environ, TIDEMARK_STACK_MEMORY="lots",
               LD_PRELOAD="", TIDEMARK_OUTPUT=c.trace)
    p = subprocess.run([c.tm, "run", "-o", c.trace, "--", c.prog("hwm_peak")],
                       capture_output=True, text=True, timeout=60, env=env)
    expect_eq(p.returncode, 0, "exit status with a bad TIDEMARK_STACK_MEMORY")
    expect(sum("TIDEMARK_STACK_MEMORY must be a size" in l for l in p.stderr.splitlines()) == 1,
           f"one line about it:\n{p.stderr}")


CASES = {name[5:]: f for name, f in globals().items() if name.startswith("case_")}


if __name__ == "__main__":
    sys.exit(run_cases(__doc__, CASES, "stackcap_"))
