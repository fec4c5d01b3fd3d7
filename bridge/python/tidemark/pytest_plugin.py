"""tidemark.pytest_plugin — memory limits per test and per callback invocation.

Loaded by `tidemark pytest [PYTEST ARGS...]`, which runs pytest under the
tracer with the preload's in-process snapshots on.  Every test call is a
region `test:<nodeid>` (so `tidemark kept/leaks/regions --region` work per
test on the kept trace afterwards); its figures come from the preload's
own counters, never from the trace:

    @pytest.mark.limit_leaks("1 KiB", warmup=0)
        bytes allocated during the test and still alive at its end (after
        gc.collect()) must not exceed the limit; `warmup` calls of the test
        function come first, unmeasured.
    @pytest.mark.limit_memory("24 MB")
        the peak of live bytes during the test, above what was live at its
        start, must not exceed the limit.
    @pytest.mark.no_kept_memory(region="rhs", warmup=3, limit="0 B")
        after `warmup` invocations of region `rhs` in the test, the bytes
        allocated in its invocations and still alive at the test's end
        must not exceed `limit` per invocation.

Options: --tidemark-limit-leaks SIZE and --tidemark-limit-memory SIZE (every
test without the marker), --tidemark-baseline FILE (per-test figures as
JSON: compared against when the file exists, else written) and
--tidemark-fail-on-increase PCT (fail a test whose peak or leaked bytes grew
by more than PCT percent against the baseline).  Sizes: "512", "1 KiB",
"24 MB", "1.5 GiB" (KB/MB/GB are powers of 1000, KiB/MiB/GiB of 1024).

A failing test's message gives the figure, the limit and the top
allocating sites (Python and native frames, file:line), read from the trace
once the preload has flushed it (`tidemark kept` / `tidemark peak` on the
kept trace): only failures pay for reading it.
"""
import gc
import json
import os
import re
import subprocess

import pytest

from . import _snapshot

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000**2, "mb": 1000**2,
          "mib": 1024**2, "g": 1000**3, "gb": 1000**3, "gib": 1024**3, "t": 1000**4,
          "tb": 1000**4, "tib": 1024**4}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-zA-Z]*)\s*$")
_USE = ("tidemark.pytest_plugin needs the tracer: run the tests with "
        "`tidemark pytest [PYTEST ARGS...]`")
_TOP_SITES = 5


