#!/usr/bin/python3
"""The program's signal dispositions and alternate stacks under the tracer.

    host_signals.py CASE --tidemark BIN --progs DIR --work DIR

Same conventions as cases.py: each case runs a real program under
`tidemark run` (progs/host_signals.c, or /usr/bin/python3) and checks exact
output, exit status and trace contents; where the program's own view is
checked, against the same program run untraced.
"""
import argparse
import os
import select
import signal
import subprocess
import sys

from cases import Case, expect, expect_eq, functions

PY = "/usr/bin/python3"
TRACKED = [signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT,
           signal.SIGTRAP, signal.SIGSYS, signal.SIGTERM, signal.SIGQUIT, signal.SIGHUP,
           signal.SIGXCPU, signal.SIGXFSZ]
KEEP = (5000, 360000)  # keep_blocks: blocks, bytes


def untraced(argv, status=0):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    expect_eq(p.returncode, status, f"{argv} untraced ({p.stderr.strip()})")
    return p.stdout


def summary(c):
    return c.report("summary")


def check_kept(c, end, sig=None):
    s = summary(c)
    expect_eq(s["end"], end, "the trace's end")
    if sig is not None:
        expect_eq(s.get("end_signal"), sig, "END's signal")
    leaks = c.report("leaks")
    mine = [(g["blocks"], g["bytes"]) for g in leaks["groups"]
            if functions(g)[:1] == ["keep_blocks"]]
    expect_eq(mine, [KEEP], "blocks from keep_blocks in the trace")


# Every query the program makes (sigaction with no action, what signal,
# sysv_signal, sigset, sigignore, siginterrupt return, sigaltstack) reads
# exactly as untraced: SIG_DFL, flags 0, no restorer at the start for the
# tracer's signals too; then handler, flags (SA_RESTORER added, as libc
# and the kernel report it), mask (SIGKILL dropped) as set.
def case_view(c):
    prog = c.prog("host_signals")
    want = untraced([prog, "view"])
    got = c.run([prog, "view"]).stdout
    for sig in TRACKED:
        line = f"start {int(sig)} SIG_DFL flags=0 mask=0 restorer=null"
        expect(line in got.splitlines(), f"{line!r} in the traced view:\n{got}")
    expect("start altstack flags=2 sp=null size=0" in got.splitlines(),
           "no alternate stack before the program sets one")
    expect_eq(got, want, "the program's view, traced vs untraced")
    expect_eq(summary(c)["end"], "exit", "the trace's end")


# The one-liner: getsignal returned None, so putting the old
# handler back raised TypeError.
def case_python_roundtrip(c):
    code = ("import signal; o = signal.signal(signal.SIGTERM, lambda *a: None); "
            "signal.signal(signal.SIGTERM, o)")
    p = c.run([PY, "-c", code])
    expect_eq(p.stdout, "", "no output")
    # and one line from tidemark: no tracer line (python3 is not a PIE: its
    # PLT entry is malloc's address, not another allocator loaded first)
    expect_eq(p.stderr.splitlines(), [f"tidemark: trace written to {c.trace}"], "stderr")
    expect_eq(summary(c)["end"], "exit", "the trace's end")


def case_python_getsignal(c):
    code = ("import signal, faulthandler\n"
            "def show(what):\n"
            "    print(what, [(s, str(signal.getsignal(s))) for s in range(1, signal.NSIG)\n"
            "                 if s not in (signal.SIGKILL, signal.SIGSTOP)])\n"
            "show('start')\n"
            "faulthandler.enable()\n"
            "faulthandler.disable()\n"
            "for s in (signal.SIGTERM, signal.SIGHUP):\n"
            "    signal.signal(s, signal.SIG_IGN)\n"
            "    signal.signal(s, signal.SIG_DFL)\n"
            "show('after')\n"
            "# a vfork child (subprocess) resets SIGPIPE and SIGXFSZ: its own,\n"
            "# not the parent's (sigaction through ctypes: the C view)\n"
            "import ctypes, subprocess\n"
            "libc = ctypes.CDLL(None)\n"
            "subprocess.run(['/bin/true'], check=True)\n"
            "for s in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM):\n"
            "    sa = ctypes.create_string_buffer(152)\n"
            "    assert libc.sigaction(int(s), None, sa) == 0\n"
            "    print(int(s), int.from_bytes(sa.raw[:8], 'little'),\n"
            "          hex(int.from_bytes(sa.raw[136:140], 'little')))\n")
    want = untraced([PY, "-c", code])
    got = c.run([PY, "-c", code]).stdout
    expect_eq(got, want, "getsignal for every signal, traced vs untraced")


