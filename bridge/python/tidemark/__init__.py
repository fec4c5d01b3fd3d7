"""tidemark — does memory come back?

Python side of the tidemark allocation tracer:

    import tidemark
    with tidemark.region("step"):      # allocations inside are tagged "step"
        ...
    tidemark.mark("resolution=1001")    # a point on the trace timeline

Regions and marks are recorded when the process runs under `tidemark run`
(the tracer preloaded) and cost a few nanoseconds otherwise.

Under the tracer, importing tidemark also traces Python's own allocators
(every object allocation is an event; `tidemark run --python-allocator off`
or TIDEMARK_PYTHON_ALLOCATOR=off leaves them alone).

Submodules: tidemark.bridge (Python callables <-> C callbacks, needs NumPy)
and tidemark.ivp (C solvers), imported on first use.  The region API needs
nothing but the interpreter.
"""
import importlib

from ._version import __version__

try:
    # The region API, without NumPy; importing it hands Python's allocators
    # to the tracer when there is one (tidemark._regions).
    from ._regions import mark, region
except ImportError:  # not built for this interpreter: region and mark say so when used
    pass

__all__ = ["region", "mark", "snapshot", "reset_peak", "enable_python_stacks", "bridge", "ivp",
           "__version__"]


def snapshot():
    """The traced process's heap as the reports would compute it now, read
    from the preload's own counters (no trace reading, no stack walks):

        {"live_bytes": ..., "live_blocks": ..., "peak_bytes": ...,  # since reset_peak()
         "exact": True,
         "regions": {name: {"invocations": ..., "kept_bytes": ..., "kept_blocks": ...}}}

    kept_bytes: bytes allocated inside the region (nested regions included)
    and still alive.  Only under the tracer with snapshots on (`tidemark
    pytest` sets TIDEMARK_SNAPSHOT=1); RuntimeError otherwise."""
    from . import _snapshot

    live, blocks, peak, exact = _snapshot.totals()
    regions = {
        name: {"invocations": r[0], "kept_bytes": r[1], "kept_blocks": r[2]}
        for name, r in _snapshot.regions().items()
    }
    return {"live_bytes": live, "live_blocks": blocks, "peak_bytes": peak, "exact": exact,
            "regions": regions}


def reset_peak():
    """Makes snapshot()'s peak_bytes start again from the live bytes now."""
    from . import _snapshot

    _snapshot.reset_peak()


def enable_python_stacks():
    """Record the Python call stack with every allocation, in this thread and
    in threads started from now on.  Only meaningful under the tracer (where
    `tidemark run --python-stacks` calls it at start-up); returns whether it
    took effect."""
    import threading

    from . import _pystacks

    mode = _pystacks.enable()
    if mode == 1:  # a per-thread profile hook: install it in new threads too
        def start(frame, event, arg):
            # The first event of a new thread: hand over to the C hook.
            _pystacks.enable()

        threading.setprofile(start)
    return bool(mode)


def __getattr__(name):
    # Imported on first use: the bridge loads NumPy, which a program traced
    # with --python-stacks should not pay for unless it uses it.  The region
    # API has a module of its own, without NumPy.
    if name in ("region", "mark"):
        return getattr(importlib.import_module("._regions", __name__), name)
    if name in ("bridge", "ivp"):
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'tidemark' has no attribute {name!r}")
