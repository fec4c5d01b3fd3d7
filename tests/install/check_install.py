#!/usr/bin/python3
"""check_install.py --cmake CMAKE --build DIR --source DIR --work DIR --version V

`cmake --install DIR --prefix WORK/prefix` into a fresh prefix, then, from
a directory outside the build tree and with a clean environment: the files
where the install promises them and the Python package the same as the
built one; nothing installed names the build tree; the installed tidemark
traces a Python leak to its line with its own preload and package; the
package imports and works from there; a find_package(tidemark) project and
a pkg-config one compile against the installed region header and are
traced with exact numbers; the man page; and the prefix moved elsewhere
still works (all but tidemark.pc, which names its prefix as pkg-config
files do)."""
import argparse
import os
import shutil
import subprocess
import sys

from installed import (Env, Failed, check_cmake_consumer, check_import, check_man,
                       check_no_build_paths, check_pkgconfig_consumer, check_python_leak,
                       check_version, expect, expect_eq)

PYDIR = "lib/python3/dist-packages"
PRELOAD = "lib/tidemark/libtidemark.so"
FILES = ["bin/tidemark", PRELOAD, "include/tidemark.h", "lib/pkgconfig/tidemark.pc",
         "lib/cmake/tidemark/tidemarkConfig.cmake",
         "lib/cmake/tidemark/tidemarkConfigVersion.cmake",
         "lib/cmake/tidemark/tidemarkTargets.cmake", "share/man/man1/tidemark.1",
         "share/doc/tidemark/README.md", "share/doc/tidemark/user-guide.md",
         "share/doc/tidemark/trace-format.md", "share/doc/tidemark/architecture.md"]


def package_files(root):
    out = {}
    for d, dirs, files in os.walk(root):
        dirs[:] = [x for x in dirs if x != "__pycache__"]
        for f in files:
            out[os.path.relpath(os.path.join(d, f), root)] = os.path.join(d, f)
    return out


def only_in(prefix):
    """CMake arguments that find packages in prefix and nowhere else."""
    return [f"-DCMAKE_PREFIX_PATH={prefix}", "-DCMAKE_FIND_USE_CMAKE_SYSTEM_PATH=OFF",
            "-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF"]


def check_layout(prefix, build):
    for f in FILES:
        expect(os.path.isfile(os.path.join(prefix, f)), f"not installed: {f}")
    expect_eq(sorted(os.listdir(prefix)), ["bin", "include", "lib", "share"], "prefix top level")
    expect_eq(os.listdir(os.path.join(prefix, "bin")), ["tidemark"], "bin/")
    built = package_files(os.path.join(build, "python", "tidemark"))
    installed = package_files(os.path.join(prefix, PYDIR, "tidemark"))
    expect_eq(sorted(installed), sorted(built), "the installed Python package's files")
    for rel, path in installed.items():
        if rel.endswith(".py"):
            expect(open(path, "rb").read() == open(built[rel], "rb").read(), f"{rel} differs")


def check_prefix(prefix, build, version):
    e = Env(os.path.join(prefix, "bin"))
    try:
        pydir = os.path.join(prefix, PYDIR)
        check_version(e, version)
        got = check_python_leak(e, os.path.join(prefix, PRELOAD), pydir,
                                hidden=[os.path.join(build, "python")])
        expect_eq(got, version, "tidemark.__version__ under tidemark run")
        check_import(e, pydir, version, env={"PYTHONPATH": pydir})
        check_man(e, os.path.join(prefix, "share/man/man1/tidemark.1"), version)
        check_cmake_consumer(e, version, prefix, only_in(prefix))
        check_pkgconfig_consumer(e, version, prefix,
                                 env={"PKG_CONFIG_LIBDIR": os.path.join(prefix, "lib/pkgconfig")})
    finally:
        e.close()


def check_moved(prefix, version):
    """The prefix moved elsewhere keeps working, and without its preload
    `tidemark run` says where it looked."""
    moved = prefix + "-moved"
    shutil.rmtree(moved, ignore_errors=True)
    os.rename(prefix, moved)
    e = Env(os.path.join(moved, "bin"))
    try:
        check_python_leak(e, os.path.join(moved, PRELOAD), os.path.join(moved, PYDIR),
                          hidden=[prefix + "/"])
        check_cmake_consumer(e, version, moved, only_in(moved), refuse=False)
        os.unlink(os.path.join(moved, PRELOAD))
        # Exit codes are 0, 2 and 3 only: a missing part is 2.
        p = e.run(e.tidemark, "run", "--", "/bin/true", status=2)
        lines = p.stderr.splitlines()
        expect(len(lines) == 1 and os.path.join(moved, "bin/../lib/tidemark/libtidemark.so")
               in lines[0], f"tidemark run without its preload: {p.stderr!r}")
    finally:
        e.close()


def main():
    ap = argparse.ArgumentParser()
    for opt in ("--cmake", "--build", "--source", "--work", "--version"):
        ap.add_argument(opt, required=True)
    a = ap.parse_args()
    build, source = os.path.realpath(a.build), os.path.realpath(a.source)
    work = os.path.realpath(a.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    prefix = os.path.join(work, "prefix")
    p = subprocess.run([a.cmake, "--install", build, "--prefix", prefix], capture_output=True,
                       text=True)
    if p.returncode != 0:
        sys.exit(f"cmake --install: exit {p.returncode}\n{p.stdout}{p.stderr}")
    try:
        check_layout(prefix, build)
        check_no_build_paths(prefix, [build, source], strip_first=True, allowed=prefix)
        check_prefix(prefix, build, a.version)
        check_moved(prefix, a.version)
    except Failed as f:
        sys.exit(f"FAIL: {f}")
    print(f"ok: installed into {prefix}: run, import, find_package, pkg-config, man, moved")


if __name__ == "__main__":
    main()
