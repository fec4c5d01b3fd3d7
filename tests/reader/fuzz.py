#!/usr/bin/python3
"""Fuzzes the reader through every report: a small real trace cut at every
byte, random byte mutations (checksums then mostly fail: the skip and
resync paths) and checksum-correct mutations (the payload decompressed,
changed, stored as a raw block with its CRC-32C recomputed: the decoder
and the tables see the damage).  fuzz_reports runs all reports in one
process over each case; any exit but 0 or 2, a crash or a hang fails.

    fuzz.py TIDEMARK FUZZ_REPORTS WORKDIR
"""
import os
import random
import shutil
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tracegen import block, parse_blocks, run_fuzz_reports  # noqa: E402

TM, DRIVER, WORK = sys.argv[1:4]
CASES = os.path.join(WORK, "cases")
shutil.rmtree(WORK, ignore_errors=True)
os.makedirs(CASES)
os.makedirs(os.path.join(WORK, "out"))

# The real trace: a tiny program, so every truncation point is affordable.
real = os.path.join(WORK, "real.trace")
p = subprocess.run([TM, "run", "-o", real, "--", "/bin/echo", "fuzz"], capture_output=True,
                   text=True, timeout=120)
if p.returncode != 0:
    sys.exit(f"tidemark run failed: {p.stderr}")
data = open(real, "rb").read()
blocks = parse_blocks(data)
if not blocks:
    sys.exit("the real trace has no blocks")


def raw_payload(h, payload):
    if h[2] == 0:
        return payload
    out = subprocess.run(["zstd", "-d", "-c", "-q"], input=payload, capture_output=True,
                         timeout=60)
    if out.returncode != 0:
        sys.exit(f"zstd cannot decompress block {h[3]}: {out.stderr}")
    return out.stdout


# Raw copies of the blocks, module paths made unreadable so the mutated
# cases spend their time in the reader, not in libdw over libc's DWARF.
raws = [bytearray(raw_payload(h, pl).replace(b".so", b".xx").replace(b"/bin/echo", b"/bin/ech0"))
        for _, h, pl in blocks]
base = data[:64]

cases = []


def add(name, content):
    path = os.path.join(CASES, f"{len(cases):05d}-{name}.trace")
    with open(path, "wb") as f:
        f.write(content)
    cases.append(path)


# Every truncation point of the real trace.
for cut in range(len(data) + 1):
    add(f"cut{cut}", data[:cut])

rng = random.Random(2024)
# Random mutations of the stored bytes (header included).
for i in range(300):
    b = bytearray(data)
    for _ in range(rng.randrange(1, 8)):
        b[rng.randrange(len(b))] = rng.randrange(256)
    add(f"rand{i}", bytes(b))


def mutate(raw):
    b = bytearray(raw)
    for _ in range(rng.randrange(1, 6)):
        what = rng.randrange(4)
        pos = rng.randrange(len(b))
        if what == 0:
            b[pos] = rng.randrange(256)                   # any byte
        elif what == 1:
            b[pos] |= 0x80                                # a varint runs on
        elif what == 2:
            del b[pos: pos + rng.randrange(1, 16)]        # records cut out
        else:
            b[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
    return bytes(b)


# Checksum-correct mutations: valid blocks carrying damaged records.
for i in range(500):
    k = rng.randrange(len(raws))
    out = bytearray(base)
    for j, raw in enumerate(raws):
        out += block(blocks[j][1][3], mutate(raw) if j == k else raw)
    add(f"crc{i}", bytes(out))
# Blocks out of order, repeated and missing, each checksum-correct.
for i in range(50):
    order = [rng.randrange(len(raws)) for _ in range(rng.randrange(1, 2 * len(raws) + 2))]
    out = bytearray(base)
    for j in order:
        out += block(rng.choice([blocks[j][1][3], rng.randrange(8)]), raws[j])
    add(f"order{i}", bytes(out))

p = run_fuzz_reports(DRIVER, WORK, cases, timeout=600)
print(p.stderr.splitlines()[-1] if p.stderr.strip() else "", f"({len(data)}-byte trace)")
if p.returncode != 0:
    tail = [ln for ln in p.stderr.replace("\r", "\n").splitlines() if ln.strip()][-20:]
    sys.exit(f"fuzz_reports exit {p.returncode} (negative: killed by that signal):\n" +
             "\n".join(tail))
