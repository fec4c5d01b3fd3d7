"""Many distinct Python call paths (tests/tracer/stackcap.py, issue 32):
each iteration allocates through a random path of DEPTH nested calls among
four Python functions and frees it; every LEAK_EVERY-th block of 4321 bytes
is kept, and final_leak() keeps one of 33333 bytes at the end.

    python3 many_pystacks.py ITERATIONS LEAK_EVERY
"""
import ctypes
import random
import sys

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
rng = random.Random(12345)
DEPTH = 12


def go(depth, leak):
    if depth == 0:
        p = libc.malloc(4321 if leak else 32)
        if not leak:
            libc.free(p)
        return
    WAYS[rng.getrandbits(2)](depth, leak)


def way0(depth, leak):
    go(depth - 1, leak)


def way1(depth, leak):
    go(depth - 1, leak)


def way2(depth, leak):
    go(depth - 1, leak)


def way3(depth, leak):
    go(depth - 1, leak)


WAYS = (way0, way1, way2, way3)


def final_leak():
    libc.malloc(33333)


iterations, leak_every = int(sys.argv[1]), int(sys.argv[2])
for i in range(1, iterations + 1):
    go(DEPTH, i % leak_every == 0)
final_leak()
