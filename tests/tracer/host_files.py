#!/usr/bin/python3
"""The program's files beside the trace's, write failures and messages.

    host_files.py CASE --tidemark BIN --progs DIR --work DIR --preload LIB

Same conventions as cases.py: each case runs a real program
(progs/host_files.c) under `tidemark run` or the preload and checks exact
file contents, exit status, messages and trace contents.
"""
import os
import re
import resource
import subprocess
import sys

from cases import run_cases, expect, expect_eq, functions

KEEP = (300, 300000)  # keep_blocks: blocks, bytes


def tracer_lines(stderr):
    return [l for l in stderr.splitlines() if l.startswith("tidemark: ")]


def check_kept(c, trace=None):
    leaks = c.report("leaks", trace=trace)
    mine = [(g["blocks"], g["bytes"]) for g in leaks["groups"]
            if functions(g)[:1] == ["keep_blocks"]]
    expect_eq(mine, [KEEP], "blocks from keep_blocks")
    s = c.report("summary", trace=trace)
    expect_eq(s["end"], "exit", "the trace's end")
    # churn(300000): as many frees as allocations, but the kept ones
    expect_eq(s["alloc_calls"] - s["free_calls"], KEEP[0], "allocations not freed")
    expect(s["alloc_calls"] >= 300000 + KEEP[0], f"every allocation: {s['alloc_calls']}")


def preload_run(c, argv, env, status=0):
    e = dict(os.environ)
    e.pop("TIDEMARK_OUTPUT", None)
    e.update(env)
    e["LD_PRELOAD"] = c.opts.preload
    p = subprocess.run(argv, cwd=c.work, capture_output=True, text=True, timeout=120, env=e)
    expect_eq(p.returncode, status, f"{argv} with {env}: exit ({p.stderr.strip()})")
    return p


# dup2 onto the trace's descriptor: the program's file holds exactly what
# it wrote, the trace goes on (reopened by its path) with everything in it,
# and one line says so.
def case_dup2(c):
    mine = os.path.join(c.work, "mine.txt")
    p = c.run([c.prog("host_files"), "dup2", mine, c.trace])
    expect_eq(p.stdout, "done\n", "the program's output")
    with open(mine, "rb") as f:
        expect_eq(f.read(), b"MINE\n", "the program's file")
    lines = tracer_lines(p.stderr)
    expect_eq(len(lines), 2, f"two lines (the tracer's, where the trace went): {lines}")
    expect(re.fullmatch(r"tidemark: the program closed or took over the trace's descriptor "
                        r"(\d+); the trace goes on in " + re.escape(c.trace) +
                        r" \(descriptor (\d+)\)", lines[0]), f"the tracer's line: {lines[0]}")
    check_kept(c)


# close_range(3, ~0U, 0), then 950 opens (reaching past the tracer's old
# numbers): every file holds exactly its two lines, the trace is whole,
# one line says the tracer reopened its file.
def case_close_range(c):
    n = 950
    p = c.run([c.prog("host_files"), "close_range", str(n)])
    expect_eq(p.stdout, "done\n", "the program's output")
    for i in range(n):
        with open(os.path.join(c.work, f"f{i}"), "rb") as f:
            got = f.read()
        if got != f"file {i}\nmore {i}\n".encode():
            raise AssertionError(f"f{i} holds {got[:80]!r}... ({len(got)} bytes)")
    lines = tracer_lines(p.stderr)
    expect_eq(len(lines), 2, f"two lines: {lines}")
    expect(lines[0].startswith("tidemark: the program closed or took over the trace's descriptor ")
           and f"the trace goes on in {c.trace} (descriptor " in lines[0],
           f"the tracer's line: {lines[0]}")
    check_kept(c)


def mount_small(c, size):
    mnt = os.path.join(c.work, "mnt")
    os.makedirs(mnt)
    if os.geteuid() != 0:
        return None
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", mnt],
                       capture_output=True, text=True)
    return mnt if r.returncode == 0 else None


def umount(mnt):
    subprocess.run(["umount", mnt], capture_output=True)


