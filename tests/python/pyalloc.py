"""pyalloc.py VARIANT N [clean] [exit] — N invocations of the region "rhs",
each keeping small Python objects (served by pymalloc, never by malloc):

    tuple  the issue's program: a tuple of an int, a float and a str
    dict   a dict entry (a str value; the table grows now and then)
    list   a one-element list
    bytes  bytes(40) into a slot made beforehand: exactly one 73-byte block

clean: the same objects made and dropped (nothing kept; for dict, a dict
of one entry); exit: os._exit at the end, so what was kept is still
allocated when the trace ends.  Marks resolution=N for tidemark sweep.
Needs nothing but the interpreter."""
import os
import sys

import tidemark

variant, n = sys.argv[1], int(sys.argv[2])
flags = sys.argv[3:]
tidemark.mark(f"resolution={n}")
kept = []
slots = [None] * n
table = {}


def keep(i):
    if variant == "tuple":
        kept.append((i, float(i), str(i)))  # KEEP:tuple
    elif variant == "dict":
        table[i] = str(i)  # KEEP:dict
    elif variant == "list":
        kept.append([i])  # KEEP:list
    elif variant == "bytes":
        slots[i] = bytes(40)  # KEEP:bytes


def drop(i):
    if variant == "tuple":
        x = (i, float(i), str(i))
    elif variant == "dict":
        x = {i: str(i)}
    elif variant == "list":
        x = [i]
    elif variant == "bytes":
        x = bytes(40)


call = drop if "clean" in flags else keep
for i in range(n):
    with tidemark.region("rhs"):
        call(i)
if "exit" in flags:
    os._exit(0)  # no finalization: what was kept is still allocated
