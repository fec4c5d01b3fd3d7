#!/usr/bin/python3
"""RSS sampled at the start and at the end of the trace, not only every
10 ms (issue 24 item 12): a run shorter than one interval still has its
RSS peak and its thread in `summary`; --rss-interval 0 stays off.

    rss_ends.py CASE --tidemark BIN --progs DIR --work DIR
"""
import sys

from cases import run_cases, expect, expect_eq


# /bin/true allocates nothing and ends within a millisecond.
def case_short(c):
    c.run(["/bin/true"])
    s = c.report("summary")
    expect_eq(s["alloc_calls"], 0, "alloc_calls")
    expect_eq(s["threads"], 1, "threads")
    expect(s["rss_peak_bytes"] > 0, f"rss_peak_bytes {s['rss_peak_bytes']}")


def case_off(c):
    c.run(["/bin/true"], extra=("--rss-interval", "0"))
    s = c.report("summary")
    expect_eq(s["rss_peak_bytes"], 0, "rss_peak_bytes with sampling off")


# The end sample comes after the program's last allocation: a program that
# touches 64 MiB just before it _exits (nothing freed) has it in its RSS
# peak, with one sample a minute otherwise.
def case_end(c):
    prog = "import os; b = bytearray(64 << 20); b[::4096] = b'x' * 16384; os._exit(0)"
    c.run([sys.executable, "-c", prog], extra=("--rss-interval", "100000"))
    s = c.report("summary")
    expect(s["rss_peak_bytes"] >= 64 << 20, f"rss_peak_bytes {s['rss_peak_bytes']}")


CASES = {n[5:]: f for n, f in globals().items() if n.startswith("case_")}

if __name__ == "__main__":
    sys.exit(run_cases(__doc__, CASES, "rss_ends_"))