# Its own SIGSEGV handler is called (with the fault's siginfo); it puts
# SIG_DFL back and returns, the store faults again, the process dies of
# SIGSEGV and the trace ends with signal 11, every block in it.
def case_handler(c):
    prog = c.prog("host_signals")
    expect_eq(untraced([prog, "handler"], status=-11), "handled 11 addr null\n", "untraced output")
    p = c.run([prog, "handler"], status=128 + 11)
    expect_eq(p.stdout, "handled 11 addr null\n", "the program's handler ran")
    check_kept(c, "signal", 11)


# SA_RESETHAND: the first SIGTERM reaches the handler and resets it to
# SIG_DFL (as the program then reads), the second kills: END signal 15.
def case_resethand(c):
    prog = c.prog("host_signals")
    want = "term\nafter one SIG_DFL 1\n"
    expect_eq(untraced([prog, "resethand"], status=-15), want, "untraced output")
    p = c.run([prog, "resethand"], status=128 + 15)
    expect_eq(p.stdout, want, "the handler once, then SIG_DFL")
    check_kept(c, "signal", 15)


# SIGTERM ignored: kill -TERM changes nothing, the program goes on and
# exits 0; the trace ends at exit.
def case_ignore(c):
    cmd = [c.tm, "run", "-o", c.trace, "--", c.prog("host_signals"), "ignore"]
    p = subprocess.Popen(cmd, cwd=c.work, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([p.stdout], [], [], 120)
        expect(ready, "the program said it is ready")
        line = p.stdout.readline().split()
        expect(len(line) == 2 and line[0] == "ready", f"ready line: {line}")
        os.kill(int(line[1]), signal.SIGTERM)  # discarded when sent: it is ignored
        out, err = p.communicate("go\n", timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    expect_eq(p.returncode, 0, f"exit status after kill -TERM ({err.strip()})")
    expect_eq(out, "survived SIG_IGN\n", "the program's output")
    check_kept(c, "exit")


# Stack overflow: the tracer's handler runs on the thread's hidden
# alternate stack (or the program's own), the trace keeps all 5000 blocks
# and says signal 11, and the process dies of SIGSEGV as untraced.
def case_overflow(c, mode):
    prog = c.prog("host_signals")
    want = untraced([prog, mode], status=-11)
    p = c.run([prog, mode], status=128 + 11)
    expect_eq(p.stdout, want, "the program's output, traced vs untraced")
    check_kept(c, "signal", 11)


# 300 threads one after another: each gets a hidden stack when it first
# records (the kernel has one, the program sees none), and hands it on when
# it exits: the process maps no more after 300 threads than after 10.
def case_threads(c):
    p = c.run([c.prog("host_signals"), "threads"])
    expect_eq(p.stdout.splitlines(), ["thread altstack flags=2 sp=null size=0",
                                      "thread kernel altstack flags=0 size=65536",
                                      "maps grew 0"], "the program's output")
    s = summary(c)
    expect_eq(s["threads"], 301, "threads in the trace")
    expect(s["alloc_calls"] >= 300, f"every thread's allocation: {s['alloc_calls']}")


CASES = {
    "view": case_view,
    "python_roundtrip": case_python_roundtrip,
    "python_getsignal": case_python_getsignal,
    "handler": case_handler,
    "resethand": case_resethand,
    "ignore": case_ignore,
    "overflow": lambda c: case_overflow(c, "overflow"),
    "overflow_thread": lambda c: case_overflow(c, "overflow_thread"),
    "overflow_own": lambda c: case_overflow(c, "overflow_own"),
    "overflow_own_off": lambda c: case_overflow(c, "overflow_own_off"),
    "threads": case_threads,
}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("case", choices=sorted(CASES))
    ap.add_argument("--tidemark", required=True)
    ap.add_argument("--progs", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    c = Case(args, "signals_" + args.case)
    try:
        CASES[args.case](c)
    except AssertionError as e:
        print(f"FAIL {args.case}: {e}", file=sys.stderr)
        return 1
    print(f"ok {args.case}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
