"""Builds traces byte by byte for the reader tests: a file header, records
blocks with a correct CRC-32C, and the record encodings of
docs/trace-format.md.  Crafted traces reach states a real program never
writes (huge ids, a MODULE naming a FIFO, damage placed before or after
the heap peak)."""
import os
import struct
import subprocess

BLOCK_MAGIC = 0x4B4C4254
OP = dict(ALLOC=0x10, FREE=0x20, THREAD=0x30, REGION_BEGIN=0x40, REGION_END=0x41,
          MARK=0x42, STRING=0x50, STACK_NODE=0x51, PY_FRAME=0x52, MAP_RESET=0x60,
          MODULE=0x61, RSS=0x70, CLOCK=0x71, LOST=0x72, END=0x7F)
TICKS_ARE_NS = 0x4
START = 1_000_000_000


def _crc_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def u(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def s(v):
    return u((v << 1) ^ (v >> 63) if v >= 0 else ((-v) << 1) - 1)


def header(version=2, flags=TICKS_ARE_NS, pid=4242):
    return b"TIDEMARK" + struct.pack("<HHIIIQQQIIII", version, 64, flags, pid, 1, START,
                                     START, 0, 32, 0, 4096, 0)


def block(seq, payload):
    """A raw (uncompressed) records block with its header and checksum."""
    payload = bytes(payload)
    return struct.pack("<IHHIIII", BLOCK_MAGIC, 1, 0, seq, len(payload), len(payload),
                       crc32c(payload)) + payload


def parse_blocks(data):
    """(offset, header tuple, payload) of each block of a trace, in file order."""
    out, pos = [], 64
    while pos + 24 <= len(data):
        h = struct.unpack_from("<IHHIIII", data, pos)
        if h[0] != BLOCK_MAGIC:
            break
        out.append((pos, h, data[pos + 24: pos + 24 + h[4]]))
        pos += 24 + h[4]
    return out


class Records:
    """Records of one block; timestamps and addresses are absolute here and
    encoded as the deltas the format stores."""

    def __init__(self):
        self.b = bytearray()
        self.tick = START
        self.addr = 0
        self.op("CLOCK", u(START), u(START))

    def op(self, name, *fields):
        self.b.append(OP[name])
        for f in fields:
            self.b += f
        return self

    def ts(self, at_ns):
        d = START + at_ns - self.tick
        self.tick = START + at_ns
        return u(d)

    def ad(self, addr):
        d = addr - self.addr
        self.addr = addr
        return s(d)

    def thread(self, tid):
        return self.op("THREAD", u(tid))

    def string(self, sid, text):
        data = text.encode()
        return self.op("STRING", u(sid), u(len(data)), data)

    def node(self, nid, parent, ip):
        return self.op("STACK_NODE", u(nid), u(parent), u(ip))

    def module(self, path, start=0x400000, end=0x500000, bias=0):
        p = path.encode()
        return self.op("MODULE", u(bias), u(start), u(end), u(0), u(len(p)), p)

    def alloc(self, addr, size, at_ns, stack=0):
        self.b.append(OP["ALLOC"])
        self.b += u(size) + self.ad(addr) + self.ts(at_ns) + u(stack)
        return self

    def free(self, addr, at_ns):
        self.b.append(OP["FREE"])
        self.b += self.ad(addr) + self.ts(at_ns)
        return self

    def region(self, name_id, invocation, at_ns):
        return self.op("REGION_BEGIN", u(name_id), u(invocation), self.ts(at_ns))

    def region_end(self, at_ns):
        return self.op("REGION_END", self.ts(at_ns))

    def mark(self, label_id, at_ns):
        return self.op("MARK", u(label_id), self.ts(at_ns))

    def rss(self, nbytes, at_ns):
        return self.op("RSS", u(nbytes), self.ts(at_ns))

    def end(self, reason=0, detail=0):
        return self.op("END", u(reason), u(detail))


def run_fuzz_reports(driver, work, cases, timeout):
    """Runs fuzz_reports (every report over each case file) with a gnuplot
    that draws nothing: the plots' data come from the reader, the drawing
    itself is not what is fuzzed, and thousands of runs stay cheap.  Returns
    the finished process."""
    listing = os.path.join(work, "cases.txt")
    with open(listing, "w") as f:
        f.write("\n".join(cases) + "\n")
    fake = os.path.join(work, "bin")
    os.makedirs(fake, exist_ok=True)
    with open(os.path.join(fake, "gnuplot"), "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(os.path.join(fake, "gnuplot"), 0o755)
    os.makedirs(os.path.join(work, "out"), exist_ok=True)
    env = dict(os.environ, PATH=fake + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run([driver, listing, os.path.join(work, "out")], env=env,
                          timeout=timeout, capture_output=True, text=True)
