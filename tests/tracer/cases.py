#!/usr/bin/python3
"""Runs one real program under the tracer and checks exact numbers.

    cases.py CASE --tidemark BIN --progs DIR --work DIR

Each case runs `tidemark run` on a test program from tests/tracer/progs and
checks the exit status and the `summary` / `leaks` JSON against the values
the program is written to produce (see the comment at the top of each
program).
"""
import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


class Case:
    def __init__(self, args, name):
        self.tm = args.tidemark
        self.progs = args.progs
        self.work = os.path.join(args.work, name)
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        self.trace = os.path.join(self.work, "t.trace")
        self.opts = args

    def run(self, argv, status=0, extra=(), output=None, one_cpu=False):
        cmd = [self.tm, "run", "-o", output or self.trace, *extra, "--", *argv]
        pin = (lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})) if one_cpu else None
        p = subprocess.run(cmd, cwd=self.work, capture_output=True, text=True, timeout=120,
                           preexec_fn=pin)
        expect(p.returncode == status,
               f"{' '.join(cmd)}: exit {p.returncode}, expected {status}\n{p.stderr}")
        return p

    def report(self, *args, status=0, trace=None):
        cmd = [self.tm, *args, "--json", trace or self.trace]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        expect(p.returncode == status,
               f"{' '.join(cmd)}: exit {p.returncode}, expected {status}\n{p.stderr}")
        if status == 2:
            lines = [l for l in p.stderr.splitlines() if l.strip()]
            expect(len(lines) == 1, f"expected one line on stderr, got {lines}")
        return json.loads(p.stdout)

    def prog(self, name):
        return os.path.join(self.progs, name)


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def expect_eq(got, want, what):
    expect(got == want, f"{what}: got {got!r}, expected {want!r}")


def functions(group):
    return [f.get("function") for f in group["stack"]]


def line_of(source, needle):
    with open(os.path.join(HERE, "progs", source)) as f:
        for n, text in enumerate(f, 1):
            if needle in text:
                return n
    raise AssertionError(f"{needle!r} not in {source}")


def check_leak_five(c, status, mode, summary_status=0):
    c.run([c.prog("ending"), mode], status=status)
    leaks = c.report("leaks", status=summary_status)
    expect_eq((leaks["leaked_blocks"], leaks["leaked_bytes"]), (5, 320), f"{mode}: leaks")
    expect_eq(len(leaks["groups"]), 1, f"{mode}: leak groups")
    expect_eq(functions(leaks["groups"][0])[0], "leak_five", f"{mode}: leak site")


def case_busykill(c):
    # Killed while recording: the writer's requests to seal (every 100 ms)
    # and its RSS samples (every 10 ms) were taken by the program's own
    # thread on its way through the recorder.  At least the first 200 ms
    # reached the file: over 500 malloc/free pairs, 15 RSS samples.
    # The last seal may fall between a malloc(32) and its free.
    c.run([c.prog("ending"), "busykill"], status=128 + 9)
    s = c.report("summary", status=2)
    expect(s["alloc_calls"] > 5 + 500, f"allocations flushed: {s['alloc_calls']}")
    in_flight = s["alloc_calls"] - s["free_calls"] - 5
    expect(in_flight in (0, 1), f"allocations without their free: {in_flight} besides the five")
    expect_eq(s["unmatched_frees"], 0, "every free matches an allocation")
    leaks = c.report("leaks", status=2)
    expect_eq((leaks["leaked_blocks"], leaks["leaked_bytes"]), (5 + in_flight, 320 + 32 * in_flight),
              "leaks")
    five = [g for g in leaks["groups"] if g["bytes"] == 320]
    expect(len(five) == 1 and functions(five[0])[0] == "leak_five", "the five leaks, from leak_five")
    t = c.report("timeline", "-o", os.path.join(c.work, "t.svg"), status=2)
    expect(t["rss_points"] >= 15, f"RSS samples flushed: {t['rss_points']}")


