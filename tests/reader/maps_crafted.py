#!/usr/bin/python3
"""The reader's model of anonymous maps (tm_maps) on hand-built traces:
cases a test program cannot reach on purpose (an munmap over several
ranges, mremap of memory the trace never saw mapped, MREMAP_DONTUNMAP, an
old length of 0, a length past the top of the address space), with exact
summary figures; then the MMAP/MUNMAP/MREMAP records fuzzed (every
truncation point, checksum-correct mutations) through every report.

    maps_crafted.py TIDEMARK FUZZ_REPORTS WORKDIR
"""
import json
import os
import random
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracegen import Records, block, header, run_fuzz_reports, s, u  # noqa: E402

TM, DRIVER, WORK = sys.argv[1:4]
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(WORK)
MMAP, MUNMAP, MREMAP = 0x74, 0x75, 0x76
failures = []


class MapRecords(Records):
    def mmap(self, addr, length, at_ns, stack=0):
        self.b.append(MMAP)
        self.b += self.ad(addr) + u(length) + self.ts(at_ns) + u(stack)
        return self

    def munmap(self, addr, length, at_ns):
        self.b.append(MUNMAP)
        self.b += self.ad(addr) + u(length) + self.ts(at_ns)
        return self

    def mremap(self, old, old_len, new, new_len, at_ns, flags=0, stack=0):
        self.b.append(MREMAP)
        self.b += self.ad(old) + u(old_len)
        self.b += s(new - old) + u(new_len) + u(flags) + self.ts(at_ns) + u(stack)
        self.addr = new
        return self


def trace(unmap_all):
    r = MapRecords().thread(7)
    r.mmap(0x10000, 0x4000, 10)                 # A: 4 pages              16384
    r.mmap(0x20000, 0x3000, 20)                 # B: 3 pages              28672
    r.munmap(0x11000, 0x1000, 30)               # a hole in A             24576
    r.munmap(0x10000, 0x11000, 40)              # A's parts and B's first page: 8192
    r.mremap(0x50000, 0x1000, 0x60000, 0x2000, 50)   # never seen mapped: nothing
    r.mremap(0x21000, 0x2000, 0x70000, 0x5000, 60)   # B's rest moves, grows: 20480
    r.mremap(0x70000, 0x5000, 0x80000, 0x5000, 70, flags=1)  # DONTUNMAP:    40960
    r.mmap(0x80000, 0x1000, 80)                 # MAP_FIXED over it: replaced, 40960
    r.mremap(0x70000, 0, 0x90000, 0x1000, 90)   # old length 0: a duplicate  45056
    r.mmap(0xA0000, 1, 100)                     # one byte is one page       49152 peak
    r.munmap(0x300000, 0x1000, 105)             # nothing there
    if unmap_all:
        r.munmap(0x1000, (1 << 64) - 0x2000, 110)  # to the top: everything     0
    r.end()
    return header() + block(0, r.b)


def summary(path):
    p = subprocess.run([TM, "summary", "--json", path], capture_output=True, text=True,
                       timeout=60)
    if p.returncode != 0:
        failures.append(f"{path}: summary exit {p.returncode}: {p.stderr}")
        return {}
    return json.loads(p.stdout)


KEYS = ("maps_bytes", "maps_peak_bytes", "maps_peak_time", "maps_count", "mmap_calls",
        "munmap_calls", "mremap_calls")
for unmap_all, want in ((False, (49152, 49152, 100e-9, 5, 4, 3, 4)),
                        (True, (0, 49152, 100e-9, 0, 4, 4, 4))):
    path = os.path.join(WORK, f"maps{int(unmap_all)}.trace")
    with open(path, "wb") as f:
        f.write(trace(unmap_all))
    got = summary(path)
    got = tuple(got.get(k) for k in KEYS)
    if got != want:
        failures.append(f"{os.path.basename(path)}: {dict(zip(KEYS, got))}, expected "
                        f"{dict(zip(KEYS, want))}")

# Fuzz: every truncation point and checksum-correct mutations of the records.
data = trace(True)
payload = bytearray(data[64 + 24:])
cases = []
rng = random.Random(23)


def add(name, content):
    path = os.path.join(WORK, f"case{len(cases):04d}-{name}.trace")
    with open(path, "wb") as f:
        f.write(content)
    cases.append(path)


for cut in range(len(data) + 1):
    add(f"cut{cut}", data[:cut])
for i in range(400):
    b = bytearray(payload)
    for _ in range(rng.randrange(1, 5)):
        pos = rng.randrange(len(b))
        what = rng.randrange(3)
        if what == 0:
            b[pos] = rng.randrange(256)
        elif what == 1:
            b[pos] |= 0x80
        else:
            del b[pos: pos + rng.randrange(1, 6)]
    add(f"crc{i}", header() + block(0, b))
p = run_fuzz_reports(DRIVER, WORK, cases, timeout=300)
if p.returncode != 0:
    tail = [ln for ln in p.stderr.replace("\r", "\n").splitlines() if ln.strip()][-10:]
    failures.append(f"fuzz_reports exit {p.returncode}:\n" + "\n".join(tail))

if failures:
    sys.exit("\n".join(failures))
print(f"maps_crafted: exact figures, {len(cases)} fuzzed cases: ok")
