#!/usr/bin/python3
"""Kept memory, inclusive regions, per-invocation rows, peak --region and
the fitted sweep verdict (issue 24 items 2, 4-7, 9, 10), on real programs
under the tracer: tests/tracer/progs/kept.c (its numbers are explained at
its top) and Python programs through the bridge.

    reports_kept.py CASE --tidemark BIN --progs DIR --work DIR --pythonpath DIR
"""
import json
import os
import subprocess
import sys

import cases
from cases import run_cases, expect, expect_eq, functions


def tm(c, *args, status=0):
    p = subprocess.run([c.tm, *args], capture_output=True, text=True, timeout=300)
    expect(p.returncode == status,
           f"tidemark {' '.join(args)}: exit {p.returncode}, expected {status}\n{p.stderr}")
    if status == 2:
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        expect(len(lines) == 1, f"one line on stderr, got {lines}")
    return p


def js(c, *args, status=0, trace=None):
    p = tm(c, *args, "--json", trace or c.trace, status=status)
    d = json.loads(p.stdout)
    expect(isinstance(d.get("schema_version"), int), f"schema_version in {args}")
    return d


def run_kept(c, output=None):
    c.run([c.prog("kept")], output=output)


def regions_by_name(c, trace=None):
    return {r["name"]: r for r in js(c, "regions", trace=trace)["regions"]}


def stat(s):
    return (s["min"], s["mean"], s["max"], s["total"])


# kept --region: by site, with invocations, blocks freed later, never freed.
def case_c_kept(c):
    run_kept(c)
    want = {  # region: (invocations, keeping, kept bytes, blocks, freed later, site function)
        "cb": (10, 10, 480, 10, 0, "cb"),
        "test": (1, 1, 480, 10, 0, "cb"),      # the callback's leak, inclusive
        "copy": (20, 20, 5120, 20, 20, "copy"),
        "result": (5, 5, 2560, 5, 5, "result"),
        "late": (6, 3, 96, 3, 0, "late"),
    }
    for name, (inv, keeping, nbytes, blocks, later, fn) in want.items():
        d = js(c, "kept", "--region", name)
        got = (d["invocations"], d["invocations_keeping"], d["kept_bytes"], d["kept_blocks"],
               d["freed_later_blocks"])
        expect_eq(got, (inv, keeping, nbytes, blocks, later), f"kept --region {name}")
        expect_eq(len(d["groups"]), 1, f"{name}: one site")
        g = d["groups"][0]
        ginv = 1 if name == "test" else keeping
        expect_eq((g["bytes"], g["blocks"], g["invocations"], g["freed_later_blocks"], g["stacks"]),
                  (nbytes, blocks, ginv, later, 1), f"{name}: the site's figures")
        expect_eq(functions(g)[0], fn, f"{name}: the site")
        expect_eq(g["last_free"] is None, later == 0, f"{name}: last_free")
    # Accumulating: copy (256 B per call, freed at teardown) and cb; not
    # result (each freed before the next call) nor test (one invocation).
    acc = {n: js(c, "kept", "--region", n)["accumulates"] for n in want}
    expect_eq(acc, {"cb": True, "test": False, "copy": True, "result": False, "late": True},
              "accumulates")
    expect_eq(js(c, "kept", "--region", "copy")["kept_per_invocation"], 256.0,
              "copy: kept per invocation")
    # leaks --region sees none of copy's memory: it was freed at teardown.
    expect_eq(js(c, "leaks", "--region", "copy")["leaked_blocks"], 0, "leaks --region copy")
    text = tm(c, "kept", "--region", "copy", c.trace).stdout
    expect("20 of them freed later" in text and "keeps memory call after call" in text,
           f"kept text:\n{text}")
    tm(c, "kept", "--region", "nope", c.trace, status=2)
    tm(c, "kept", c.trace, status=2)