def case_exact(c, stacks=True):
    extra = () if stacks else ("--stacks", "none")
    c.run([c.prog("exact")], extra=extra)
    s = c.report("summary")
    for key, want in [("alloc_calls", 119), ("free_calls", 108), ("bytes_allocated", 26978),
                      ("peak_bytes", 12330), ("leaked_bytes", 7542), ("leaked_blocks", 11),
                      ("threads", 1)]:
        expect_eq(s[key], want, f"summary {key}")
    for key in ("duration", "peak_time", "rss_peak_bytes"):
        expect(key in s, f"summary lacks {key}")
    leaks = c.report("leaks")
    expect_eq((leaks["leaked_blocks"], leaks["leaked_bytes"]), (11, 7542), "leaks total")
    if not stacks:
        return
    got = [(g["bytes"], g["blocks"], functions(g)[0]) for g in leaks["groups"]]
    want = [(7000, 7, "leak_seven"), (330, 1, "leak_calloc"), (128, 1, "leak_memalign"),
            (64, 1, "leak_reallocarray_fail"), (20, 1, "leak_realloc")]
    expect_eq(got, want, "leak groups (largest first)")
    top = leaks["groups"][0]["stack"][0]
    expect(top["file"] and top["file"].endswith("exact.c"), f"leak file: {top}")
    expect_eq(top["line"], line_of("exact.c", "kept[nkept++] = malloc(1000)"), "leak line")
    expect(top["module"] == "exact", f"leak module: {top}")
    expect("main" in functions(leaks["groups"][0]), "main in the leak stack")


def case_reports(c):
    c.run([c.prog("exact")])
    peak = c.report("peak")
    expect_eq((peak["peak_bytes"], peak["peak_blocks"]), (12330, 9), "peak")
    got = [(g["bytes"], g["blocks"], functions(g)[0]) for g in peak["stacks"]]
    expect_eq(got, [(7000, 7, "leak_seven"), (5000, 1, "leak_realloc"),
                    (330, 1, "leak_calloc")], "stacks at the peak")
    top = c.report("top", "--by", "count")
    expect_eq((top["alloc_calls"], top["bytes_allocated"]), (119, 26978), "top totals")
    expect_eq((top["stacks"][0]["allocs"], top["stacks"][0]["bytes"],
               functions(top["stacks"][0])[0]), (100, 10000, "main"), "top by count")
    top = c.report("top")
    expect_eq((top["stacks"][0]["bytes"], top["stacks"][0]["allocs"]), (10000, 100),
              "top by bytes")
    # A second run of the same program: other addresses, same stacks.
    again = os.path.join(c.work, "again.trace")
    c.run([c.prog("exact")], output=again)
    cmd = [c.tm, "diff", "--json", c.trace, again]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    expect_eq(p.returncode, 0, f"diff exit ({p.stderr})")
    d = json.loads(p.stdout)
    expect_eq((d["leaked_bytes_delta"], d["peak_bytes_delta"], d["alloc_calls_delta"],
               d["stacks"]), (0, 0, 0, []), "diff of two identical runs")
    regions = os.path.join(c.work, "regions.trace")
    c.run([c.prog("regions")], output=regions)
    p = subprocess.run([c.tm, "diff", "--json", c.trace, regions], capture_output=True,
                       text=True, timeout=60)
    d = json.loads(p.stdout)
    expect_eq(d["leaked_bytes_delta"], 30 - 7542, "diff leaked delta")
    first = d["stacks"][0]
    expect_eq((first["leaked_bytes"]["delta"], functions(first)[0]), (-7000, "leak_seven"),
              "largest leak change first")


