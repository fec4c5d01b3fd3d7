#!/usr/bin/python3
"""Who ends a trace, and when: exit handlers and destructors, vfork children,
an allocator preloaded before the tracer.

    host_end.py CASE --tidemark BIN --progs DIR --work DIR --preload LIB

Same conventions as cases.py: each case runs a real program under the
tracer and checks exact numbers.
"""
import glob
import os
import subprocess
import sys

from cases import run_cases, expect, expect_eq, functions

# end_host's every mode: end_lib.so's constructor malloc(500), freed by its
# destructor after the program's exit handlers.
LIB_BLOCK = (1, 1)  # allocations, frees


def summary(c, trace=None):
    return c.report("summary", trace=trace)


# A library destructor frees what its constructor allocated, an atexit
# handler frees a 300-byte block: both frees are in the trace (they run
# before the process really ends), only main's ten 40-byte blocks leak.
def case_destructors(c):
    c.run([c.prog("end_host"), "lib"])
    s = summary(c)
    expect_eq((s["alloc_calls"], s["free_calls"], s["end"]), (1 + 1 + 10, 1 + 1, "exit"),
              "allocations, frees, end")
    leaks = c.report("leaks", "--no-default-suppressions")
    expect_eq([(g["blocks"], g["bytes"], functions(g)[0]) for g in leaks["groups"]],
              [(10, 400, "main")], "what leaks")


# A vfork child that fails to exec and _exits leaves the parent's trace
# alone: the parent's 1000 allocations after it are recorded, and the trace
# is ended by the parent's exit.
def case_vfork(c):
    c.run([c.prog("end_host"), "vfork"])
    s = summary(c)
    expect_eq((s["alloc_calls"], s["free_calls"], s["end"]), (1000 + 1, 900 + 1, "exit"),
              "allocations, frees, end after the vfork child's _exit")


# Python's subprocess starts its child with vfork; a failed exec ends the
# child with _exit.  The 1000 bytearrays the script makes afterwards are in
# the trace, alive at the script's own os._exit.
PY_SUBPROCESS = """
import os, subprocess
try:
    subprocess.run(['/nonexistent'])
except FileNotFoundError:
    pass
def block(i):
    return bytearray(100000 + i)
kept = [block(i) for i in range(1000)]
os._exit(0)
"""


def case_python_subprocess(c):
    script = os.path.join(c.work, "sub.py")
    with open(script, "w") as f:
        f.write(PY_SUBPROCESS)
    c.run(["/usr/bin/python3", script], extra=("--python-stacks",))
    expect_eq(summary(c)["end"], "_exit", "the end: the script's own os._exit")
    leaks = c.report("leaks", "--no-default-suppressions")
    line = 1 + PY_SUBPROCESS.splitlines().index("    return bytearray(100000 + i)")
    mine = [(g["blocks"], g["bytes"]) for g in leaks["groups"]
            if any(f.get("file") == script and f.get("line") == line for f in g["stack"])]
    # bytearray(n) holds n + 1 bytes (a trailing NUL), in a buffer beside
    # the object itself (a Python-domain block, traced by default).
    obj = int(subprocess.run(["/usr/bin/python3", "-c", "print(bytearray.__basicsize__)"],
                             capture_output=True, text=True, check=True).stdout)
    expect_eq(mine, [(2000, sum(100001 + i + obj for i in range(1000)))], "the bytearrays kept")


# NumPy's libgfortran frees its buffers in its destructor: nothing of it
# is left at the end (it showed 5 groups, 13.6 KiB, when the trace ended
# before the ELF destructors).
def case_python_numpy_exit(c):
    c.run(["/usr/bin/python3", "-c", "import numpy"])
    expect_eq(summary(c)["end"], "exit", "end")
    leaks = c.report("leaks", "--no-default-suppressions")
    fortran = [g for g in leaks["groups"]
               if any("libgfortran" in (f.get("module") or "") for f in g["stack"])]
    expect_eq([(g["blocks"], g["bytes"]) for g in fortran], [], "libgfortran blocks left at exit")


def preloaded(c, preload, argv, trace):
    env = dict(os.environ, LD_PRELOAD=preload, TIDEMARK_OUTPUT=trace)
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=c.work)
    expect_eq(p.returncode, 0, f"{argv} with LD_PRELOAD={preload}: {p.stderr}")
    return p


# Another allocator preloaded first takes every malloc: nothing can be
# recorded, and the tracer says so in one line naming it.  Debian's jemalloc
# too, when installed.
def case_allocator_first(c):
    preload = c.opts.preload
    others = other_allocators(c)
    for n, other in enumerate(others):
        trace = os.path.join(c.work, f"first{n}.trace")
        p = preloaded(c, f"{other}:{preload}", [c.prog("end_host"), "count"], trace)
        lines = p.stderr.splitlines()
        expect_eq(len(lines), 1, f"{other} first: one line, got {lines}")
        expect(lines[0].startswith(f"tidemark: malloc comes from {other}, loaded before the tracer"),
               f"{other} first: the line names it: {lines[0]}")
        s = summary(c, trace)
        expect_eq((s["alloc_calls"], s["end"]), (0, "exit"), f"{other} first: allocations, end")
    print(f"allocators tried first: {others}")


# After the tracer, the other allocator serves what the tracer records:
# plain LD_PRELOAD in that order, and tidemark run, which puts the tracer
# before the user's LD_PRELOAD.
def other_allocators(c):
    return [os.path.join(c.progs, "first_malloc.so")] + sorted(
        glob.glob("/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"))


# end_host count's own allocations, all recorded: 100 of its 1000 blocks
# left (the allocator's own start-up may add a call of its own).
def check_thousand(c, trace, what):
    s = summary(c, trace)
    expect(s["alloc_calls"] >= 1000 + 1 and s["free_calls"] >= 900 + 1,
           f"{what}: {s['alloc_calls']} allocations, {s['free_calls']} frees")
    leaks = c.report("leaks", "--no-default-suppressions", trace=trace)
    mine = [(g["blocks"], g["bytes"]) for g in leaks["groups"] if functions(g)[0] == "thousand"]
    expect_eq(mine, [(100, 2400)], f"{what}: the blocks left by thousand()")


def case_allocator_after(c):
    preload = c.opts.preload
    for n, other in enumerate(other_allocators(c)):
        trace = os.path.join(c.work, f"after{n}.trace")
        p = preloaded(c, f"{preload}:{other}", [c.prog("end_host"), "count"], trace)
        expect_eq(p.stderr, "", f"{other} after: no message")
        check_thousand(c, trace, f"LD_PRELOAD tracer, then {other}")
    other = other_allocators(c)[-1]
    os.environ["LD_PRELOAD"] = other
    try:
        p = c.run([c.prog("end_host"), "count"])
    finally:
        del os.environ["LD_PRELOAD"]
    expect("loaded before the tracer" not in p.stderr, f"tidemark run: no message: {p.stderr}")
    check_thousand(c, c.trace, f"tidemark run, LD_PRELOAD={other}")


CASES = {
    "destructors": case_destructors,
    "vfork": case_vfork,
    "python_subprocess": case_python_subprocess,
    "python_numpy_exit": case_python_numpy_exit,
    "allocator_first": case_allocator_first,
    "allocator_after": case_allocator_after,
}


if __name__ == "__main__":
    sys.exit(run_cases(__doc__, CASES, "end_", ("preload!",)))
