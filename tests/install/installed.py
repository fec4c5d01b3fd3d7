"""What check_install.py (a prefix from `cmake --install`) and check_deb.py
(the .deb, under /usr) both check of an installed tidemark, with exact
numbers: a Python leak at its line, the package importable and whole, the
two consumer projects built against the installed region header and traced,
the man page, and installed files that name nothing of the build tree.

Every command runs in a clean environment (no PYTHONPATH, no TIDEMARK_*)
from a directory outside the build tree; `wrap` is put before each command
(check_deb.py runs them where the build tree is hidden)."""
import json
import os
import re
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

# The -c program: what it prints, and a leak of 4321 bytes on LEAK_LINE.
PY_PROGRAM = """\
import ctypes, json, sys, sysconfig
import tidemark, tidemark._pystacks
maps = [l.split()[-1] for l in open("/proc/self/maps") if "libtidemark" in l]
print(json.dumps({"file": tidemark.__file__, "version": tidemark.__version__,
                  "pystacks": tidemark._pystacks.__file__, "preload": sorted(set(maps)),
                  "path": sys.path, "stdlib": sysconfig.get_paths()["stdlib"]}))
ctypes.CDLL(None).malloc(4321)
"""
LEAK_LINE = 7


class Failed(Exception):
    pass


def expect(cond, msg):
    if not cond:
        raise Failed(msg)


def expect_eq(got, want, what):
    expect(got == want, f"{what}: got {got!r}, expected {want!r}")


class Env:
    """Where and how the installed tidemark's commands run."""

    def __init__(self, bindir, wrap=(), extra_env=None):
        self.tidemark = os.path.join(bindir, "tidemark")
        self.wrap = list(wrap)
        self.cwd = tempfile.mkdtemp(prefix="tidemark-installed-")
        self.env = {"PATH": "/usr/bin:/bin", "HOME": self.cwd, "LC_ALL": "C.UTF-8"}
        self.env.update(extra_env or {})

    def run(self, *argv, status=0, env=None, cwd=None):
        cmd = self.wrap + [str(a) for a in argv]
        p = subprocess.run(cmd, cwd=cwd or self.cwd, env=dict(self.env, **(env or {})),
                           capture_output=True, text=True, timeout=300)
        expect(p.returncode == status,
               f"{' '.join(argv)}: exit {p.returncode}, expected {status}\n"
               f"{p.stdout[-2000:]}{p.stderr[-2000:]}")
        return p

    def report(self, *args):
        return json.loads(self.run(self.tidemark, *args, "--json").stdout)

    def close(self):
        shutil.rmtree(self.cwd, ignore_errors=True)


def check_version(e, version):
    out = e.run(e.tidemark, "--version").stdout
    expect(re.fullmatch(rf"tidemark {re.escape(version)} \(trace format \d+\)\n", out),
           f"tidemark --version: {out!r}, expected version {version}")


def check_python_leak(e, preload, pydir, hidden=()):
    """`tidemark run --python-stacks` on python3 -c: the installed preload
    and package are the ones loaded, the leak is at its line."""
    trace = os.path.join(e.cwd, "py.trace")
    p = e.run(e.tidemark, "run", "--python-stacks", "-o", trace, "--",
              "/usr/bin/python3", "-c", PY_PROGRAM)
    got = json.loads(p.stdout)
    expect_eq(got["preload"], [preload], "preload mapped in the traced process")
    expect_eq(got["file"], os.path.join(pydir, "tidemark", "__init__.py"), "tidemark.__file__")
    expect(got["pystacks"].startswith(os.path.join(pydir, "tidemark", "_pystacks.")),
           f"tidemark._pystacks from {got['pystacks']}, not {pydir}")
    for d in hidden:
        expect(not any(p.startswith(d) for p in got["path"]), f"{d} on sys.path: {got['path']}")
    # Only the _autostart directory goes before the standard library, not
    # the package's directory (all of dist-packages, under /usr).
    path = got["path"]
    before = path[:path.index(got["stdlib"])]
    expect_eq([p for p in before if p.startswith(pydir)],
              [os.path.join(pydir, "tidemark", "_autostart")], "sys.path before the stdlib")
    leaks = e.report("leaks", trace)
    groups = [g for g in leaks["groups"] if g["bytes"] == 4321]
    expect_eq(len(groups), 1, "groups of 4321 bytes")
    expect_eq(groups[0]["blocks"], 1, "blocks of the 4321-byte leak")
    frames = [(f["function"], f["file"], f["line"]) for f in groups[0]["stack"]
              if f.get("kind") == "python"]
    expect_eq(frames, [("<module>", "<string>", LEAK_LINE)], "Python frames of the leak")
    return got["version"]