def check_write_failed(c, p, trace, reason):
    expect_eq(p.stdout, "done\n", "the program ran on to its end")
    lines = tracer_lines(p.stderr)
    want = f"tidemark: writing the trace {trace} failed: {reason}; the trace ends here"
    expect_eq(lines, [want, f"tidemark: trace written to {trace}"], "the tracer's lines")
    r = subprocess.run([c.tm, "summary", trace], capture_output=True, text=True, timeout=120)
    expect_eq(r.returncode, 2, "summary of a trace whose writing failed")
    expect_eq(r.stderr.splitlines(),
              [f"tidemark: {trace}: writing the trace failed: {reason}; "
               "the report covers what was written"], "the reader's line")
    s = c.report("summary", status=2, trace=trace)
    expect_eq((s["end"], s["write_error"]), ("write_failed", reason), "END")
    expect(s["alloc_calls"] > 0, f"blocks before the failure are read: {s['alloc_calls']}")


# A tmpfs that fills up mid-run (1 MiB; the trace needs about 20): one
# line naming the cause when it happens, the program runs on and exits 0,
# the reader says "writing the trace failed: No space left on device".
# Without mount (not root): RLIMIT_FSIZE, "File too large".
def case_disk_full(c):
    mnt = mount_small(c, "1m")
    try:
        if mnt:
            trace = os.path.join(mnt, "t.trace")
            p = c.run([c.prog("host_files"), "fill"], output=trace)
            check_write_failed(c, p, trace, "No space left on device")
        else:
            print("not root or no mount: RLIMIT_FSIZE instead")
            case_fsize(c)
    finally:
        if mnt:
            umount(mnt)


def fsize_run(c, argv, trace, limit):
    def lim():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    cmd = [c.tm, "run", "-o", trace, "--", *argv]
    return subprocess.run(cmd, cwd=c.work, capture_output=True, text=True, timeout=120,
                          preexec_fn=lim)


# RLIMIT_FSIZE 1 MiB: the write past it fails with EFBIG (and raises
# SIGXFSZ, which must not kill the program): exit 0, "File too large".
def case_fsize(c):
    trace = os.path.join(c.work, "f.trace")
    p = fsize_run(c, [c.prog("host_files"), "fill"], trace, 1 << 20)
    expect_eq(p.returncode, 0, f"exit status under RLIMIT_FSIZE ({p.stderr.strip()})")
    check_write_failed(c, p, trace, "File too large")


# RLIMIT_FSIZE 0: not even the header can be written.  Untraced the
# program writes no file and exits 0; traced it did die of SIGXFSZ, without
# a word.  Now: one line, no file left, exit 0.
def case_fsize_zero(c):
    trace = os.path.join(c.work, "z.trace")
    p = fsize_run(c, [c.prog("host_files"), "plain"], trace, 0)
    expect_eq(p.returncode, 0, f"exit status under RLIMIT_FSIZE 0 ({p.stderr.strip()})")
    expect_eq(p.stdout, "done\n", "the program's output")
    expect_eq(tracer_lines(p.stderr),
              ["tidemark: cannot write the trace header: File too large; not tracing"],
              "the tracer's line")
    expect(not os.path.exists(trace), "no file without a trace in it")


