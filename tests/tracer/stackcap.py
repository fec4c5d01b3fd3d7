#!/usr/bin/python3
"""Bounded stack memory in the traced process (issue 32): the HWM record and
the stack table cap (tracer.stackcap.*).

    stackcap.py CASE --tidemark BIN --progs DIR --work DIR
"""
import sys

from cases import expect, expect_eq, run_cases

MIB = 1 << 20


def case_hwm(c):
    # RSS sampling off: without the HWM record there is no RSS figure at
    # all; with it, the 64 MiB touched and freed at once are in the peak.
    c.run([c.prog("hwm_peak")], extra=["--rss-interval", "0"])
    s = c.report("summary")
    expect(64 * MIB <= s["rss_peak_bytes"] < 128 * MIB,
           f"rss_peak_bytes {s['rss_peak_bytes']}: VmHWM holds the 64 MiB peak")
    expect_eq((s["alloc_calls"], s["free_calls"]), (1, 1), "calls")


CASES = {name[5:]: f for name, f in globals().items() if name.startswith("case_")}


if __name__ == "__main__":
    sys.exit(run_cases(__doc__, CASES, "stackcap_"))
