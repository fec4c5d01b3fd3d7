"""Put on PYTHONPATH by `tidemark run --python-stacks`: records Python frames
with every allocation from interpreter start-up, without touching the
user's script, then runs the sitecustomize this one shadows (if any)."""
import importlib.machinery
import importlib.util
import os
import sys


def _chain():
    here = os.path.dirname(os.path.abspath(__file__))
    path = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


if os.environ.get("TIDEMARK_PYTHON_STACKS", "0") not in ("", "0"):
    try:
        import tidemark
        tidemark.enable_python_stacks()
    except ImportError as e:  # the package is not on the path: say so once
        sys.stderr.write(f"tidemark: --python-stacks: cannot import tidemark ({e})\n")
_chain()