def case_threads(c):
    c.run([c.prog("threads")])
    s = c.report("summary")
    expect(s["alloc_calls"] >= 5 * 20000 + 15, f"alloc_calls {s['alloc_calls']}")
    expect_eq(s["alloc_calls"] - s["free_calls"], s["leaked_blocks"], "allocs - frees")
    expect_eq(s["unmatched_frees"], 0, "every free matches an allocation")
    expect(s["threads"] >= 9, f"threads {s['threads']}")
    leaks = c.report("leaks", "--region", "worker")
    expect_eq((leaks["leaked_blocks"], leaks["leaked_bytes"]), (15, 720), "worker leaks")
    expect_eq(functions(leaks["groups"][0])[0], "worker_leak", "worker leak site")


def case_churn(c):
    # 600 threads one after another, native stacks: the exact counts, and
    # the program itself checks (exit 91) that the tracer's per-thread
    # state is reused rather than mapped anew for every thread.
    c.run([c.prog("churn")])
    expect_eq(c.report("summary")["unmatched_frees"], 0, "every free matches an allocation")
    churn = {r["name"]: r for r in c.report("regions")["regions"]}["churn"]
    expect_eq(churn["invocations"], 600, "threads")
    expect_eq((churn["allocs"]["min"], churn["allocs"]["max"], churn["frees"]["min"],
               churn["frees"]["max"]), (11, 11, 10, 10), "allocations and frees per thread")
    leaks = c.report("leaks", "--region", "churn")
    expect_eq((leaks["leaked_blocks"], leaks["leaked_bytes"]), (600, 600 * 24), "leaks")


def case_flood(c):
    # Without stacks events come fastest; on one CPU the writer thread runs
    # only when the program yields, so the ring of chunks fills while the
    # writer flushes and samples RSS: nothing may hang or go missing.
    c.run([c.prog("flood")], extra=["--stacks", "none", "--rss-interval", "1"], one_cpu=True)
    s = c.report("summary")
    expect_eq(s["unmatched_frees"], 0, "every free matches an allocation")
    regions = {r["name"]: r for r in c.report("regions")["regions"]}
    flood = regions["flood"]
    expect_eq(flood["invocations"], 1, "flood invocations")
    expect_eq((flood["allocs"]["max"], flood["frees"]["max"]), (5000000, 5000000),
              "flood allocations and frees")
    leaks = c.report("leaks")
    expect_eq((leaks["leaked_blocks"], leaks["leaked_bytes"]), (7, 168), "leaks")


def tree_traces(c, argv, status=0, follow=False):
    """Runs argv with the output pattern t.%p.trace; returns the traces its
    processes wrote, sorted, which `tidemark run` must name (the first
    process's, then with --follow-fork the others)."""
    pattern = os.path.join(c.work, "t.%p.trace")
    p = c.run(argv, status=status, output=pattern, extra=("--follow-fork",) if follow else ())
    traces = sorted(glob.glob(os.path.join(c.work, "t.*.trace*")))
    named = re.findall(r"(/\S+\.trace\S*)", p.stderr)
    expect_eq(sorted(named), traces, "the traces tidemark run names")
    return traces


def fork_traces(c, follow):
    return tree_traces(c, [c.prog("forks")], status=15, follow=follow)


def case_fork_plain(c):
    traces = fork_traces(c, follow=False)
    expect_eq(len(traces), 1, f"traces {traces}")
    leaks = c.report("leaks", trace=traces[0])
    expect_eq((leaks["leaked_blocks"], leaks["leaked_bytes"]), (3, 500), "parent leaks")


def case_fork_follow(c):
    traces = fork_traces(c, follow=True)
    expect_eq(len(traces), 2, f"traces {traces}")
    got = sorted((c.report("leaks", trace=t)["leaked_blocks"],
                  c.report("leaks", trace=t)["leaked_bytes"]) for t in traces)
    expect_eq(got, [(3, 500), (3, 600)], "parent and child leaks")


