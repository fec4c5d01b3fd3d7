"""Put first on PYTHONPATH by `tidemark run`: from interpreter start-up,
without touching the user's script, traces Python's allocators (importing
tidemark does; TIDEMARK_PYTHON_ALLOCATOR=off: not) and, with
--python-stacks, records Python frames with every allocation; then runs
the sitecustomize this one shadows (if any).

The tidemark package is imported from beside this file, not from sys.path:
it must be the one that came with the preload (its _pystacks module shares
a struct with it), and the directory holding it may hold much else (all of
dist-packages, once installed) that must not come before the program's own
path.  The program's own `import tidemark` then finds this one."""
import importlib.machinery
import importlib.util
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def _chain():
    path = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


def _package_dir():
    # The package built for this interpreter: build/python/<X.Y>/tidemark
    # beside the system python3's, when there is one (their compiled
    # modules are specific to the interpreter version).
    package = os.path.dirname(_HERE)
    own = os.path.join(os.path.dirname(package), "%d.%d" % sys.version_info[:2], "tidemark")
    return own if os.path.isdir(own) else package


def _import_tidemark():
    package = _package_dir()
    spec = importlib.util.spec_from_file_location(
        "tidemark", os.path.join(package, "__init__.py"),
        submodule_search_locations=[package])
    module = importlib.util.module_from_spec(spec)
    sys.modules["tidemark"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["tidemark"]
        raise
    return module


def _start():
    stacks = os.environ.get("TIDEMARK_PYTHON_STACKS", "0") not in ("", "0")
    allocator = os.environ.get("TIDEMARK_PYTHON_ALLOCATOR", "traced") != "off"
    if not (stacks or allocator):
        return
    what = "--python-stacks" if stacks else "--python-allocator traced"
    try:
        tidemark = _import_tidemark()
        if allocator:
            import tidemark._regions  # traces the allocators (it did, unless it is missing)
        if stacks:
            tidemark.enable_python_stacks()
    except (ImportError, OSError, RuntimeError) as e:  # a part of the package is missing: say so once
        if stacks or _traced():  # an untraced child (another interpreter, say) is not told
            sys.stderr.write(f"tidemark: {what}: cannot import tidemark ({e})\n")


def _traced():
    try:
        with open("/proc/self/maps") as f:
            return "libtidemark" in f.read()
    except OSError:
        return True


_start()
_chain()
