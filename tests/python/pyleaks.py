"""Leaks at known Python lines, for check_pystacks.py (run under
`tidemark run --python-stacks`).  Lines marked LEAK: are looked up by the
check; keep the markers on the allocating lines."""
import ctypes
import os
import threading

import numpy as np

from tidemark import bridge

keep = []
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p


def numpy_leak():
    keep.append(np.ones(50000))  # LEAK:numpy


def ctypes_leak():
    libc.malloc(77777)  # LEAK:ctypes


def in_callback(t, y, ydot):
    keep.append(np.zeros(60000))  # LEAK:callback
    ydot[:] = y


def raising(n):
    if n:
        raising(n - 1)
    raise ValueError(n)


def generator():
    for i in range(10):
        yield i


def repeated_leak():
    libc.malloc(21111)  # LEAK:repeat


def thread_leak():
    libc.malloc(55555)  # LEAK:thread


def final_leak():
    libc.malloc(33333)  # LEAK:final


numpy_leak()
ctypes_leak()
for _ in range(3):  # one call site again and again: one group of 3 blocks
    repeated_leak()
bridge.call_rhs(bridge.c_callback(in_callback), 0.0, np.ones(3), np.zeros(3))
# Exceptions, generators and recursion must leave the shadow stack as it was.
for _ in range(25000):  # 100k calls that raise
    try:
        raising(3)
    except ValueError:
        pass
for _ in range(2000):
    sum(generator())
t = threading.Thread(target=thread_leak)
t.start()
t.join()
final_leak()
os._exit(0)  # no interpreter clean-up: everything kept is a leak