# Forks while other threads load and unload a library and start short-lived
# threads: a child must not wait for a lock (the loader's, the module map's,
# the spare thread states') that a thread absent in the child held at the
# fork.  24 children; forkload exits 91 if one hangs.  Each child's own
# thread is traced: 48 bytes leaked in region "child".
def case_fork_load(c):
    traces = tree_traces(c, [c.prog("forkload"), c.prog("libtmleaky.so")], follow=True)
    expect_eq(len(traces), 25, "the parent's trace and 24 children's")
    children = []
    for t in traces:
        regions = {r["name"]: r for r in c.report("regions", trace=t)["regions"]}
        if "child" not in regions:
            continue
        r = regions["child"]
        leaks = c.report("leaks", "--region", "child", trace=t)
        s = c.report("summary", trace=t)
        children.append((r["invocations"], r["allocs"]["max"], r["frees"]["max"],
                         leaks["leaked_blocks"], leaks["leaked_bytes"],
                         s["alloc_calls"], s["free_calls"], s["threads"], s["end"]))
    expect_eq(children, [(1, 1, 0, 1, 48, 2, 1, 2, "_exit")] * 24,
              "each child: its thread's 48-byte leak in region child, its own "
              "32-byte malloc and free, two threads")


def exec_traces(c, follow):
    return tree_traces(c, [c.prog("execs")], status=16, follow=follow)


def leaks_and_end(c, trace):
    leaks = c.report("leaks", trace=trace)
    return (leaks["leaked_blocks"], leaks["leaked_bytes"], c.report("summary", trace=trace)["end"])


def case_exec_plain(c):
    # Without --follow-fork the child stops tracing at the fork and what it
    # execs runs without the preload: the parent's trace only.
    traces = exec_traces(c, follow=False)
    expect_eq(len(traces), 1, f"traces {traces}")
    expect_eq(leaks_and_end(c, traces[0]), (3, 500, "exit"), "parent")


def case_exec_follow(c):
    # The child's trace ends at each exec that could start (END: exec, all
    # of it written); an exec that fails after that goes on in a new trace;
    # the program exec'd writes its own (its pid's path being taken).
    traces = exec_traces(c, follow=True)
    expect_eq(len(traces), 4, f"traces {traces}")
    child = [t for t in traces if t.endswith(".trace") and leaks_and_end(c, t)[2] == "exec"]
    expect_eq(len(child), 1, f"the child's first trace among {traces}")
    parent = [t for t in traces if t.endswith(".trace") and t not in child]
    expect_eq(leaks_and_end(c, parent[0]), (3, 500, "exit"), "parent")
    expect_eq(leaks_and_end(c, child[0]), (4, 610, "exec"), "child before its exec")
    expect_eq(leaks_and_end(c, child[0] + ".2"), (1, 50, "exec"), "child after the failed exec")
    expect_eq(leaks_and_end(c, child[0] + ".3"), (4, 1600, "exit"), "the program exec'd")


def case_regions(c):
    c.run([c.prog("regions")])
    inner = c.report("leaks", "--region", "inner")
    expect_eq((inner["leaked_blocks"], inner["leaked_bytes"]), (3, 30), "inner leaks")
    expect_eq(functions(inner["groups"][0])[0], "inner_work", "inner leak site")
    outer = c.report("leaks", "--region", "outer")
    expect_eq((outer["leaked_blocks"], outer["leaked_bytes"]), (0, 0), "outer leaks")


def case_handoff(c):
    c.run([c.prog("handoff")])
    side = {r["name"]: r for r in c.report("regions")["regions"]}["side"]
    expect_eq((side["invocations"], side["allocs"]["max"], side["allocs"]["total"],
               side["frees"]["total"], side["leaked_blocks"]), (10, 1, 5, 5, 0),
              "side: invocations, allocations (max, total), frees, leaks")
    leaks = c.report("leaks")
    mine = [g for g in leaks["groups"] if functions(g)[0] == "main_keeps"]
    expect_eq([(g["blocks"], g["bytes"]) for g in mine], [(1000, 24000)], "main_keeps leaks")