# Own and inclusive figures, kept and peak per invocation; the hint.
def case_c_regions(c):
    run_kept(c)
    r = regions_by_name(c)
    t = r["test"]
    expect_eq((t["invocations"], t["nested"]), (1, True), "test: invocations, nested")
    expect_eq((stat(t["own"]["allocs"]), stat(t["own"]["bytes"]), stat(t["own"]["net_bytes"]),
               stat(t["own"]["kept_bytes"])),
              ((1, 1, 1, 1), (1000, 1000, 1000, 1000), (0, 0, 0, 0), (0, 0, 0, 0)), "test own")
    expect_eq((stat(t["incl"]["allocs"]), stat(t["incl"]["bytes"]), stat(t["incl"]["net_bytes"]),
               stat(t["incl"]["kept_bytes"]), stat(t["incl"]["peak_bytes"]),
               t["incl"]["invocations_keeping"]),
              ((21, 21, 21, 21), (1640, 1640, 1640, 1640), (480, 480, 480, 480),
               (480, 480, 480, 480), (1496, 1496, 1496, 1496), 1), "test incl")
    # The old top-level keys are the own figures.
    expect_eq(t["allocs"], t["own"]["allocs"], "top-level allocs are own")
    cb = r["cb"]
    expect_eq((cb["nested"], stat(cb["incl"]["peak_bytes"]), stat(cb["incl"]["kept_bytes"]),
               cb["incl"]["invocations_keeping"], cb["leaked_blocks"], cb["leaked_bytes"]),
              (False, (64, 64, 64, 640), (48, 48, 48, 480), 10, 10, 480), "cb")
    expect_eq(cb["own"], cb["incl"], "cb: nothing nested, own = incl")
    res = r["result"]
    expect_eq((stat(res["incl"]["kept_bytes"]), res["kept_per_invocation"], res["accumulates"],
               res["escaped_blocks"]), ((512, 512, 512, 2560), 0.0, False, 5), "result")
    expect_eq((r["copy"]["kept_per_invocation"], r["copy"]["accumulates"]), (256.0, True), "copy")
    text = tm(c, "regions", c.trace).stdout
    lines = text.splitlines()
    incl = [l for l in lines if l.split()[:1] == ["incl"]]
    expect_eq(len(incl), 1, f"one incl line (test):\n{text}")
    expect(any("own:" in l and "exclusive" in l and "incl:" in l and "inclusive" in l
               for l in lines), f"the text says which figures are which:\n{text}")
    expect("tidemark kept --region copy" in text, f"the hint points to kept:\n{text}")
    expect("tidemark kept --region result" not in text, "result keeps nothing per call")


# regions --invocations NAME: one row each, the first that kept memory.
def case_c_invocations(c):
    run_kept(c)
    d = js(c, "regions", "--invocations", "late")
    expect_eq((d["region"], d["invocations"], d["first_keeping"]), ("late", 6, 4), "late")
    rows = d["rows"]
    expect_eq([r["index"] for r in rows], [1, 2, 3, 4, 5, 6], "indexes")
    expect_eq([(r["allocs"], r["net_bytes"], r["kept_bytes"], r["peak_bytes"], r["leaked_bytes"])
               for r in rows], [(1, 0, 0, 64, 0)] * 3 + [(2, 32, 32, 64, 32)] * 3, "late rows")
    starts = [r["start"] for r in rows]
    expect(starts == sorted(starts) and all(r["end"] >= r["start"] for r in rows), "times")
    d = js(c, "regions", "--invocations", "result", "--limit", "2")
    expect_eq((d["invocations"], len(d["rows"]), d["first_keeping"]), (5, 2, 1), "result, limit")
    expect_eq([(r["kept_bytes"], r["leaked_bytes"]) for r in d["rows"]], [(512, 0)] * 2,
              "result rows: kept, then freed by the caller")
    d = js(c, "regions", "--invocations", "test")
    expect_eq([(r["allocs"], r["kept_bytes"], r["leaked_bytes"]) for r in d["rows"]],
              [(21, 480, 480)], "test: inclusive row")
    text = tm(c, "regions", "--invocations", "late", c.trace).stdout
    expect("first invocation that kept memory: 4" in text, f"text:\n{text}")
    tm(c, "regions", "--invocations", "nope", c.trace, status=2)
    tm(c, "regions", "--invocations", "late", "--region", "cb", c.trace, status=2)


