"""The pytest plugin (tidemark pytest, tidemark.pytest_plugin), tested with
pytest's own `pytester` fixture: each case generates a test suite with known
leaky and clean tests, runs it under `tidemark pytest` and checks the exact
pass/fail set, the failure messages (figure, limit, the leaking line) and the
terminal summary.

    TIDEMARK=BIN LEAKY_SO=LIB /usr/bin/python3 -m pytest -p pytester \
        pytest_plugin_cases.py -k CASE

The Python small-object leak is seen with Python's own allocator (pymalloc)
in place: its allocator domains are traced, so every object is a block.
"""
import json
import os
import re
import subprocess
import sys

import pytest

TIDEMARK = os.environ.get("TIDEMARK", "tidemark")
LEAKY_SO = os.environ.get("LEAKY_SO", "")
HERE = os.path.dirname(os.path.abspath(__file__))

pytest_plugins = ["pytester"]


def line_of(path, needle):
    with open(path) as f:
        for n, text in enumerate(f, 1):
            if needle in text:
                return n
    raise AssertionError(f"{needle!r} not in {path}")


def run(pytester, *args):
    """tidemark pytest ARGS in the generated suite's directory: (result,
    {nodeid: outcome}, failure text by test name)."""
    r = pytester.run(TIDEMARK, "pytest", "-q", "-rA", "-p", "no:cacheprovider", *args,
                     timeout=600)
    out = r.stdout.str()
    outcomes = {}
    for m in re.finditer(r"^(PASSED|FAILED|ERROR) (\S+)", out, re.M):
        outcomes[m.group(2)] = m.group(1)
    failures = {}
    for m in re.finditer(r"^_{3,} (\S+) _{3,}\n(.*?)(?=^_{3,} |^={3,})", out, re.M | re.S):
        failures[m.group(1)] = m.group(2)
    return r, outcomes, failures, out


SUITE = r'''
import ctypes, gc
import numpy as np
import pytest
import tidemark

lib = ctypes.CDLL(LEAKY_SO)
lib.leak_per_call.argtypes = [ctypes.c_size_t]
lib.clean_call.argtypes = [ctypes.c_size_t]
_cache = []
_arrays = []


@pytest.mark.limit_leaks("1 KiB")
def test_c_leak():
    for _ in range(10):
        lib.leak_per_call(4000)


@pytest.mark.limit_leaks("1 KiB")
def test_c_clean():
    for _ in range(10):
        lib.clean_call(4000)


@pytest.mark.limit_leaks("4 KiB")
def test_py_leak():
    for i in range(1000):
        _cache.append(str(i) * 2)        # python small-object leak


@pytest.mark.limit_leaks("4 KiB")
def test_py_clean():
    tmp = [str(i) * 2 for i in range(1000)]
    del tmp


def rhs_keeping(y):
    with tidemark.region("rhs_keep"):
        out = y * 2.0
        _arrays.append(out)              # numpy array kept per call
        return out


def rhs_clean(y):
    with tidemark.region("rhs_clean"):
        return y * 2.0


@pytest.mark.no_kept_memory(region="rhs_keep", warmup=3, limit="0 B")
def test_numpy_kept():
    y = np.ones(1000)
    for _ in range(10):
        rhs_keeping(y)


@pytest.mark.no_kept_memory(region="rhs_clean", warmup=3, limit="0 B")
def test_numpy_clean():
    y = np.ones(1000)
    for _ in range(10):
        rhs_clean(y)


@pytest.mark.limit_memory("1 MB")
def test_peak_over():
    a = np.ones(1_000_000)               # 8 MB for a moment
    del a


@pytest.mark.limit_memory("24 MB")
def test_peak_under():
    a = np.ones(1_000_000)
    del a


@pytest.mark.limit_leaks("1 KiB", warmup=1)
def test_warmup_cache():
    if not _first:                       # a one-time cache, filled in the warm-up
        _first.append(bytearray(100000))


_first = []


def test_unmarked_leak():
    lib.leak_per_call(3000)


def test_clean():
    assert sum(range(10)) == 45
'''


def make_suite(pytester, name="test_gen"):
    path = pytester.makepyfile(**{name: "LEAKY_SO = %r\n" % LEAKY_SO + SUITE})
    return str(path)


EXPECTED = {
    "test_c_leak": "FAILED", "test_c_clean": "PASSED",
    "test_py_leak": "FAILED", "test_py_clean": "PASSED",
    "test_numpy_kept": "FAILED", "test_numpy_clean": "PASSED",
    "test_peak_over": "FAILED", "test_peak_under": "PASSED",
    "test_warmup_cache": "PASSED", "test_unmarked_leak": "PASSED", "test_clean": "PASSED",
}


