#!/usr/bin/python3
"""RSS sampled at the start and at the end of the trace, not only every
10 ms (issue 24 item 12): a run shorter than one interval still has its
RSS peak and its thread in `summary`; --rss-interval 0 stays off.

    rss_ends.py CASE --tidemark BIN --progs DIR --work DIR
"""
import argparse
import sys

from cases import Case, expect, expect_eq


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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    ap.add_argument("--tidemark", required=True)
    ap.add_argument("--progs", required=True)
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    fn = globals().get("case_" + args.case)
    if not fn:
        sys.exit(f"unknown case {args.case}")
    fn(Case(args, "rss_ends_" + args.case))
    print(f"rss_ends.{args.case}: ok")


if __name__ == "__main__":
    main()
