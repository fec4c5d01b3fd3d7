"""Leaks at known lines without NumPy, for check_pyversions.py (run under
`tidemark run --python-stacks` by each interpreter present).  Lines marked
LEAK: are looked up by the check; keep the markers on the allocating lines."""
import ctypes
import os
import threading

import tidemark

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p


def site_leak():
    libc.malloc(41111)  # LEAK:site


def recurse(n):
    if n:
        return recurse(n - 1)
    libc.malloc(42222)  # LEAK:recursion


def region_leak():
    libc.malloc(43333)  # LEAK:region


def thread_leak():
    libc.malloc(44444)  # LEAK:thread


site_leak()
recurse(30)  # 31 frames of recurse
with tidemark.region("pyversions"):
    region_leak()
tidemark.mark("after-region")
t = threading.Thread(target=thread_leak)
t.start()
t.join()
os._exit(0)  # no interpreter clean-up: everything kept is a leak
