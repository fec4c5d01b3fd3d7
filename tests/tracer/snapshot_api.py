#!/usr/bin/python3
"""The preload's in-process query API (tidemark_snapshot, tidemark.snapshot())
against the reports, on real programs: tests/tracer/progs/snapshot.c (its
figures are explained at its top) and Python through ctypes.

    snapshot_api.py CASE --tidemark BIN --progs DIR --work DIR --pythonpath DIR
"""
import os
import subprocess
import sys

from cases import run_cases, expect, expect_eq


def lines(p):
    return [l.split() for l in p.stderr.splitlines() if not l.startswith("tidemark:")]


def case_c_exact(c):
    os.environ["TIDEMARK_SNAPSHOT"] = "1"
    p = c.run([c.prog("snapshot")])
    rows = {r[0] if r[0] != "region" else "region " + r[1]: r[1:] if r[0] != "region" else r[2:]
            for r in lines(p)}
    expect_eq(rows["base"], ["0", "0", "0"], "nothing live before main")
    expect_eq(rows["step1"], ["6040", "4", "6040", "1"], "after malloc/calloc/realloc/memalign")
    expect_eq(rows["step2"], ["6040", "4", "16040", "1"], "peak since reset")
    expect_eq(rows["step3"], ["5844", "6", "16040", "1"], "after the regions")
    expect_eq(rows["region outer"], ["1", "104", "3"], "outer: inclusive")
    expect_eq(rows["region inner"], ["2", "40", "2"], "inner")
    live, blocks, peak = map(int, rows["final"])
    s = c.report("summary")
    expect_eq((s["leaked_bytes"], s["leaked_blocks"], s["peak_bytes"]), (live, blocks, peak),
              "summary's leaked and peak are the last snapshot's")
    for name, nbytes, nblocks in (("outer", 104, 3), ("inner", 40, 2)):
        k = c.report("kept", "--region", name)
        expect_eq((k["kept_bytes"], k["kept_blocks"]), (nbytes, nblocks), f"kept --region {name}")
    # leaks --region counts a region's own blocks: the snapshot's inclusive
    # figures are outer's own plus inner's.
    own = {n: c.report("leaks", "--region", n, "--no-default-suppressions") for n in ("outer", "inner")}
    expect_eq(own["outer"]["leaked_bytes"] + own["inner"]["leaked_bytes"], 104, "own bytes")
    expect_eq(own["outer"]["leaked_blocks"] + own["inner"]["leaked_blocks"], 3, "own blocks")


def case_c_off(c):
    os.environ.pop("TIDEMARK_SNAPSHOT", None)
    p = c.run([c.prog("snapshot")])
    expect_eq(lines(p), [["off"]], "without TIDEMARK_SNAPSHOT=1")
    p = subprocess.run([c.prog("snapshot")], capture_output=True, text=True, timeout=60)
    expect_eq((p.returncode, p.stderr), (0, "absent\n"), "without the preload")


PY_EXACT = r"""
import ctypes, json, tidemark
from tidemark import _snapshot as S
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.realloc.restype = ctypes.c_void_p
libc.realloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
malloc, free, realloc = libc.malloc, libc.free, libc.realloc
free(malloc(1)); free(realloc(malloc(1), 2))   # every ctypes path warmed up
out = {}
S.reset_peak()
t0 = S.totals()
p = malloc(12345)
t1 = S.totals()
q = realloc(p, 20000)
t2 = S.totals()
free(q)
t3 = S.totals()
out["malloc"] = [t1[0] - t0[0], t1[1] - t0[1]]
out["realloc"] = [t2[0] - t0[0], t2[1] - t0[1]]
out["peak"] = t3[2] - t0[0]
with tidemark.region("py"):
    keep = malloc(777)
    with tidemark.region("py_inner"):
        keep2 = malloc(223)
snap = tidemark.snapshot()
out["regions"] = {k: v for k, v in snap["regions"].items() if k.startswith("py")}
out["keys"] = sorted(snap)
print(json.dumps(out))
"""


def case_python_exact(c):
    os.environ["TIDEMARK_SNAPSHOT"] = "1"
    os.environ["PYTHONPATH"] = c.opts.pythonpath
    # Python's own objects (the ints and tuples ctypes makes between two
    # snapshots) are traced by default; these figures are malloc's alone.
    p = c.run([sys.executable, "-c", PY_EXACT], extra=("--python-allocator", "off"))
    import json
    d = json.loads(p.stdout)
    expect_eq(d["malloc"], [12345, 1], "malloc(12345) through ctypes")
    expect_eq(d["realloc"], [20000, 1], "realloc to 20000")
    expect(d["peak"] >= 20000 and d["peak"] < 20000 + 4096, f"peak about 20000: {d['peak']}")
    expect_eq(d["regions"], {"py": {"invocations": 1, "kept_bytes": 1000, "kept_blocks": 2},
                             "py_inner": {"invocations": 1, "kept_bytes": 223, "kept_blocks": 1}},
              "regions, inclusive")
    expect_eq(d["keys"], ["exact", "live_blocks", "live_bytes", "peak_bytes", "regions"],
              "snapshot() keys")
    # The reports agree on the regions' blocks.
    k = c.report("kept", "--region", "py_inner")
    expect_eq((k["kept_bytes"], k["kept_blocks"]), (223, 1), "kept --region py_inner")


def case_python_outside(c):
    env = dict(os.environ, PYTHONPATH=c.opts.pythonpath)
    env.pop("LD_PRELOAD", None)
    p = subprocess.run([sys.executable, "-c", "import tidemark; tidemark.snapshot()"],
                       capture_output=True, text=True, env=env, timeout=60)
    expect(p.returncode == 1, f"exit {p.returncode}")
    expect("RuntimeError: tidemark snapshots need the tracer: run under `tidemark pytest`"
           in p.stderr, f"the error:\n{p.stderr}")


def case_python_other(c):
    """The per-interpreter packages have _snapshot too (tidemark pytest --python)."""
    import glob
    import json
    pys = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[23]*/bin/python3")))
    if not pys:
        print("skipped: no pyenv Python 3.12/3.13")
        return
    os.environ["TIDEMARK_SNAPSHOT"] = "1"
    os.environ.pop("PYTHONPATH", None)
    script = ("import ctypes, json, tidemark\n"
              "from tidemark import _snapshot as S\n"
              "libc = ctypes.CDLL(None); libc.malloc.restype = ctypes.c_void_p\n"
              "libc.malloc.argtypes = [ctypes.c_size_t]; libc.free.argtypes = [ctypes.c_void_p]\n"
              "libc.free(libc.malloc(1))\n"
              "t0 = S.totals(); p = libc.malloc(12345); t1 = S.totals()\n"
              "print(json.dumps([t1[0] - t0[0], t1[1] - t0[1]]))\n")
    for i, py in enumerate(pys):
        p = c.run([py, "-c", script], extra=("--python-stacks", "--python-allocator", "off"),
                  output=os.path.join(c.work, f"v{i}.trace"))
        expect_eq(json.loads(p.stdout), [12345, 1], f"{py}: malloc(12345)")


CASES = {n[5:]: f for n, f in globals().items() if n.startswith("case_")}

if __name__ == "__main__":
    sys.exit(run_cases(__doc__, CASES, prefix="snapshot_", options=("pythonpath!",)))
