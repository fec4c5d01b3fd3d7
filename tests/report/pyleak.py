"""A Python program with known leaks, for report_page.py (run under
`tidemark run --python-stacks`):  leak_in_python mallocs 100 bytes through
ctypes in each of N invocations of region "step" and never frees them; each
step also allocates and frees 1000 bytes.  Marks resolution=N.

    pyleak.py N
"""
import ctypes
import sys

import tidemark

libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
keep = []


def leak_in_python(size):
    return libc.malloc(size)


def step():
    with tidemark.region("step"):
        scratch = libc.malloc(1000)
        libc.free(scratch)
        keep.append(leak_in_python(100))


n = int(sys.argv[1])
tidemark.mark(f"resolution={n}")
for _ in range(n):
    step()
