#!/usr/bin/python3
"""check_deb.py --cpack CPACK --build DIR --source DIR --work DIR --version V

`cpack -G DEB` builds tidemark_<version>_<arch>.deb; its control fields are
checked (Depends: every library the ELF files need, by the package that
ships it, plus the Python version, NumPy's C ABI and gnuplot, nothing
else), and no file in it names the build tree.  Then, as root, the .deb is
copied to /tmp and installed with apt-get; the installed tidemark is used
from /tmp with the build and source trees hidden (a private mount
namespace puts empty directories over them): a Python leak traced to its
line, the package imported from dist-packages, find_package and
pkg-config consumers with no search path given, the man page.  Last, the
package is removed and every file it installed is gone.

Installing changes the machine for everyone on it, so: one run at a time
(an flock), the package is removed whatever happens (finally, and on
SIGTERM/SIGINT/SIGHUP), and a tidemark already installed by someone else
is left alone (the test is skipped).  Skipped (exit 77, with a message)
when not root or without dpkg/apt-get."""
import argparse
import fcntl
import glob
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

from installed import (Env, Failed, check_cmake_consumer, check_import, check_man,
                       check_no_build_paths, check_pkgconfig_consumer, check_python_leak,
                       check_version, elf_files, expect, expect_eq)

SKIP = 77
LOCK = ("/run/lock" if os.path.isdir("/run/lock") else "/var/lock") + "/tidemark-deb-test.lock"
PYDIR = "/usr/lib/python3/dist-packages"
APT = ["apt-get", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=300"]


def skip(why):
    print(f"skip: {why}")
    sys.exit(SKIP)


def out(*cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


def installed_version():
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status} ${Version}", "tidemark"],
                       capture_output=True, text=True)
    words = p.stdout.split()
    return words[3] if p.returncode == 0 and words[:3] == ["install", "ok", "installed"] else None


def owners(paths):
    """The packages that ship these libraries, in one dpkg -S (which knows
    each by /lib/... or /usr/lib/..., whichever its package lists, on a
    merged /usr)."""
    names = {}
    for path in paths:
        real = os.path.realpath(path)
        for p in (path, real, *(p[4:] if p.startswith("/usr/") else "/usr" + p
                                for p in (path, real))):
            names.setdefault(p, path)
    r = subprocess.run(["dpkg", "-S", *names], capture_output=True, text=True)
    found = {}
    for line in r.stdout.splitlines():
        package, _, p = line.partition(": ")
        if p in names:
            found[names[p]] = package.split(":")[0]
    missing = sorted(set(paths) - set(found))
    expect(not missing, f"no package ships {missing}")
    return set(found.values())


def expected_depends(root):
    """What Depends must hold: the package of every library the ELF files
    need (where the loader finds it for them), and what CMake computes
    from the interpreter and NumPy."""
    needed = set()
    for elf in elf_files(root):
        found = dict(re.findall(r"^\s*(\S+) => (/\S+)", out("ldd", elf), re.M))
        for line in out("readelf", "-d", elf).splitlines():
            if "(NEEDED)" in line:
                lib = line.split("[")[1].rstrip("]")
                expect(lib in found, f"{elf} needs {lib}, which the loader does not find")
                needed.add(found[lib])
    v = sys.version_info
    names = {f"python3 (>= {v.major}.{v.minor}~)", f"python3 (<< {v.major}.{v.minor + 1})",
             "gnuplot-nox | gnuplot"}
    numpy = dict(line.split(None, 1) for line in open("/usr/share/numpy3/versions")
                 if line.strip() and not line.startswith("#"))
    names |= {f"python3-numpy (>= {numpy['api-min-version'].strip()})",
              f"python3-numpy-abi{numpy['abi'].strip()}"}
    return owners(needed), names


def check_control(deb, version, arch, root):
    fields = {}
    for name in ("Package", "Version", "Architecture", "Depends"):
        fields[name] = out("dpkg-deb", "-f", deb, name).strip()
    expect_eq((fields["Package"], fields["Version"], fields["Architecture"]),
              ("tidemark", version, arch), "Package, Version, Architecture")
    depends = [d.strip() for d in fields["Depends"].split(",")]
    shipping, computed = expected_depends(root)
    for d in computed:
        expect(d in depends, f"Depends lacks {d!r}: {depends}")
    by_name = {d.split()[0] for d in depends if d not in computed}
    expect_eq(by_name, shipping, "Depends from the libraries (dpkg-shlibdeps)")
    return depends