def case_invocations(c):
    c.run([c.prog("invocations")])
    regions = {r["name"]: r for r in c.report("regions")["regions"]}
    cb = regions["cb"]
    expect_eq(cb["invocations"], 100, "cb invocations")
    expect_eq(cb["allocs"], {"min": 3, "mean": 3, "max": 3, "total": 300}, "cb allocs")
    expect_eq((cb["frees"]["min"], cb["frees"]["max"], cb["frees"]["total"]), (2, 3, 299),
              "cb frees")
    expect_eq(cb["bytes"]["total"], 11200, "cb bytes")
    expect_eq((cb["net_bytes"]["min"], cb["net_bytes"]["max"], cb["net_bytes"]["total"]),
              (0, 64, 64), "cb net bytes")
    expect_eq((cb["invocations_net_zero"], cb["invocations_net_positive"]), (99, 1),
              "cb invocations by net")
    expect_eq(cb["retains"], False, "cb does not retain")
    expect_eq((cb["escaped_blocks"], cb["escaped_bytes"]), (99, 6336), "cb escaped")
    expect_eq((cb["leaked_blocks"], cb["leaked_bytes"]), (1, 64), "cb leaked")
    st = regions["steady"]
    expect_eq((st["invocations"], st["allocs"]["total"], st["frees"]["total"],
               st["net_bytes"]["max"], st["leaked_blocks"]), (50, 50, 50, 0, 0), "steady")
    inner = c.report("regions", "--region", "cb")["regions"]
    expect_eq([r["name"] for r in inner], ["cb"], "--region filter")


def check_dlopen_leaks(c, module):
    leaks = c.report("leaks")
    mine = [g for g in leaks["groups"] if functions(g)[0] == "tm_leaky_make"]
    expect_eq(len(mine), 1, "one group leaked through tm_leaky_make")
    expect_eq((mine[0]["blocks"], mine[0]["bytes"]), (4, 1024), "dlopen leak")
    expect_eq(mine[0]["stack"][0]["module"], module, "module of the unloaded library")
    # Allocated by the library's constructor, inside dlopen: the module map
    # must already hold the library when that stack is recorded.
    init = [g for g in leaks["groups"] if functions(g)[0] == "tm_leaky_init"]
    expect_eq([(g["blocks"], g["bytes"]) for g in init], [(1, 777)], "constructor leak")
    expect_eq(init[0]["stack"][0]["module"], module, "module of the constructor")


def case_dlopen(c):
    c.run([c.prog("dlopen_leak"), c.prog("libtmleaky.so")])
    check_dlopen_leaks(c, "libtmleaky.so")


# The same through libunwind's walk (TIDEMARK_UNWIND=libunwind, also taken
# where the tracer's own walk cannot go), which looks up no unwind rules:
# the module map must learn of the library all the same.
def case_dlopen_libunwind(c):
    os.environ["TIDEMARK_UNWIND"] = "libunwind"
    case_dlopen(c)


# A bare name, found through the program's RUNPATH: the loader searches the
# RUNPATH of the object that calls dlopen, so the tracer must not stand
# between the program and dlopen.
def case_dlopen_runpath(c):
    c.run([c.prog("dlopen_leak"), "libtmplugin.so"])
    check_dlopen_leaks(c, "libtmplugin.so")


# Python frees its objects at exit, so the leak is memory taken straight
# from malloc through ctypes, inside a region opened through ctypes too.
# CDLL(None) looks symbols up globally, as the dynamic linker would, so the
# preload's malloc answers (CDLL("libc.so.6").malloc would bypass it).
PY_LEAK = """
import ctypes
api = ctypes.CDLL(None)
libc = api
libc.malloc.restype = ctypes.c_void_p
keep = [bytearray(100) for _ in range(10)]
api.tidemark_region_begin(b"pyleak")
for i in range(3):
    libc.malloc(1000001)
api.tidemark_region_end()
"""