def parse_size(value):
    """Bytes in a size: an int, or a string like "1 KiB", "24 MB", "0 B"."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    m = _SIZE.match(str(value))
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise ValueError(f"not a size: {value!r} (use e.g. 512, \"1 KiB\", \"24 MB\")")
    return int(float(m.group(1)) * _UNITS[unit])


def format_size(n):
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def pytest_addoption(parser):
    group = parser.getgroup("tidemark", "memory limits under the tracer (tidemark pytest)")
    group.addoption("--tidemark-limit-leaks", metavar="SIZE", default=None,
                    help="limit_leaks for every test without the marker")
    group.addoption("--tidemark-limit-memory", metavar="SIZE", default=None,
                    help="limit_memory for every test without the marker")
    group.addoption("--tidemark-baseline", metavar="FILE", default=None,
                    help="per-test peak and leaked bytes: compared against when FILE "
                         "exists, else written there")
    group.addoption("--tidemark-fail-on-increase", metavar="PCT", default=None, type=float,
                    help="with --tidemark-baseline: fail tests whose peak or leaked bytes "
                         "grew by more than PCT percent")


def pytest_configure(config):
    config.addinivalue_line("markers", "limit_leaks(size, warmup=0): bytes allocated in the "
                            "test and alive at its end must not exceed size (tidemark)")
    config.addinivalue_line("markers", "limit_memory(size): the test's peak above what was "
                            "live at its start must not exceed size (tidemark)")
    config.addinivalue_line("markers", "no_kept_memory(region=, warmup=, limit=): after warmup "
                            "invocations, no invocation of region keeps more than limit "
                            "(tidemark)")
    if not _snapshot.available():
        raise pytest.UsageError(_USE)
    plugin = _Plugin(config)
    config.pluginmanager.register(plugin, "tidemark-limits")


class _Plugin:
    def __init__(self, config):
        opt = config.getoption
        try:
            self.default_leaks = _opt_size(opt("tidemark_limit_leaks"))
            self.default_memory = _opt_size(opt("tidemark_limit_memory"))
        except ValueError as e:
            raise pytest.UsageError(f"tidemark: {e}")
        self.baseline_file = opt("tidemark_baseline")
        self.increase = opt("tidemark_fail_on_increase")
        if self.increase is not None and not self.baseline_file:
            raise pytest.UsageError("tidemark: --tidemark-fail-on-increase needs "
                                    "--tidemark-baseline FILE")
        self.baseline = None
        if self.baseline_file and os.path.exists(self.baseline_file):
            try:
                with open(self.baseline_file) as f:
                    self.baseline = json.load(f)["tests"]
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise pytest.UsageError(f"tidemark: cannot read the baseline "
                                        f"{self.baseline_file}: {e}")
        self.figures = {}  # nodeid: {"peak_bytes", "leaked_bytes"}
        pattern = os.environ.get("TIDEMARK_PYTEST_TRACE", "")
        self.trace = pattern.replace("%p", str(os.getpid()), 1) if pattern else None
        self.tidemark = os.environ.get("TIDEMARK_BIN", "tidemark")

    # --- the measured call --------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem):
        testfunction = pyfuncitem.obj
        if _is_async(testfunction):
            return None  # left to the async plugin, unmeasured
        args = {a: pyfuncitem.funcargs[a] for a in pyfuncitem._fixtureinfo.argnames}
        leaks = pyfuncitem.get_closest_marker("limit_leaks")
        memory = pyfuncitem.get_closest_marker("limit_memory")
        kept = [m for m in pyfuncitem.iter_markers("no_kept_memory")]
        try:
            leak_limit, warmup = (_leak_args(leaks) if leaks else (self.default_leaks, 0))
            mem_limit = _size_arg(memory, "limit_memory") if memory else self.default_memory
            kept_checks = [_kept_args(m) for m in kept]
        except (TypeError, ValueError) as e:
            pytest.fail(f"tidemark: {pyfuncitem.nodeid}: {e}", pytrace=False)

        for _ in range(warmup):
            testfunction(**args)
        for region, kwarmup, _limit in kept_checks:
            _snapshot.watch(region, kwarmup)
        name = "test:" + pyfuncitem.nodeid
        live0 = _snapshot.totals()[0]
        _snapshot.reset_peak()
        import tidemark

        # A young-generation collection after every test; the full one
        # (tens of ms in a big suite) only when a check would fail without
        # it.  Inside the region: the trace's `kept --region` then agrees.
        with tidemark.region(name):
            testfunction(**args)
            gc.collect(0)
            figures, failures = self._check(pyfuncitem.nodeid, name, live0, leak_limit,
                                            mem_limit, kept_checks)
            if failures:
                figures = failures = None
                gc.collect()
                figures, failures = self._check(pyfuncitem.nodeid, name, live0, leak_limit,
                                                mem_limit, kept_checks)
        # Stored once the region is over: the table's growth is not the test's.
        self.figures[pyfuncitem.nodeid] = figures
        if failures:
            pytest.fail("\n".join(self._explain(f) for f in failures), pytrace=False)
        return True

    def _check(self, nodeid, name, live0, leak_limit, mem_limit, kept_checks):
        """The test's figures and what they break."""
        peak = max(_snapshot.totals()[2] - live0, 0)
        leaked = _snapshot.region(name)[1]
        figures = {"peak_bytes": peak, "leaked_bytes": leaked}
        failures = []
        if leak_limit is not None and leaked > leak_limit:
            failures.append((f"leaked {format_size(leaked)} ({leaked} B), limit "
                             f"{format_size(leak_limit)} ({leak_limit} B)",
                             ("kept", "--region", name)))
        if mem_limit is not None and peak > mem_limit:
            failures.append((f"peak {format_size(peak)} ({peak} B) above the start, limit "
                             f"{format_size(mem_limit)} ({mem_limit} B)",
                             ("peak", "--region", name)))
        for region, kwarmup, limit in kept_checks:
            r = _snapshot.region(region)
            if r is None or r[0] == 0:
                failures.append((f"region {region} never ran (no_kept_memory)", None))
                continue
            inv, kept_now, _blocks, after, watch_kept = r
            if watch_kept is None or after == 0:
                continue  # not more than warmup invocations: nothing to judge
            grown = kept_now - watch_kept
            if grown > limit * after:
                failures.append((f"region {region} kept {format_size(grown)} ({grown} B) over "
                                 f"{after} invocations after {kwarmup} warm-up ones "
                                 f"({grown / after:.0f} B per invocation), limit "
                                 f"{format_size(limit)} ({limit} B) per invocation",
                                 ("kept", "--region", region)))
        return figures, failures + self._against_baseline(nodeid, figures)

    def _against_baseline(self, nodeid, now):
        if self.baseline is None or self.increase is None or nodeid not in self.baseline:
            return []
        out = []
        then = self.baseline[nodeid]
        for key, what in (("peak_bytes", "peak"), ("leaked_bytes", "leaked")):
            old, new = then.get(key, 0), now[key]
            if new > old * (1 + self.increase / 100.0) and new > old:
                grew = "from 0 B" if old == 0 else f"by {100.0 * (new - old) / old:.1f}%"
                out.append((f"{what} {format_size(new)} ({new} B) grew {grew} against the "
                            f"baseline's {format_size(old)} ({old} B), allowed "
                            f"{self.increase:g}%",
                            ("kept" if key == "leaked_bytes" else "peak", "--region",
                             "test:" + nodeid)))
        return out

    # --- failure messages -------------------------------------------------------

    def _explain(self, failure):
        message, report = failure
        if not report or not self.trace:
            return "tidemark: " + message
        return "tidemark: " + message + "".join("\n    " + s for s in self._sites(report))

    def _sites(self, report):
        """The top allocating sites of a report on the trace so far."""
        if not _snapshot.flush():
            return ["(the trace could not be flushed: no sites)"]
        try:
            p = subprocess.run([self.tidemark, *report, "--json", "--limit", str(_TOP_SITES),
                                self.trace], capture_output=True, text=True, timeout=300)
            d = json.loads(p.stdout)
        except (OSError, ValueError, subprocess.SubprocessError) as e:
            return [f"(no sites: tidemark {report[0]} failed: {e})"]
        groups = d.get("groups") or d.get("stacks") or []
        if not groups:
            return ["(no allocating site in the trace)"]
        lines = ["top allocating sites:"]
        for g in groups[:_TOP_SITES]:
            blocks = g.get("blocks", 0)
            where = _where(g.get("stack", []))
            lines.append(f"  {format_size(g.get('bytes', 0))} in {blocks} "
                         f"block{'s' if blocks != 1 else ''}: {where}")
        return lines

    # --- summary and baseline -----------------------------------------------------

    def pytest_terminal_summary(self, terminalreporter):
        if not self.figures:
            return
        tr = terminalreporter
        tr.section("tidemark")
        for key, title in (("peak_bytes", "highest peak"), ("leaked_bytes", "most leaked")):
            top = sorted(self.figures.items(), key=lambda kv: (-kv[1][key], kv[0]))[:5]
            tr.write_line(f"{title}:")
            for nodeid, f in top:
                tr.write_line(f"  {format_size(f[key]):>10}  {nodeid}")
        if self.trace:
            tr.write_line(f"trace: {self.trace} (tidemark kept TRACE --region 'test:NODEID')")
        if self.baseline_file and self.baseline is None:
            tr.write_line(f"baseline written to {self.baseline_file}")

    def pytest_sessionfinish(self, session):
        if self.baseline_file and self.baseline is None and self.figures:
            with open(self.baseline_file, "w") as f:
                json.dump({"schema_version": 1, "tests": self.figures}, f, indent=1,
                          sort_keys=True)


