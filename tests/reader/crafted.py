#!/usr/bin/python3
"""Hand-built traces the reader must survive: a FIFO given as TRACE, a
MODULE record naming a FIFO, ids the file cannot justify (under an address
space limit), and peak over damage before and after the heap peak.

    crafted.py TIDEMARK WORKDIR
"""
import os
import resource
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracegen import Records, block, header  # noqa: E402

TM, WORK = sys.argv[1], sys.argv[2]
TIMEOUT = 60        # generous: the machine may be loaded; a hang is far longer
failures = []


def write(name, data):
    path = os.path.join(WORK, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def run(*args, limit_as=None):
    def limit():
        if limit_as:
            resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))
    try:
        return subprocess.run([TM, *args], capture_output=True, text=True, timeout=TIMEOUT,
                              preexec_fn=limit if limit_as else None)
    except subprocess.TimeoutExpired:
        return None


def expect(name, p, status, line=None):
    """Exit `status`; for 2, exactly one stderr line, containing `line`."""
    if p is None:
        failures.append(f"{name}: no answer within {TIMEOUT} s (hang)")
        return
    lines = [x for x in p.stderr.splitlines() if x.strip()]
    problems = []
    if p.returncode != status:
        problems.append(f"exit {p.returncode}, expected {status}")
    if status == 2 and len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines")
    if line and not any(line in x for x in lines):
        problems.append(f"stderr lacks {line!r}")
    if problems:
        failures.append(f"{name}: {'; '.join(problems)}: {lines}")


shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)

# A small well-formed trace: the partner for diff and sweep.
good = Records().thread(7).string(1, "work").alloc(0x1000, 100, 10).end()
good_path = write("good.trace", header() + block(0, good.b))


def every_report(trace, out_dir):
    """Each report's command line over `trace`."""
    return {
        "summary": ["summary", trace],
        "leaks": ["leaks", trace],
        "peak": ["peak", trace],
        "top": ["top", trace],
        "regions": ["regions", trace],
        "diff": ["diff", good_path, trace],
        "diff-new": ["diff", trace, good_path],
        "timeline": ["timeline", trace, "-o", os.path.join(out_dir, "t.svg")],
        "sweep": ["sweep", trace, good_path, good_path, "-o", out_dir],
    }


# --- 13: a FIFO as TRACE is exit 2 at once, for every report ----------------
fifo = os.path.join(WORK, "trace.fifo")
os.mkfifo(fifo)
for name, args in every_report(fifo, os.path.join(WORK, "fifo-out")).items():
    for extra in ([], ["--json"]):
        expect(f"FIFO as TRACE: {name} {' '.join(extra)}", run(*args, *extra), 2,
               "not a regular file (a FIFO)")
expect("character device as TRACE", run("summary", "/dev/null"), 2,
       "not a regular file (a device)")

# --- 13: a MODULE path naming a FIFO is never opened for symbols -------------
rec = (Records().module(fifo).thread(7).node(1, 0, 0x401000)
       .alloc(0x1000, 48, 10, stack=1).end())
mod_fifo = write("module_fifo.trace", header() + block(0, rec.b))
for report in ("leaks", "peak", "top"):
    p = run(report, "--json", mod_fifo)
    expect(f"MODULE naming a FIFO: {report}", p, 0)
    if p and '"address": "0x401000"' not in p.stdout:
        failures.append(f"MODULE naming a FIFO: {report}: frame 0x401000 missing: {p.stdout}")
    if p and "is not a regular file" not in p.stderr:
        failures.append(f"MODULE naming a FIFO: {report}: no warning: {p.stderr}")

# --- 14: ids the file cannot justify: exit 2 with the line, bounded memory ---
# Far-ahead ids are kept sparse while reading; at the end, a highest id the
# definitions cannot account for is a damaged trace.
LIMIT = 512 << 20
for kind, make in (
        ("string", lambda r, i: r.string(i, "x")),
        ("stack node", lambda r, i: r.node(i, 0, 0x401000 + i))):
    rec = Records().thread(7)
    for i in (1 << 20, 9_000_000, 68_000_000, (1 << 28) - 1):
        make(rec, i)
    rec.alloc(0x1000, 100, 10).end()
    data = header() + block(0, rec.b)
    path = write(f"ids_{kind.replace(' ', '_')}.trace", data)
    for report in ("summary", "leaks", "peak", "top", "regions"):
        expect(f"{kind} ids ({len(data)} bytes): {report}", run(report, path, limit_as=LIMIT),
               2, f"{kind} id 268435455 is beyond the definitions the trace holds (4 of them)")
rec = Records().thread(7).node(1 << 28, 0, 0x401000).alloc(0x1000, 100, 10).end()
expect("stack node id 2^28", run("summary", write("id_2_28.trace", header() + block(0, rec.b)),
                                 limit_as=LIMIT),
       2, "stack node id 268435456 in block 0 is out of range (ids are below 2^28)")
# Dense ids in any order are all kept: a fork child's trace repeats its
# stack table in hash order, so the highest id may come first.
N = 270_000                 # more than the 2^18 an id may run ahead
blocks, per = [], 90_000
for b in range(N // per):
    rec = Records().thread(7)
    for i in range(N - b * per, N - (b + 1) * per, -1):
        rec.node(i, 0, 0x400000 + i)
    blocks.append(block(b, rec.b))
rec = Records().thread(7).alloc(0x1000, 100, 10, stack=N).alloc(0x2000, 50, 20, stack=1).end()
blocks.append(block(len(blocks), rec.b))
p = run("peak", "--json", write("reverse.trace", header() + b"".join(blocks)), limit_as=LIMIT)
expect(f"{N} stack nodes, highest id first", p, 0)
if p and (f'"address": "{hex(0x400000 + N)}"' not in p.stdout
          or '"address": "0x400001"' not in p.stdout):
    failures.append(f"{N} stack nodes, highest id first: frames missing: {p.stdout[:600]}")

# --- 15: peak over damage after and before the peak --------------------------
def peak_trace(damage_first):
    """Block 0 reaches the peak (300 B), block 1 frees it; the damaged block
    (a checksum that does not match) comes before or after the peak."""
    b0 = Records().thread(7).alloc(0x1000, 100, 10).alloc(0x2000, 200, 20)
    b1 = Records().thread(7).free(0x1000, 30).free(0x2000, 40).end()
    blocks = [block(0, b0.b), block(1, b1.b)]
    bad = bytearray(blocks[1 if not damage_first else 0])
    bad[-3] ^= 0xFF
    blocks[1 if not damage_first else 0] = bytes(bad)
    return header() + b"".join(blocks)


for where, damage_first in (("after", False), ("before", True)):
    path = write(f"peak_damage_{where}.trace", peak_trace(damage_first))
    for extra in ([], ["--json"]):
        expect(f"peak, damage {where} the peak {' '.join(extra)}", run("peak", *extra, path), 2,
               "checksum mismatch in block")
cut = peak_trace(False)
path = write("peak_cut.trace", cut[:-5])
expect("peak, trace cut after the peak", run("peak", path), 2, "trace ends inside block 1")

if failures:
    print("\n".join(failures), file=sys.stderr)
    sys.exit(1)
print("ok: crafted traces handled")
