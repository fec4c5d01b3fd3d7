"""Threads one after another, each making one 5000-byte bytearray, as a
server that keeps replacing its workers does (check_pythreads.py).  The
tracer's per-thread Python state must go back for reuse when a thread
exits: the address space mapped while the last CHECKED threads run may not
grow by more than GROWTH_MAX bytes.  Exit 91 when it grows more."""
import os
import sys
import threading

THREADS = 1600
CHECKED = 1500
GROWTH_MAX = 8 << 20


def worker():
    return bytearray(5000)  # ALLOC


def mapped_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


# Small thread stacks and (in check_pythreads.py) MALLOC_ARENA_MAX=1: a
# thread that has not quite exited when the next starts costs the next a
# new stack, or a new malloc arena, which would hide what is measured.
threading.stack_size(256 << 10)
before = 0
for i in range(THREADS):
    if i == THREADS - CHECKED:
        before = mapped_bytes()
    t = threading.Thread(target=worker)
    t.start()
    t.join()
growth = mapped_bytes() - before
print(f"pythreads: mapped {growth} bytes more over the last {CHECKED} threads")
sys.exit(91 if growth > GROWTH_MAX else 0)
