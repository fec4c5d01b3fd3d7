#!/usr/bin/python3
"""Anonymous memory maps as their own domain (issue 23 item 3): exact
figures from tests/tracer/progs/maps.c (its numbers are explained at its
top) in summary and timeline, with and without stacks, from threads, and
pymalloc's arenas seen as maps in a Python process.

    maps.py CASE --tidemark BIN --progs DIR --work DIR
"""
import os
import subprocess
import sys

from cases import run_cases, expect, expect_eq

# maps.c, one thread: mapped at the end, peak, ranges, mmap/munmap/mremap.
WANT = {"maps_bytes": 53248, "maps_peak_bytes": 94208, "maps_count": 3,
        "mmap_calls": 4, "munmap_calls": 3, "mremap_calls": 2}


def maps_of(summary):
    return {k: summary[k] for k in WANT}


def check_exact(c, extra=()):
    c.run([c.prog("maps")], extra=extra)
    s = c.report("summary")
    expect_eq(maps_of(s), WANT, "summary maps figures")
    # The 1 MiB malloc glibc maps itself is a heap block, not a map.
    expect_eq(s["peak_bytes"] >= 1048576, True, "1 MiB malloc in the heap peak")
    expect(0 < s["maps_peak_time"] <= s["duration"], f"maps_peak_time {s['maps_peak_time']}")
    p = subprocess.run([c.tm, "summary", c.trace], capture_output=True, text=True, timeout=60)
    expect_eq(p.returncode, 0, "summary exit")
    line = [l for l in p.stdout.splitlines() if l.startswith("anonymous maps")]
    expect_eq(line, ["anonymous maps   52.0 KiB mapped at the end in 3 ranges, peak 92.0 KiB "
                     "at %.3f s (4 mmap, 3 munmap, 2 mremap)" % s["maps_peak_time"]],
              "summary text")
    return s


def case_exact(c):
    check_exact(c)


def case_exact_nostacks(c):
    check_exact(c, extra=("--stacks", "none"))


# Four threads mapping and unmapping at once: the lock held across each
# call keeps the records in the kernel's order, so nothing is left over.
def case_threads(c):
    c.run([c.prog("maps"), "threads"])
    s = c.report("summary")
    want = dict(WANT, mmap_calls=804, munmap_calls=803)
    expect_eq(maps_of(s), want, "summary maps figures with threads")
    expect_eq(s["threads"], 5, "threads")


# An allocator loaded after the tracer maps its chunks inside the
# allocation hooks: those maps are its heap blocks' and pass through, so
# the figures are the program's own.  (Its munmaps from a free may be
# recorded, after the free hook left: they change nothing, the reader knew
# no anonymous memory there.)
def case_allocator_after(c):
    lib = "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"
    if not os.path.exists(lib):
        print(f"maps.allocator_after: skipped, no {lib}")
        return
    env = dict(os.environ, LD_PRELOAD=lib)
    p = subprocess.run([c.tm, "run", "-o", c.trace, "--", c.prog("maps")], cwd=c.work,
                       env=env, capture_output=True, text=True, timeout=120)
    expect_eq(p.returncode, 0, f"run under {lib}: {p.stderr}")
    s = c.report("summary")
    got = maps_of(s)
    expect(got.pop("munmap_calls") >= WANT["munmap_calls"], f"munmap_calls {s['munmap_calls']}")
    want = dict(WANT)
    del want["munmap_calls"]
    expect_eq(got, want, f"maps figures with {lib} after the tracer")
    expect(s["alloc_calls"] >= 1, "allocations recorded through the allocator")


# A trace without maps says so, and its JSON has zeros.
def case_none(c):
    c.run([c.prog("exact")])
    s = c.report("summary")
    expect_eq(maps_of(s), dict.fromkeys(WANT, 0), "no maps")
    p = subprocess.run([c.tm, "summary", c.trace], capture_output=True, text=True, timeout=60)
    expect("anonymous maps   none recorded" in p.stdout, p.stdout)


def case_timeline(c):
    c.run([c.prog("maps")])
    png = os.path.join(c.work, "t.png")
    keep = os.path.join(c.work, "keep")
    t = c.report("timeline", "-o", png, "--keep", keep)
    expect(os.path.getsize(png) > 0, "timeline png")
    expect_eq(t["maps_peak_bytes"], 94208, "timeline maps_peak_bytes")
    expect(t["maps_points"] >= 1, f"maps_points {t['maps_points']}")
    # The curve: mapped bytes (MiB), each point the maximum of its interval.
    with open(os.path.join(keep, "maps.dat")) as f:
        values = [float(l.split()[1]) for l in f if l.strip()]
    expect_eq(round(max(values) * 1048576), 94208, "maps.dat peak")
    with open(os.path.join(keep, "plot.gp")) as f:
        expect('title "anonymous maps"' in f.read(), "maps line in the plot")


# pymalloc's arenas come from mmap: maps in a Python process, beside the
# heap; 64 MiB of small objects need at least 64 arenas of 1 MiB (3.10+)
# or 256 KiB, all freed before the end.
def case_python_arenas(c):
    prog = ("import sys\n"
            "x = [(i, str(i)) for i in range(300000)]\n"
            "del x\n")
    c.run([sys.executable, "-c", prog])
    s = c.report("summary")
    if s.get("python_allocator") == "malloc":
        print("maps.python_arenas: skipped, PYTHONMALLOC=malloc (no pymalloc arenas)")
        return
    expect(s["mmap_calls"] >= 20, f"arenas mapped: {s['mmap_calls']}")
    expect(s["maps_peak_bytes"] >= 16 << 20, f"maps peak {s['maps_peak_bytes']}")
    expect(s["maps_bytes"] < s["maps_peak_bytes"], "arenas given back")


CASES = {n[5:]: f for n, f in globals().items() if n.startswith("case_")}

if __name__ == "__main__":
    sys.exit(run_cases(__doc__, CASES, "maps_"))