def hide(build, source):
    """A command prefix that runs its command with empty directories over
    the build and source trees, or [] where mount namespaces are refused."""
    script = 'for d in "$1" "$2"; do mount -t tmpfs -o size=64k tmpfs "$d"; done; shift 2; exec "$@"'
    wrap = ["unshare", "--mount", "--", "sh", "-ec", script, "sh", build, source]
    p = subprocess.run(wrap + ["test", "!", "-e", os.path.join(build, "CMakeCache.txt")],
                       capture_output=True, text=True)
    return wrap if p.returncode == 0 else []


def check_installed(build, source, version):
    wrap = hide(build, source)
    print("build tree hidden: " + ("yes (mount namespace)" if wrap else
                                   "no (no mount namespace here; the files were checked instead)"))
    e = Env("/usr/bin", wrap)
    try:
        check_version(e, version)
        check_python_leak(e, "/usr/lib/tidemark/libtidemark.so", PYDIR, hidden=[build, source])
        check_import(e, PYDIR, version)
        check_man(e, "/usr/share/man/man1/tidemark.1", version)
        check_cmake_consumer(e, version, "/usr", refuse=False)
        check_pkgconfig_consumer(e, version, "/usr")
    finally:
        e.close()


def check_removed(files):
    p = subprocess.run(APT + ["remove", "--purge", "tidemark"], capture_output=True, text=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    expect(p.returncode == 0, f"apt-get remove: exit {p.returncode}\n{p.stdout}{p.stderr}")
    expect(installed_version() is None, "tidemark still installed after apt-get remove")
    left = [f for f in files if os.path.lexists(f) and not os.path.isdir(f)]
    expect_eq(left, [], "files of the package left after removal")
    for d in ("/usr/lib/tidemark", PYDIR + "/tidemark", "/usr/lib/cmake/tidemark",
              "/usr/share/doc/tidemark"):
        expect(not os.path.exists(d), f"{d} left after removal")


def install_and_check(deb, build, source, version):
    tmp = tempfile.mkdtemp(prefix="tidemark-deb-")
    os.chmod(tmp, 0o755)  # apt reads local files as its own user
    try:
        copy = os.path.join(tmp, os.path.basename(deb))
        shutil.copy(deb, copy)
        os.chmod(copy, 0o644)
        with open(LOCK, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if installed_version():
                skip(f"tidemark {installed_version()} is installed on this machine; "
                     "remove it (apt-get remove tidemark) to run this test")
            env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
            try:
                p = subprocess.run(APT + ["install", copy], capture_output=True, text=True,
                                   env=env)
                expect(p.returncode == 0, f"apt-get install: exit {p.returncode}\n"
                       f"{p.stdout[-3000:]}{p.stderr[-3000:]}")
                expect_eq(installed_version(), version, "installed version")
                expect(glob.glob(PYDIR + "/tidemark/__pycache__/__init__.*.pyc"),
                       "postinst did not byte-compile the package")
                check_installed(build, source, version)
            finally:
                if installed_version():
                    files = out("dpkg", "-L", "tidemark").split()
                    check_removed(files)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    for opt in ("--cpack", "--build", "--source", "--work", "--version"):
        ap.add_argument(opt, required=True)
    a = ap.parse_args()
    tools = ["dpkg", "dpkg-deb", "dpkg-query", "apt-get", "readelf", "ldd"]
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        skip(f"no {', '.join(missing)} here (not a Debian system?)")
    build, source = os.path.realpath(a.build), os.path.realpath(a.source)
    work = os.path.realpath(a.work)
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    arch = out("dpkg", "--print-architecture").strip()
    try:
        p = subprocess.run([a.cpack, "-G", "DEB", "-B", work], cwd=build, capture_output=True,
                           text=True)
        expect(p.returncode == 0, f"cpack: exit {p.returncode}\n{p.stdout}{p.stderr}")
        debs = [os.path.basename(f) for f in glob.glob(os.path.join(work, "*.deb"))]
        expect_eq(debs, [f"tidemark_{a.version}_{arch}.deb"], "cpack's packages")
        deb = os.path.join(work, debs[0])
        root = os.path.join(work, "contents")
        out("dpkg-deb", "-x", deb, root)
        check_control(deb, a.version, arch, root)
        check_no_build_paths(root, [build, source], strip_first=False)
        if os.geteuid() != 0:
            skip("not root: the .deb was built and checked, not installed")
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda n, f: sys.exit(f"FAIL: stopped by signal {n}"))
        install_and_check(deb, build, source, a.version)
    except Failed as f:
        sys.exit(f"FAIL: {f}")
    print(f"ok: {debs[0]} built, installed, used with the build tree hidden, removed")


if __name__ == "__main__":
    main()