# A disk already full at the start: one line naming the cause, not "out
# of memory?", no file left behind.
def case_disk_full_start(c):
    mnt = mount_small(c, "64k")
    if not mnt:
        print("skipped: not root or no mount")
        return
    try:
        fd = os.open(os.path.join(mnt, "fill"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            while os.write(fd, b"\0" * 4096) > 0:
                pass
        except OSError:
            pass
        os.close(fd)
        trace = os.path.join(mnt, "t.trace")
        p = c.run([c.prog("host_files"), "plain"], output=trace)
        expect_eq(p.stdout, "done\n", "the program's output")
        expect_eq(tracer_lines(p.stderr),
                  ["tidemark: cannot write the trace header: No space left on device; "
                   "not tracing"], "the tracer's lines")
        expect(not os.path.exists(trace), "no file without a trace in it")
    finally:
        umount(mnt)


# TIDEMARK_OUTPUT of 4096 characters or more: refused in one line, nothing
# written anywhere (not the working directory either), the program as
# untraced.
def case_output_too_long(c):
    for n in (4096, 5000):
        long = os.path.join(c.work, "d" * (n - len(c.work) - 1))
        expect_eq(len(long), n, "the path's length")
        p = preload_run(c, [c.prog("host_files"), "plain"], {"TIDEMARK_OUTPUT": long})
        expect_eq(p.stdout, "done\n", "the program's output")
        expect_eq(tracer_lines(p.stderr),
                  [f"tidemark: TIDEMARK_OUTPUT is too long ({n} characters, at most 4095): "
                   "not tracing"], f"{n} characters: the tracer's line")
        expect_eq(sorted(os.listdir(c.work)), [], f"{n} characters: files written")


# "cannot create trace" gives the reason.
def case_open_failed(c):
    cases = [(os.path.join(c.work, "no", "such", "t.trace"), "No such file or directory")]
    taken = os.path.join(c.work, "taken.trace")
    open(taken, "w").close()
    cases.append((taken, "File exists"))
    os.symlink(taken, os.path.join(c.work, "link.trace"))
    cases.append((os.path.join(c.work, "link.trace"), "File exists"))
    for path, why in cases:
        p = preload_run(c, [c.prog("host_files"), "plain"], {"TIDEMARK_OUTPUT": path})
        expect_eq(p.stdout, "done\n", "the program's output")
        expect_eq(tracer_lines(p.stderr),
                  [f"tidemark: cannot create trace {path}: {why}; not tracing"], "the line")


# tidemark run -o /nonexistent/x: one line, exit 2, the command not run.
def case_run_bad_output(c):
    marker = os.path.join(c.work, "ran")
    for out, want in [("/nonexistent/x", "/nonexistent: No such file or directory"),
                      (os.path.join(c.work, "file", "x"), "file: Not a directory")]:
        if "file" in out:
            open(os.path.join(c.work, "file"), "w").close()
        p = subprocess.run([c.tm, "run", "-o", out, "--", "/bin/sh", "-c", f": > {marker}"],
                           cwd=c.work, capture_output=True, text=True, timeout=120)
        expect_eq(p.returncode, 2, f"-o {out}: exit status")
        lines = p.stderr.splitlines()
        expect_eq(len(lines), 1, f"-o {out}: one line: {lines}")
        expect(lines[0].startswith(f"tidemark: cannot write the trace {out}: ") and
               lines[0].endswith(want), f"-o {out}: {lines[0]}")
        expect(not os.path.exists(marker), f"-o {out}: the command did not run")


# A failed exec (ENOEXEC) after the trace ended at it: the process goes on
# in a new trace, and tidemark run names it; with %p in the pattern too.
def case_exec_fail(c):
    nofmt = os.path.join(c.work, "nofmt")
    with open(nofmt, "wb") as f:
        f.write(b"\x01\x02\x03 no format")
    os.chmod(nofmt, 0o755)
    for pattern in ("e.trace", "e.%p.trace"):
        out = os.path.join(c.work, pattern)
        p = c.run([c.prog("host_files"), "exec_fail", nofmt], output=out)
        expect_eq(p.stdout, "done\n", "the program's output")
        lines = tracer_lines(p.stderr)
        expect_eq(len(lines), 2, f"{pattern}: two lines: {lines}")
        m = re.fullmatch(r"tidemark: trace written to (\S+)", lines[0])
        expect(m, f"{pattern}: {lines[0]}")
        first = m.group(1)
        m = re.fullmatch(r"tidemark: after a failed exec the trace went on in (\S+)", lines[1])
        expect(m, f"{pattern}: {lines[1]}")
        second = m.group(1)
        pid = c.report("summary", trace=first)["pid"]
        want = out + f".{pid}" if "%p" not in pattern else out.replace("%p", str(pid)) + ".2"
        expect_eq(second, want, f"{pattern}: the second trace's name")
        for trace, blocks, end in [(first, (3, 300), "exec"), (second, (2, 100), "exit")]:
            s = c.report("summary", trace=trace)
            expect_eq((s["leaked_blocks"], s["leaked_bytes"], s["end"]), (*blocks, end), trace)


CASES = {
    "dup2": case_dup2,
    "close_range": case_close_range,
    "disk_full": case_disk_full,
    "disk_full_start": case_disk_full_start,
    "fsize": case_fsize,
    "fsize_zero": case_fsize_zero,
    "output_too_long": case_output_too_long,
    "open_failed": case_open_failed,
    "run_bad_output": case_run_bad_output,
    "exec_fail": case_exec_fail,
}


if __name__ == "__main__":
    sys.exit(run_cases(__doc__, CASES, "file_", ("preload!",)))
