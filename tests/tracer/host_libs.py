#!/usr/bin/python3
"""What the tracer leaves in the process it traces: descriptors, libraries.

    host_libs.py CASE --tidemark BIN --progs DIR --work DIR [--counter LIB]

Same conventions as cases.py: each case runs a real program under
`tidemark run` and checks exact numbers.
"""
import os
import resource
import subprocess
import sys

from cases import run_cases, expect, expect_eq, functions

# What libtidemark.so may bring into a process beyond the program's own
# libraries: itself and libzstd (the stream's compression).
TRACER_LIBS = {"libtidemark.so", "libzstd.so.1"}  # names cut after .so (zstd: its soname)


def parse(stdout):
    first, others, libs = None, [], set()
    for line in stdout.splitlines():
        kind, _, rest = line.partition(" ")
        if kind == "first":
            first = int(rest)
        elif kind == "other":
            fd, flags, target = rest.split(" ", 2)
            others.append((int(fd), flags, target))
        elif kind == "lib":
            name = os.path.basename(rest)
            libs.add(name[:name.index(".so") + 3] + (".1" if name.startswith("libzstd") else ""))
    return first, others, libs


def untraced(c, argv, limit=None):
    pre = (lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))) if limit else None
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120, preexec_fn=pre)
    expect_eq(p.returncode, 0, f"{argv} untraced")
    return parse(p.stdout)


def check_leak(c):
    leaks = c.report("leaks")
    mine = [g for g in leaks["groups"] if functions(g)[:1] == ["host_fds_leak"]]
    expect_eq([(g["blocks"], g["bytes"]) for g in mine], [(3, 369)], "leak from host_fds_leak")


# The program's first open gets 3, as untraced; the tracer keeps its trace
# file and the RSS sampler's /proc/self/statm, both high and close-on-exec,
# and nothing else (none of the unwinder's pipes or module files).
def case_fds(c):
    p = c.run([c.prog("host_fds"), "3"])
    first, others, _ = parse(p.stdout)
    expect_eq(first, 3, "first descriptor the program opens")
    pid_statm = [t for _, _, t in others if t.startswith("/proc/") and t.endswith("/statm")]
    expect_eq(sorted(t for _, _, t in others), sorted([c.trace] + pid_statm[:1]),
              "descriptors besides the program's")
    expect_eq(len(pid_statm), 1, "the RSS sampler's descriptor")
    for fd, flags, target in others:
        expect(fd >= 900 and flags == "cloexec", f"tracer descriptor {fd} {flags} {target}")
    check_leak(c)


# RLIMIT_NOFILE 5: the program opens its file and exits 0, as untraced.
def case_fds_rlimit(c):
    expect_eq(untraced(c, [c.prog("host_fds"), "3"], limit=5)[0], 3, "untraced first descriptor")
    cmd = [c.tm, "run", "-o", c.trace, "--", c.prog("host_fds"), "-"]
    p = subprocess.run(cmd, cwd=c.work, capture_output=True, text=True, timeout=120,
                       preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (5, 5)))
    expect_eq(p.returncode, 0, f"traced with RLIMIT_NOFILE 5: {p.stderr}")
    first, _, _ = parse(p.stdout)
    expect(first is not None and first <= 4, f"first descriptor {first}")
    check_leak(c)


# The traced program maps exactly its own libraries and the tracer's two.
def case_libs(c):
    _, _, plain = untraced(c, [c.prog("host_fds"), "3"])
    p = c.run([c.prog("host_fds"), "3"])
    _, _, traced = parse(p.stdout)
    expect_eq(sorted(traced - plain), sorted(TRACER_LIBS), "libraries the tracer adds")
    expect_eq(sorted(plain - traced), [], "libraries missing under the tracer")


def counted_allocs(c, code, counter):
    env = dict(os.environ, LD_PRELOAD=counter, PYTHONHASHSEED="0")
    p = subprocess.run(["/usr/bin/python3", "-c", code], capture_output=True, text=True,
                       timeout=120, env=env)
    expect_eq(p.returncode, 0, f"{code} with the counter: {p.stderr}")
    lines = [l for l in p.stderr.splitlines() if l.startswith("allocs ")]
    expect_eq(len(lines), 1, "the counter's report")
    return int(lines[0].split()[1])


def traced_allocs(c, code, name):
    os.environ["PYTHONHASHSEED"] = "0"
    trace = os.path.join(c.work, name + ".trace")
    # malloc's calls, as the counting preload sees them: Python's own
    # allocators left alone.
    c.run(["/usr/bin/python3", "-c", code], output=trace, extra=("--python-allocator", "off"))
    return c.report("summary", trace=trace)["alloc_calls"]


# Importing lzma, bz2 and zlib loads liblzma, libbz2 and libz: the loader
# allocates for them.  When the preload had loaded them already the traced
# import allocated 10 times less than the untraced one.  The import's
# allocations, counted by the tracer, equal those counted by a preload that
# loads nothing (progs/count_allocs.c).
def case_python_libs(c):
    counter = c.opts.counter
    imp, base = "import lzma, bz2, zlib", "pass"
    want = counted_allocs(c, imp, counter) - counted_allocs(c, base, counter)
    got = traced_allocs(c, imp, "import") - traced_allocs(c, base, "pass")
    expect(want > 0, f"the import allocates ({want})")
    expect_eq(got, want, f"allocations of the import, traced vs untraced ({want} untraced)")
    # And none of those libraries (but libz, python's own) is in the process
    # before the import.
    check = ("import sys\n"
             "maps = open('/proc/self/maps').read()\n"
             "sys.exit(any(l in maps for l in ('liblzma', 'libbz2', 'libdw', 'libelf',"
             " 'libunwind')))")  # libz: python3 links it itself
    c.run(["/usr/bin/python3", "-c", check], output=os.path.join(c.work, "maps.trace"))


# Through a signal frame: the careful walk reads the interrupted code's
# registers from the ucontext (on the thread's stack, the fast walk hands
# over at the trampoline; on an alternate stack the walk starts careful).
def case_signal(c, mode):
    c.run([c.prog("host_sig"), mode], output=os.path.join(c.work, mode + ".trace"))
    leaks = c.report("leaks", trace=os.path.join(c.work, mode + ".trace"))
    mine = [g for g in leaks["groups"] if functions(g)[:1] == ["sig_leak"]]
    expect_eq([(g["blocks"], g["bytes"]) for g in mine], [(1, 77)], f"{mode}: leak in the handler")
    names = functions(mine[0])
    expect_eq(names[1], "on_signal", f"{mode}: the handler")
    expect("interrupted_here" in names, f"{mode}: the interrupted code in {names}")
    expect_eq(names[names.index("interrupted_here") + 1], "main", f"{mode}: its caller")


def case_signal_careful(c):
    os.environ["TIDEMARK_UNWIND"] = "careful"
    case_signal(c, "main")


CASES = {
    "signal": lambda c: case_signal(c, "main"),
    "signal_alt": lambda c: case_signal(c, "alt"),
    "signal_careful": case_signal_careful,
    "fds": case_fds,
    "fds_rlimit": case_fds_rlimit,
    "libs": case_libs,
    "python_libs": case_python_libs,
}


if __name__ == "__main__":
    sys.exit(run_cases(__doc__, CASES, "host_", ("counter",)))
