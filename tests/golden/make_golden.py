#!/usr/bin/python3
"""Writes the golden trace tests/golden/small.trace, byte by byte from
docs/trace-format.md (so it also checks that the document and the reader
agree).  Its stack nodes point into no module, so reports are the same on
every machine.

    /usr/bin/python3 tests/golden/make_golden.py tests/golden/small.trace

Content (times in ns, TICKS_ARE_NS):
  thread 100: region "cb" x3, each malloc(64) kept + malloc(16) freed;
              the second invocation frees the first one's 64 (escape);
  thread 200: malloc(1000) at stack 3, freed by thread 100 (cross-thread);
  realloc chain on thread 100: malloc(10) -> realloc fails (restored), leaks;
  mark "resolution=101", RSS samples 1 MiB and 3 MiB, END(exit).
"""
import struct
import sys


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def u(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def s(v):
    return u(((v << 1) ^ (v >> 63)) & ((1 << 64) - 1))


class Block:
    def __init__(self, clock_ns):
        self.b = bytearray(b"\x71" + u(clock_ns) + u(clock_ns))
        self.addr = 0
        self.ts = START

    def t(self, at):
        d = at - self.ts
        self.ts = at
        return u(d)

    def a(self, addr):
        d = addr - self.addr
        self.addr = addr
        return s(d)

    def op(self, *parts):
        for p in parts:
            self.b += p


START = 1_000_000
out = sys.argv[1]
f = open(out, "wb")
f.write(b"TIDEMARK" + struct.pack("<HHIIIQQQIIII", 1, 64, 0x5, 4242, 1, START, START,
                                  1_700_000_000_000_000_000, 64, 10, 4096, 0))

b1 = Block(START + 5_000)
for i, name in enumerate([b"cb", b"resolution=101"], 1):
    b1.op(b"\x50", u(i), u(len(name)), name)
# stacks: 1 = [0x1000], 2 = [0x2000 <- 0x1000], 3 = [0x3000]
b1.op(b"\x51", u(1), u(0), u(0x1000))
b1.op(b"\x51", u(2), u(1), u(0x2000))
b1.op(b"\x51", u(3), u(0), u(0x3000))
b1.op(b"\x30", u(100))
b1.op(b"\x42", u(2), b1.t(START + 10))                       # mark
b1.op(b"\x70", u(1 << 20), b1.t(START + 20))                 # RSS 1 MiB
t = START + 100
for inv in (1, 2, 3):
    b1.op(b"\x40", u(1), u(inv), b1.t(t))                    # region cb #inv
    if inv == 2:
        b1.op(b"\x20", b1.a(0x10000), b1.t(t + 1))           # free #1's 64
    b1.op(b"\x10", u(64), b1.a(0x10000 * inv), b1.t(t + 2), u(2))
    b1.op(b"\x10", u(16), b1.a(0x50000 + inv), b1.t(t + 3), u(1))
    b1.op(b"\x20", b1.a(0x50000 + inv), b1.t(t + 4))
    b1.op(b"\x41", b1.t(t + 5))
    t += 100
b1.op(b"\x30", u(200))
b1.op(b"\x10", u(1000), b1.a(0x90000), b1.t(t + 10), u(3))
f.write(struct.pack("<IHHIIII", 0x4B4C4254, 1, 0, 0, len(b1.b), len(b1.b), crc32c(b1.b)))
f.write(b1.b)

b2 = Block(START + 9_000)
b2.op(b"\x30", u(100))
b2.op(b"\x20", b2.a(0x90000), b2.t(t + 20))                  # cross-thread free
b2.op(b"\x10", u(10), b2.a(0xA0000), b2.t(t + 30), u(1))
b2.op(b"\x21", b2.a(0xA0000), b2.t(t + 31))                  # realloc releases...
b2.op(b"\x22", b2.a(0xA0000), b2.t(t + 32))                  # ...and fails
b2.op(b"\x70", u(3 << 20), b2.t(t + 40))                     # RSS 3 MiB
b2.op(b"\x7f", u(0))
f.write(struct.pack("<IHHIIII", 0x4B4C4254, 1, 0, 1, len(b2.b), len(b2.b), crc32c(b2.b)))
f.write(b2.b)
f.close()