# peak --region: the peak of what a region allocated.
def case_c_peak(c):
    run_kept(c)
    for name, want in {"copy": (5120, 20), "test": (1496, 12), "cb": (480 + 16, 11),
                       "result": (512, 1), "late": (64 + 64, 3)}.items():
        d = js(c, "peak", "--region", name)
        expect_eq((d["peak_bytes"], d["peak_blocks"], d["region"]), (*want, name),
                  f"peak --region {name}")
        expect_eq(sum(s["bytes"] for s in d["stacks"]), want[0], f"{name}: stacks sum")
    top = js(c, "peak", "--region", "copy")["stacks"][0]
    expect_eq(functions(top)[0], "copy", "copy's peak is its own blocks")
    whole = js(c, "peak")
    expect("region" not in whole and whole["peak_bytes"] >= 5120, f"plain peak: {whole}")
    tm(c, "peak", "--region", "nope", c.trace, status=2)


# The case: a bridge callback whose Python code keeps a copy per
# call, freed at teardown: kept shows the 4 MB; leaks --region does not.
KEEPS_COPY = """
import numpy as np
import tidemark
from tidemark import bridge
kept = []
def keeps_copy(t, y, ydot):
    np.negative(y, out=ydot)
    kept.append(y.copy())
y = np.arange(5000.0)
ydot = np.zeros(5000)
cb = bridge.c_callback(keeps_copy, name="keeps_copy")
for _ in range(100):
    bridge.call_rhs(cb, 0.5, y, ydot)
kept.clear()
"""


def run_py(c, source, output=None):
    c.run(["/usr/bin/python3", "-c", source], output=output)


def case_python_kept(c):
    run_py(c, KEEPS_COPY)
    d = js(c, "kept", "--region", "keeps_copy")
    expect_eq((d["invocations"], d["invocations_keeping"], d["accumulates"]), (100, 100, True),
              "keeps_copy")
    big = [g for g in d["groups"] if g["blocks"] == 100 and g["bytes"] == 100 * 40000]
    expect(len(big) == 1, f"one site holds the 100 copies of 40000 B: {d['groups'][:3]}")
    expect_eq((big[0]["invocations"], big[0]["freed_later_blocks"]), (100, 100),
              "every invocation kept one, all freed at teardown")
    expect_eq(d["groups"][0], big[0], "the copies come first")
    expect(d["kept_bytes"] >= 4000000, f"kept bytes {d['kept_bytes']}")
    le = js(c, "leaks", "--region", "keeps_copy")
    expect(le["leaked_bytes"] < 1024, f"leaks --region sees only what nobody freed: {le}")
    text = tm(c, "regions", c.trace).stdout
    expect("tidemark kept --region keeps_copy" in text, f"the hint:\n{text}")


# Item 2: a clean NumPy callback is not failed over NumPy's caches; a
# callback whose arrays are still allocated at exit is.
CLEAN = """
import numpy as np
from tidemark import bridge
kept = []
def clean(t, y, ydot):
    ydot[:] = y * 2.0 + np.sin(y)
    z = y.reshape(50, 100).T.copy()
    ydot[0] += z.sum()
def leaky(t, y, ydot):
    ydot[:] = y
    kept.append(y[:10].copy())
y = np.arange(5000.0)
ydot = np.zeros(5000)
ok = bridge.c_callback(clean, name="clean_cb")
bad = bridge.c_callback(leaky, name="leaky_cb")
for _ in range(200):
    bridge.call_rhs(ok, 0.5, y, ydot)
for _ in range(50):
    bridge.call_rhs(bad, 0.5, y, ydot)
import os
os._exit(0)     # no finalization: the kept arrays are still allocated at exit
"""


