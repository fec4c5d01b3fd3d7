#!/usr/bin/python3
"""Report cases of issue 24 (built-in suppressions, site groups), on real
programs under the tracer; same CLI as cases.py:

    reports_more.py CASE --tidemark BIN --progs DIR --work DIR
"""
import subprocess
import sys

import cases
from cases import run_cases, expect, expect_eq


def leaks(c, *args):
    p = subprocess.run([c.tm, "leaks", "--json", *args, c.trace], capture_output=True,
                       text=True, timeout=120)
    import json
    return p.returncode, json.loads(p.stdout)


# A clean interpreter: its start-up memory is suppressed, not a leak.
def case_python_clean(c):
    c.run([sys.executable, "-c", "pass"])
    rc, d = leaks(c, "--fail-on-leak")
    expect_eq((rc, d["leaked_blocks"]), (0, 0), "python -c pass: exit, leaked blocks")
    expect(d["default_suppressions"] and d["suppressed_blocks"] > 0, f"suppressed: {d}")
    rc, d = leaks(c, "--fail-on-leak", "--no-default-suppressions")
    expect_eq(rc, 3, "without the built-in set the start-up memory is reported")
    expect_eq(d["suppressed_blocks"], 0, "nothing suppressed")


# The user's own leak (malloc through ctypes, at start-up) stays reported,
# exactly, and one malloc line is one site.
PLANTED = """
import ctypes
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
def keep():
    return [libc.malloc(1000001) for _ in range(3)]
kept = keep()
"""


def case_python_planted(c):
    c.run([sys.executable, "-c", PLANTED])
    rc, d = leaks(c, "--fail-on-leak")
    expect_eq(rc, 3, "planted leak: exit")
    big = [g for g in d["groups"] if g["bytes"] >= 3000003]
    expect_eq([(g["blocks"], g["bytes"]) for g in big], [(3, 3000003)], "the planted leak")


# A sweep of fewer than three distinct values is refused with one line.
def case_sweep_distinct(c):
    c.run([c.prog("exact")])
    for labels in (("--label", "5"), ("--label", "5", "--label", "5", "--label", "7")):
        n = len(labels) // 2
        p = subprocess.run([c.tm, "sweep", *([c.trace] * n), *labels, "-o", c.work + "/sw"],
                           capture_output=True, text=True, timeout=120)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        expect_eq((p.returncode, len(lines)), (2, 1), f"sweep {labels}: exit, stderr lines")
        expect("at least 3" in lines[0], f"the reason: {lines}")


CASES = {"sweep_distinct": case_sweep_distinct, "python_clean": case_python_clean, "python_planted": case_python_planted}


if __name__ == "__main__":
    sys.exit(run_cases(__doc__, CASES, "more_", ()))