def test_markers(pytester):
    path = make_suite(pytester)
    r, outcomes, failures, out = run(pytester)
    got = {k.split("::")[1]: v for k, v in outcomes.items()}
    assert got == EXPECTED, out
    assert r.ret == 1, out
    leak_line = line_of(os.path.join(HERE, "pytest_leaky.c"), "the leaking line")
    # C leak: 10 x 4000 B from leak_per_call, the C line and the Python line.
    f = failures["test_c_leak"]
    m = re.search(r"tidemark: leaked .* \((\d+) B\), limit 1\.0 KiB \(1024 B\)", f)
    assert m and 40000 <= int(m.group(1)) < 40000 + 1024, f
    assert f"pytest_leaky.c:{leak_line} leak_per_call" in f, f
    assert "test_gen.py:%d test_c_leak" % line_of(path, "lib.leak_per_call(4000)") in f, f
    # Python small-object leak: the appending line.
    f = failures["test_py_leak"]
    assert re.search(r"tidemark: leaked .* \(\d+ B\), limit 4\.0 KiB \(4096 B\)", f), f
    assert "test_gen.py:%d test_py_leak" % line_of(path, "python small-object leak") in f, f
    # NumPy array kept per call: 7 invocations after the warm-up, 8000 B each.
    f = failures["test_numpy_kept"]
    m = re.search(r"region rhs_keep kept .* \((\d+) B\) over 7 invocations after 3 warm-up "
                  r"ones \((\d+) B per invocation\), limit 0 B \(0 B\) per invocation", f)
    assert m, f
    assert 7 * 8000 <= int(m.group(1)) < 7 * 8000 + 7 * 512, f
    assert "test_gen.py:%d rhs_keeping" % line_of(path, "out = y * 2.0") in f, f
    # Peak over the limit: the np.ones line.
    f = failures["test_peak_over"]
    m = re.search(r"tidemark: peak .* \((\d+) B\) above the start, limit .* \(1000000 B\)", f)
    assert m and 8000000 <= int(m.group(1)) < 8000000 + 65536, f
    assert "test_gen.py:%d test_peak_over" % line_of(path, "8 MB for a moment") in f, f
    # The terminal summary: five by peak, five by leaked.
    summary = out[out.index("= tidemark ="):]
    peak_rows = summary.split("highest peak:\n")[1].split("most leaked:")[0].splitlines()
    assert len(peak_rows) == 5, summary
    assert {r.split()[-1] for r in peak_rows[:2]} == {"test_gen.py::test_peak_over",
                                                      "test_gen.py::test_peak_under"}, summary
    leak_rows = summary.split("most leaked:\n")[1].splitlines()[:5]
    assert leak_rows[0].endswith("test_gen.py::test_numpy_kept") or \
        leak_rows[0].endswith("test_gen.py::test_c_leak"), summary
    # The kept trace: the test is a region there.
    trace = re.search(r"^trace: (\S+)", summary, re.M).group(1)
    k = subprocess.run([TIDEMARK, "kept", "--region", "test:test_gen.py::test_c_leak", "--json",
                        trace], capture_output=True, text=True, timeout=300)
    assert k.returncode == 0, k.stderr
    assert json.loads(k.stdout)["kept_bytes"] >= 40000


def test_session_limits(pytester):
    make_suite(pytester)
    r, outcomes, failures, out = run(pytester, "--tidemark-limit-leaks", "1 KiB",
                                     "-k", "unmarked or clean")
    got = {k.split("::")[1]: v for k, v in outcomes.items()}
    assert got == {"test_unmarked_leak": "FAILED", "test_c_clean": "PASSED",
                   "test_py_clean": "PASSED", "test_numpy_clean": "PASSED",
                   "test_clean": "PASSED"}, out
    assert "limit 1.0 KiB (1024 B)" in failures["test_unmarked_leak"], out
    r, outcomes, failures, out = run(pytester, "--tidemark-limit-memory", "64 KiB",
                                     "-k", "peak_under or test_clean")
    got = {k.split("::")[1]: v for k, v in outcomes.items()}
    # A marker wins over the session option: peak_under's own 24 MB.
    assert got == {"test_peak_under": "PASSED", "test_clean": "PASSED"}, out


def test_baseline(pytester):
    pytester.makepyfile(test_base='''
import ctypes, os
lib = ctypes.CDLL(%r)
lib.leak_per_call.argtypes = [ctypes.c_size_t]
N = int(os.environ.get("LEAK", "1000"))

def test_grows():
    lib.leak_per_call(N)

def test_same():
    lib.leak_per_call(1000)
''' % LEAKY_SO)
    base = str(pytester.path / "base.json")
    r, outcomes, _, out = run(pytester, "--tidemark-baseline", base)
    assert r.ret == 0 and os.path.exists(base), out
    with open(base) as f:
        tests = json.load(f)["tests"]
    assert set(tests) == {"test_base.py::test_grows", "test_base.py::test_same"}, tests
    assert tests["test_base.py::test_grows"]["leaked_bytes"] >= 1000
    os.environ["LEAK"] = "5000"
    try:
        r, outcomes, failures, out = run(pytester, "--tidemark-baseline", base,
                                         "--tidemark-fail-on-increase", "10")
    finally:
        del os.environ["LEAK"]
    got = {k.split("::")[1]: v for k, v in outcomes.items()}
    assert got == {"test_grows": "FAILED", "test_same": "PASSED"}, out
    assert re.search(r"leaked .* grew by \d+\.\d% against the baseline's .*, allowed 10%",
                     failures["test_grows"]), out


def test_outside_tracer(pytester):
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env["PYTHONPATH"] = os.environ["TIDEMARK_PYTHONPATH"]
    p = subprocess.run(["/usr/bin/python3", "-m", "pytest", "-p", "tidemark.pytest_plugin", "-q"],
                       cwd=str(pytester.path), env=env, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode == 4, (p.returncode, p.stdout, p.stderr)
    lines = [l for l in (p.stdout + p.stderr).splitlines() if l.strip()]
    assert lines == ["ERROR: tidemark.pytest_plugin needs the tracer: run the tests with "
                     "`tidemark pytest [PYTEST ARGS...]`"], lines


def test_bad_marker(pytester):
    pytester.makepyfile(test_bad='''
import pytest

@pytest.mark.limit_leaks("12 parsecs")
def test_bad():
    pass
''')
    r, outcomes, failures, out = run(pytester)
    assert outcomes == {"test_bad.py::test_bad": "FAILED"}, out
    assert "tidemark: test_bad.py::test_bad: not a size: '12 parsecs'" in out, out