def case_python_clean_callback(c):
    run_py(c, CLEAN)
    d = js(c, "leaks", "--region", "clean_cb", "--fail-on-leak")
    expect_eq(d["leaked_blocks"], 0, "clean callback")
    raw = js(c, "leaks", "--region", "clean_cb", "--no-default-suppressions")
    rules = {s["rule"] for s in js(c, "leaks", "--region", "clean_cb")["suppressed_by"]}
    expect(raw["leaked_blocks"] == 0 or "numpy-cache" in rules,
           f"what the clean callback left is NumPy's cache: {raw['groups'][:2]} {rules}")
    d = js(c, "leaks", "--region", "leaky_cb", "--fail-on-leak", status=3)
    data = [g for g in d["groups"] if g["bytes"] == 50 * 80 and g["blocks"] == 50]
    expect(len(data) == 1, f"the 50 kept 80-byte arrays are reported: {d['groups'][:3]}")


# Item 2 on the benchmark: the Burgers right-hand side through the bridge
# is clean (leaks and leaks --region pass --fail-on-leak), it keeps nothing
# per call, and its sweep over three resolutions passes.
BENCH = os.path.join(cases.HERE, "..", "..", "samples", "burgers", "bench.py")


def case_burgers_clean(c):
    traces = []
    for n in (21, 31, 41):
        t = os.path.join(c.work, f"b{n}.trace")
        c.run(["/usr/bin/python3", BENCH, "--resolutions", str(n), "--runs", "1", "--impls",
               "scipy_dopri5_bridge"], output=t)
        traces.append(t)
        js(c, "leaks", "--fail-on-leak", trace=t)
        d = js(c, "leaks", "--region", "burgers_rhs", "--fail-on-leak", trace=t)
        expect_eq(d["leaked_blocks"], 0, f"N={n}: burgers_rhs leaks")
        k = js(c, "kept", "--region", "burgers_rhs", trace=t)
        expect(k["invocations"] > 100 and not k["accumulates"], f"N={n}: kept {k['kept_per_invocation']}")
    d, crit = sweep(c, traces, os.path.join(c.work, "sweep"), 0)
    expect_eq((d["verdict"], crit["kept_per_invocation:burgers_rhs"]["verdict"]), ("PASS", "PASS"),
              "burgers sweep")


# Item 5 through Python: a test region around a leaking callback region
# shows the callback's leak in its inclusive figures; a long name is never cut.
LONG = "test_" + "long_region_name_" * 4


def case_python_inclusive(c):
    run_py(c, CLEAN.replace("for _ in range(50):",
                            f"import tidemark\nwith tidemark.region({LONG!r}):\n for _ in range(50):"))
    r = regions_by_name(c)
    t = r[LONG]
    expect_eq((t["nested"], t["own"]["kept_bytes"]["total"] < 4000), (True, True), "test own")
    expect(t["incl"]["kept_bytes"]["total"] >= 50 * 80,
           f"test region's inclusive kept bytes hold the callback's leak: {t['incl']}")
    expect(r["leaky_cb"]["accumulates"] and not r["clean_cb"]["accumulates"], "accumulates")
    d = js(c, "kept", "--region", LONG)
    expect(any(g["blocks"] == 50 and g["bytes"] == 4000 for g in d["groups"]),
           f"kept --region test shows the callback's arrays: {d['groups'][:3]}")
    text = tm(c, "regions", c.trace).stdout
    expect(any(l.strip() == LONG for l in text.splitlines()), f"the full name on a line:\n{text}")