def case_python(c):
    c.run([sys.executable, "-c", PY_LEAK])
    leaks = c.report("leaks", "--region", "pyleak")
    expect_eq((leaks["leaked_blocks"], leaks["leaked_bytes"]), (3, 3000003), "pyleak leaks")
    expect_eq(len(leaks["groups"]), 1, "one leak site in the region")
    expect("ffi_call" in functions(leaks["groups"][0]),
           f"ctypes' call frame in the leak stack: {functions(leaks['groups'][0])}")
    s = c.report("summary")
    expect(s["alloc_calls"] > 1000, "python allocates at start-up")
    expect(s["leaked_bytes"] >= 3000003, "the region's leak is in the total")


PY_SUBPROCESS = """
import ctypes, subprocess
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.tidemark_region_begin(b"before")
libc.malloc(1001)
libc.tidemark_region_end()
subprocess.run(["/bin/true"], check=True)
libc.tidemark_region_begin(b"after")
libc.malloc(2002)
libc.malloc(2002)
libc.tidemark_region_end()
"""


def case_python_subprocess(c):
    # CPython starts subprocesses with vfork: the child shares the parent's
    # memory until its exec, which must leave the parent's trace alone.
    traces = tree_traces(c, [sys.executable, "-c", PY_SUBPROCESS], follow=True)
    expect_eq(len(traces), 2, f"traces {traces}")
    parent = max(traces, key=lambda t: c.report("summary", trace=t)["alloc_calls"])
    expect_eq(c.report("summary", trace=parent)["end"], "exit", "the parent's trace ends at exit")
    for region, want in (("before", (1, 1001)), ("after", (2, 4004))):
        leaks = c.report("leaks", "--region", region, trace=parent)
        expect_eq((leaks["leaked_blocks"], leaks["leaked_bytes"]), want, f"{region} leaks")


CASES = {
    "exact": case_exact,
    "exact_nostacks": lambda c: case_exact(c, stacks=False),
    "threads": case_threads,
    "handoff": case_handoff,
    "churn": case_churn,
    "flood": case_flood,
    "fork_plain": case_fork_plain,
    "fork_follow": case_fork_follow,
    "exec_plain": case_exec_plain,
    "exec_follow": case_exec_follow,
    "python_subprocess": case_python_subprocess,
    "exit": lambda c: check_leak_five(c, 0, "exit"),
    "_exit": lambda c: check_leak_five(c, 7, "_exit"),
    "abort": lambda c: check_leak_five(c, 128 + 6, "abort"),
    "segv": lambda c: check_leak_five(c, 128 + 11, "segv"),
    # SIGKILL: no END record; the reader reports what was flushed, exit 2.
    "kill": lambda c: check_leak_five(c, 128 + 9, "kill", summary_status=2),
    "busykill": case_busykill,
    "regions": case_regions,
    "dlopen": case_dlopen,
    "fork_load": case_fork_load,
    "dlopen_runpath": case_dlopen_runpath,
    "dlopen_libunwind": case_dlopen_libunwind,
    "invocations": case_invocations,
    "reports": case_reports,
    "python": case_python,
}


def run_cases(doc, cases, prefix="", options=(), setup=None):
    """The command line shared by the case files:

        FILE CASE --tidemark BIN --progs DIR --work DIR [--OPTION VALUE...]

    runs cases[CASE] with a fresh Case in WORK/PREFIX+CASE.  `options` names
    further options; a required one is given as "name!", and every option is
    on the Case as c.opts.NAME; `setup`, if given, is called with them first.
    Returns the exit status."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("case", choices=sorted(cases))
    for name in ("tidemark", "progs", "work", *options):
        ap.add_argument("--" + name.rstrip("!"),
                        required=name in ("tidemark", "progs", "work") or name.endswith("!"))
    args = ap.parse_args()
    if setup:
        setup(args)
    try:
        cases[args.case](Case(args, prefix + args.case))
    except AssertionError as e:
        print(f"FAIL {args.case}: {e}", file=sys.stderr)
        return 1
    print(f"ok {args.case}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cases(__doc__, CASES))