# --- helpers ------------------------------------------------------------------------

def _opt_size(v):
    return None if v is None else parse_size(v)


def _size_arg(marker, name):
    if len(marker.args) + len(marker.kwargs) != 1:
        raise TypeError(f"{name} takes one size, e.g. {name}(\"1 MiB\")")
    return parse_size(marker.args[0] if marker.args else next(iter(marker.kwargs.values())))


def _leak_args(marker):
    kw = dict(marker.kwargs)
    if marker.args:
        kw.setdefault("size", marker.args[0])
    unknown = set(kw) - {"size", "warmup"}
    if unknown or "size" not in kw or len(marker.args) > 1:
        raise TypeError("limit_leaks(size, warmup=0)")
    warmup = int(kw.get("warmup", 0))
    if warmup < 0:
        raise ValueError("limit_leaks: warmup must be >= 0")
    return parse_size(kw["size"]), warmup


def _kept_args(marker):
    kw = dict(marker.kwargs)
    unknown = set(kw) - {"region", "warmup", "limit"}
    if marker.args or unknown or "region" not in kw:
        raise TypeError("no_kept_memory(region=NAME, warmup=0, limit=\"0 B\")")
    warmup = int(kw.get("warmup", 0))
    if warmup < 0:
        raise ValueError("no_kept_memory: warmup must be >= 0")
    return str(kw["region"]), warmup, parse_size(kw.get("limit", 0))


def _is_async(fn):
    import inspect

    return inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn)


_ALLOCATOR = re.compile(r"^(malloc|calloc|realloc|reallocarray|free|posix_memalign|"
                        r"aligned_alloc|memalign|valloc|pvalloc|operator new.*|_Zn[wa].*|"
                        r"Py(Mem|Object)_\w+|_Py\w+|\?\?)$")


def _frame(f):
    loc = f"{os.path.basename(f['file'])}:{f['line']}" if f.get("file") else f.get("module", "?")
    return f"{loc} {f.get('function') or '??'}"


def _where(stack):
    """The frames a person acts on, innermost first: the first native frame
    with a source line between the allocator and the Python code (the C code
    that allocated), then up to three Python frames of the test's own code
    (the plugin's and pytest's frames left out)."""
    first_py = next((i for i, f in enumerate(stack) if f.get("kind") == "python"), len(stack))
    native = next((f for f in stack[:first_py] if f.get("file")
                   and not _ALLOCATOR.match(f.get("function") or "??")), None)
    python = []
    for f in stack[first_py:]:
        if f.get("kind") != "python":
            continue
        if _is_harness(f.get("file") or ""):
            break
        python.append(f)
        if len(python) == 3:
            break
    parts = []
    if native:
        parts.append(_frame(native) + (f" ({native['module']})" if native.get("module") else ""))
    parts += [_frame(f) for f in python]
    if not parts:
        parts = ["(no frame of the test's own code: pytest's or the plugin's)"]
    return " <- ".join(parts)


def _is_harness(path):
    return (os.path.abspath(path) == os.path.abspath(__file__)
            or os.sep + "_pytest" + os.sep in path or os.sep + "pluggy" + os.sep in path)