# Item 9/10: the verdict fitted over all runs per criterion.
GROWING = """
import ctypes, sys
import tidemark
n = int(sys.argv[1])
tidemark.mark(f"resolution={n}")
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
held = [libc.malloc(n * 1000) for _ in range(sys.argv[2] == "grow" and 1 or 0)]
held += [libc.malloc(5000)]
"""


def sweep(c, traces, outdir, status):
    p = tm(c, "sweep", "--json", "-o", outdir, *traces, status=status)
    d = json.loads(p.stdout)
    expect(isinstance(d.get("schema_version"), int), "sweep schema_version")
    return d, {k["name"]: k for k in d["criteria"]}


def case_sweep_fitted(c):
    traces = []
    for i in range(3):
        t = os.path.join(c.work, f"k{i}.trace")
        run_kept(c, output=t)
        traces.append(t)
    labels = ["--label", "100", "--label", "200", "--label", "400"]
    out = os.path.join(c.work, "nested", "sweep")     # parents created
    p = tm(c, "sweep", "--json", "-o", out, *traces, *labels, status=3)
    d = json.loads(p.stdout)
    crit = {k["name"]: k for k in d["criteria"]}
    expect_eq(d["verdict"], "FAIL", "kept.c sweep")
    for name in ("kept_per_invocation:copy", "kept_per_invocation:cb"):
        k = crit[name]
        want = 256.0 if name.endswith("copy") else 48.0
        expect_eq((k["values"], k["slope"], k["threshold"], k["verdict"]),
                  ([want] * 3, 0.0, 8.0, "FAIL"), name)
    expect_eq(crit["kept_per_invocation:result"]["verdict"], "PASS", "result: no accumulation")
    expect("kept_per_invocation:test" not in crit, "one invocation cannot accumulate")
    lk = crit["leaked_bytes"]
    expect_eq((lk["values"], lk["slope"], lk["growth"], lk["threshold"], lk["verdict"]),
              ([576.0] * 3, 0.0, 0.0, 65536.0, "PASS"), "leaked bytes")
    for f in ("memory-vs-resolution.png", "timelines.png", "sweep.json"):
        expect(os.path.getsize(os.path.join(out, f)) > 1000, f"{f} written")
    text = tm(c, "sweep", "-o", out, *traces, *labels, status=3).stdout
    for k in d["criteria"]:
        expect(sum(1 for l in text.splitlines() if k["explanation"] in l) == 1,
               f"one line for {k['name']}:\n{text}")

    # Leaked bytes after suppressions: fitted growth 300 KB over 100..400 fails.
    for mode, status in (("grow", 3), ("flat", 0)):
        ts = []
        for n in (100, 200, 400):
            t = os.path.join(c.work, f"{mode}{n}.trace")
            run_py(c, GROWING.replace("sys.argv[1]", str(n)).replace("sys.argv[2]", repr(mode)),
                   output=t)
            ts.append(t)
        d, crit = sweep(c, ts, os.path.join(c.work, mode), status)
        lk = crit["leaked_bytes"]
        base = lk["values"][0] - (100000 if mode == "grow" else 0)
        want = [base + (n * 1000 if mode == "grow" else 0) for n in (100, 200, 400)]
        expect_eq(lk["values"], want, f"{mode}: leaked bytes per run")
        expect_eq((lk["verdict"], d["verdict"]), ("FAIL", "FAIL") if mode == "grow"
                  else ("PASS", "PASS"), f"{mode}: verdict")
        if mode == "grow":
            expect(abs(lk["slope"] - 1000.0) < 1e-6 and abs(lk["growth"] - 300000.0) < 1e-3,
                   f"grow: slope 1000 B per unit, growth 300000: {lk}")


CASES = {name[5:]: f for name, f in globals().items() if name.startswith("case_")}


if __name__ == "__main__":
    sys.exit(run_cases(__doc__, CASES, "kept_", ("pythonpath!",),
                       setup=lambda opts: os.environ.update(PYTHONPATH=opts.pythonpath)))