def check_import(e, pydir, version, env=None):
    """The installed package on its own: version, the extension modules,
    a C callback through the bridge and a solver."""
    code = """\
import json, numpy as np, tidemark
from tidemark import bridge, ivp
def f(t, y, ydot):
    ydot[:] = -2.0 * y + t
out = np.zeros(3)
bridge.call_rhs(bridge.c_callback(f), 1.5, np.array([1.0, 2.0, 3.0]), out)
with tidemark.region("r"):
    tidemark.mark("m")
print(json.dumps({"file": tidemark.__file__, "version": tidemark.__version__,
                  "mods": sorted(m.__file__ for m in (tidemark._bridge, tidemark._ivp)),
                  "ydot": out.tolist(), "solvers": sorted(ivp.solver_names)}))
"""
    got = json.loads(e.run("/usr/bin/python3", "-c", code, env=env).stdout)
    expect_eq(got["file"], os.path.join(pydir, "tidemark", "__init__.py"), "tidemark.__file__")
    expect_eq(got["version"], version, "tidemark.__version__")
    for m in got["mods"]:
        expect(m.startswith(os.path.join(pydir, "tidemark") + "/"), f"module from {m}")
    expect_eq(got["ydot"], [-0.5, -2.5, -4.5], "the bridge's ydot")
    expect("dopri5" in got["solvers"], f"solvers: {got['solvers']}")


def check_consumer_trace(e, exe, label, trace=None):
    """The consumer runs without the tracer, then under the installed
    tidemark (unless the trace was taken already) with its exact region
    numbers."""
    if not trace:
        e.run(exe)
        trace = os.path.join(e.cwd, label + ".trace")
        e.run(e.tidemark, "run", "-o", trace, "--", exe)
    regions = {r["name"]: r for r in e.report("regions", trace)["regions"]}
    expect("work" in regions, f"{label}: regions {sorted(regions)}")
    work = regions["work"]
    got = (work["invocations"], work["allocs"]["total"], work["bytes"]["total"],
           work["net_bytes"]["total"], work["leaked_blocks"], work["leaked_bytes"])
    expect_eq(got, (3, 6, 372, 72, 3, 72),
              f"{label}: work (invocations, allocs, bytes, net, leaked blocks, leaked bytes)")
    leaks = e.report("leaks", "--region", "work", trace)
    expect_eq((leaks["leaked_blocks"], leaks["leaked_bytes"]), (3, 72),
              f"{label}: leaks --region work")


def consumer_sources(e):
    src = os.path.join(e.cwd, "consumer-src")
    shutil.copytree(os.path.join(HERE, "consumer"), src, dirs_exist_ok=True)
    return src


def check_cmake_consumer(e, version, prefix, cmake_args=(), refuse=True):
    """find_package(tidemark VERSION): tidemark::region compiles and links,
    tidemark::tidemark and tidemark_PRELOAD point into the prefix, and the
    project's own test runs its program under tidemark::tidemark; with
    refuse, a major version above is refused."""
    src, build = consumer_sources(e), os.path.join(e.cwd, "consumer-build")
    out = e.run("cmake", "-S", src, "-B", build, f"-DWANT_VERSION={version}", *cmake_args).stdout
    found = dict(re.findall(r"-- found (\S+?)=(.*)", out))
    expect_eq(found.get("tidemark_DIR"), os.path.join(prefix, "lib/cmake/tidemark"), "tidemark_DIR")
    expect_eq(found.get("tidemark_VERSION"), version, "tidemark_VERSION")
    expect_eq(found.get("tidemark_PRELOAD"), os.path.join(prefix, "lib/tidemark/libtidemark.so"),
              "tidemark_PRELOAD")
    expect_eq(found.get("tidemark::tidemark"), os.path.join(prefix, "bin/tidemark"),
              "tidemark::tidemark")
    e.run("cmake", "--build", build)
    check_consumer_trace(e, os.path.join(build, "consumer"), "cmake-consumer")
    e.run("ctest", "--test-dir", build, "--output-on-failure")
    check_consumer_trace(e, None, "ctest-consumer", os.path.join(build, "ctest.trace"))
    if not refuse:
        return
    major = int(version.split(".")[0]) + 1
    refused = e.run("cmake", "-S", src, "-B", build + "-refused", f"-DWANT_VERSION={major}.0",
                    *cmake_args, status=1)
    expect("not accepted" in refused.stderr and f"version: {version}" in refused.stderr,
           f"find_package(tidemark {major}.0) refused for another reason:\n{refused.stderr}")


