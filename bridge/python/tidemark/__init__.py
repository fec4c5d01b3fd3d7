"""tidemark — does memory come back?

Python side of the tidemark allocation tracer:

    import tidemark
    with tidemark.region("step"):      # allocations inside are tagged "step"
        ...
    tidemark.mark("resolution=1001")    # a point on the trace timeline

Regions and marks are recorded when the process runs under `tidemark run`
(the tracer preloaded) and cost a few nanoseconds otherwise.

Submodules: tidemark.bridge (Python callables <-> C callbacks) and
tidemark.ivp (C solvers), imported on first use.
"""
import importlib

from ._bridge import mark, region

__all__ = ["region", "mark", "bridge", "ivp"]


def __getattr__(name):
    if name in ("bridge", "ivp"):
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module 'tidemark' has no attribute {name!r}")