def check_pkgconfig_consumer(e, version, prefix, env=None):
    """pkg-config tidemark: the version, the prefix installed to, the flags
    (none for /usr/include, which the compiler searches anyway), and a
    program compiled with them."""
    def pc(*args):
        return e.run("pkg-config", *args, "tidemark", env=env).stdout.strip()
    expect_eq(pc("--modversion"), version, "pkg-config --modversion tidemark")
    expect_eq(pc("--variable=prefix"), prefix, "pkg-config --variable=prefix tidemark")
    include = os.path.join(prefix, "include")
    expect_eq(pc("--cflags"), "" if include == "/usr/include" else f"-I{include}",
              "pkg-config --cflags tidemark")
    src, exe = consumer_sources(e), os.path.join(e.cwd, "pc-consumer")
    e.run("cc", "-O2", "-o", exe, os.path.join(src, "consumer.c"),
          *pc("--cflags", "--libs").split())
    check_consumer_trace(e, exe, "pkgconfig-consumer")


def check_man(e, path, version):
    """tidemark.1 comes from the installed binary's help texts."""
    text = open(path, encoding="utf-8").read()
    expect(text.startswith(f'.TH TIDEMARK 1 "" "tidemark {version}"'), f"{path}: {text[:80]!r}")
    top = e.run(e.tidemark, "--help").stdout
    commands = re.findall(r"^  (\S+)\s", top.split("commands:")[1].split("\n\n")[0], re.M)
    expect(len(commands) >= 9, f"commands in tidemark --help: {commands}")
    for cmd in commands:
        usage = e.run(e.tidemark, cmd, "--help").stdout.split("\n")[0]
        expect(f".SS {cmd}\n" in text, f"{path}: no section for {cmd}")
        expect(usage.replace("-", "\\-") in text, f"{path}: no '{usage}' from {cmd} --help")
    for var in ("TIDEMARK_OUTPUT", "TIDEMARK_STACKS", "TIDEMARK_LIB"):
        expect(f"\\fB{var}\\fR" in text, f"{path}: {var} not in ENVIRONMENT")
    if shutil.which("groff"):  # renders without a warning
        p = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", path], capture_output=True,
                           text=True)
        expect(p.returncode == 0 and not p.stderr, f"groff on {path}: {p.stderr}")


def elf_files(root):
    for d, _, files in os.walk(root):
        for f in files:
            path = os.path.join(d, f)
            if not os.path.islink(path):
                with open(path, "rb") as fh:
                    if fh.read(4) == b"\x7fELF":
                        yield path


def check_no_build_paths(root, forbidden, strip_first, allowed=None):
    """No installed file names the build or source tree: no RUNPATH or
    RPATH at all, and not one byte string of their paths (in ELF files
    after stripping debug info when strip_first: a prefix install keeps
    it, and its DWARF names the sources by design).  `allowed` (the
    prefix, when it lies in the build tree) may be named."""
    elves = set(elf_files(root))
    for path in elves:
        dyn = subprocess.run(["readelf", "-d", path], capture_output=True, text=True).stdout
        expect("RPATH" not in dyn and "RUNPATH" not in dyn, f"{path} has a search path:\n{dyn}")
    with tempfile.TemporaryDirectory() as tmp:
        for d, _, files in os.walk(root):
            for f in files:
                path = os.path.join(d, f)
                if os.path.islink(path):
                    continue
                data_from = path
                if strip_first and path in elves:
                    data_from = os.path.join(tmp, "stripped")
                    subprocess.run(["strip", "--strip-debug", "-o", data_from, path], check=True)
                data = open(data_from, "rb").read()
                if allowed:
                    data = data.replace(allowed.encode(), b"")
                for bad in forbidden:
                    expect(bad.encode() not in data, f"{path} names {bad}")
