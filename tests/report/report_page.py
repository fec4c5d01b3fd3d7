#!/usr/bin/python3
"""`tidemark report` pages loaded in headless Chromium (issue 26): each
case writes a report of real traces, loads it (with a view chosen in the
URL's hash, as the page keeps its state there) and reads back what the page
shows from #tm-selftest (JSON the page writes for tests) and what went
wrong from #tm-errors and Chromium's console log.  Checked against the
other reports' --json: the flame graph's totals per view (leaks, peak,
summary, kept --region), the regions table (regions), the sweep verdict
(sweep).  Every page: no console message, no error, no external URL.
A screenshot of every view goes to the work directory (for a person to
look at; nothing checks the pixels).

    report_page.py CASE --tidemark BIN --progs DIR --work DIR --pythonpath DIR

Exit 77 (skipped) when /usr/bin/chromium is absent.
"""
import argparse
import html
import json
import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "reader"))
CHROMIUM = "/usr/bin/chromium"
SKIP = 77


def expect(cond, msg):
    if not cond:
        raise AssertionError(msg)


def expect_eq(got, want, what):
    expect(got == want, f"{what}: got {got!r}, expected {want!r}")


def close(a, b):
    return a is not None and b is not None and abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(b)))


class Env:
    def __init__(self, args, name):
        self.tm = args.tidemark
        self.progs = args.progs
        self.pythonpath = args.pythonpath
        self.work = os.path.join(args.work, name)
        shutil.rmtree(self.work, ignore_errors=True)
        os.makedirs(self.work)
        self.profile = os.path.join(self.work, "chromium-profile")

    def path(self, name):
        return os.path.join(self.work, name)

    def tidemark(self, *args, status=0, timeout=900):
        p = subprocess.run([self.tm, *args], capture_output=True, text=True, timeout=timeout)
        expect(p.returncode == status,
               f"tidemark {' '.join(args)}: exit {p.returncode}, expected {status}\n{p.stderr}")
        if status == 2:
            lines = [l for l in p.stderr.splitlines() if l.strip()]
            expect(len(lines) == 1, f"one line on stderr, got {lines}")
        return p

    def json(self, *args, trace, status=0):
        return json.loads(self.tidemark(*args, "--json", trace, status=status).stdout)

    def run(self, argv, trace, extra=()):
        env = dict(os.environ, PYTHONPATH=self.pythonpath)
        p = subprocess.run([self.tm, "run", "-o", trace, *extra, "--", *argv], env=env,
                           capture_output=True, text=True, timeout=600)
        expect(p.returncode == 0, f"tidemark run {argv}: exit {p.returncode}\n{p.stderr}")

    def report(self, traces, name, status=0, extra=()):
        out = self.path(name)
        t0 = time.monotonic()
        self.tidemark("report", *traces, "-o", out, *extra, status=status)
        self.report_seconds = time.monotonic() - t0
        no_external_url(out)
        return out

    def chromium(self, page, hash_, extra):
        url = "file://" + os.path.abspath(page) + ("#" + hash_ if hash_ else "")
        cmd = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
               "--user-data-dir=" + self.profile, "--enable-logging=stderr", "--v=0",
               "--hide-scrollbars", "--window-size=1400,1800", "--virtual-time-budget=20000",
               *extra, url]
        t0 = time.monotonic()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        seconds = time.monotonic() - t0
        expect(p.returncode == 0, f"chromium: exit {p.returncode}\n{p.stderr[-2000:]}")
        console = [l for l in p.stderr.splitlines() if ":CONSOLE" in l]
        expect(not console, f"{page}#{hash_}: console messages: {console}")
        return p, seconds

    def load(self, page, hash_=""):
        """What the page shows for the state in hash_ (#tm-selftest)."""
        p, seconds = self.chromium(page, hash_, ["--dump-dom"])
        dom = p.stdout
        m = re.search(r'<div id="tm-errors"[^>]*>(.*?)</div>', dom, re.S)
        expect(m is not None, f"{page}: no #tm-errors element")
        expect(not html.unescape(m.group(1)).strip(), f"{page}#{hash_}: page errors: {m.group(1)}")
        m = re.search(r'<pre id="tm-selftest"[^>]*>(.*?)</pre>', dom, re.S)
        expect(m is not None, f"{page}#{hash_}: the page did not render (no #tm-selftest)")
        st = json.loads(html.unescape(m.group(1)))
        expect_eq(st["errors"], [], "errors the page caught")
        st["dom"] = dom
        st["seconds"] = seconds
        return st

    def drive(self, page, name, script, hash_=""):
        """The page with `script` run after it rendered: a copy of the page
        with one more script element, which uses the page's own elements and
        event handlers as a person's clicks would (synthetic DOM events)."""
        with open(page, encoding="utf-8") as f:
            text = f.read()
        copy = self.path(name + ".driven.html")
        with open(copy, "w", encoding="utf-8") as f:
            f.write(text.replace("</body>", "<script>\n" + DRIVER + script + "\n</script>\n</body>"))
        return self.load(copy, hash_)

    def shot(self, page, hash_, name):
        png = self.path(name + ".png")
        self.chromium(page, hash_, ["--screenshot=" + png])
        expect(os.path.getsize(png) > 1000, f"screenshot {png} is empty")
        return png


# Helpers for the driving scripts: mouse events at a point of an element.
DRIVER = r"""
function tmMouse(target, type, x, y) {
  var b = target.getBoundingClientRect();
  target.dispatchEvent(new MouseEvent(type, {bubbles: true, clientX: b.left + x, clientY: b.top + y}));
}
function tmCanvas(id) { return document.querySelector('#' + id + ' canvas'); }
function tmSet(id, value, ev) {
  var e = document.getElementById(id); e.value = value; e.dispatchEvent(new Event(ev || 'change'));
}
"""


def no_external_url(page):
    """Nothing in the page can make the browser fetch: no URL scheme, no
    protocol-relative reference, no element or CSS construct that loads."""
    with open(page, encoding="utf-8") as f:
        text = f.read()
    for pattern, what in [(r"(?i)\b(?:https?|ftp|wss?):", "a URL scheme"),
                          (r"(?i)\b(?:src|href|action|srcset|poster|data)\s*=\s*[\"']", "a loading attribute"),
                          (r"(?i)<(?:link|iframe|img|object|embed|base|audio|video|source)\b", "a loading element"),
                          (r"(?i)url\s*\(", "a CSS url()"), (r"(?i)@import", "a CSS @import"),
                          (r"\b(?:fetch|XMLHttpRequest|WebSocket|EventSource|importScripts)\b", "a network API"),
                          (r"\bimport\s*\(", "a dynamic import"),
                          (r"[\"'(]//[A-Za-z0-9]", "a protocol-relative reference")]:
        m = re.search(pattern, text)
        expect(m is None, f"{page}: {what}: ...{text[max(0, m.start() - 60):m.end() + 60]!r}..."
               if m else "")
    expect(text.count("<script") == 2, "two script elements: the data and the page's script")


def page_data(page):
    with open(page, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r'<script type="application/json" id="tm-data">(.*?)</script>', text, re.S)
    return json.loads(m.group(1))


# The regions table's columns and the regions --json value each shows.
COLUMNS = [
    ("region", lambda r: r["name"]),
    ("invocations", lambda r: r["invocations"]),
    ("allocs/inv", lambda r: r["own"]["allocs"]["mean"]),
    ("allocs/inv incl.", lambda r: r["incl"]["allocs"]["mean"]),
    ("net B/inv", lambda r: r["own"]["net_bytes"]["mean"]),
    ("net B/inv incl.", lambda r: r["incl"]["net_bytes"]["mean"]),
    ("kept B/inv", lambda r: r["own"]["kept_bytes"]["mean"]),
    ("kept B/inv incl.", lambda r: r["incl"]["kept_bytes"]["mean"]),
    ("peak B/inv incl.", lambda r: r["incl"]["peak_bytes"]["mean"]),
    ("grows B/inv", lambda r: r["kept_per_invocation"]),
    ("inv. keeping", lambda r: r["incl"]["invocations_keeping"]),
    ("escaped", lambda r: r["escaped_bytes"]),
    ("leaked at exit", lambda r: r["leaked_bytes"]),
    ("accumulates", lambda r: 1 if r["accumulates"] else 0),
]


def check_regions_table(env, st, trace):
    want = env.json("regions", trace=trace)["regions"]
    got = st["regions"]
    expect_eq(got["columns"], [c[0] for c in COLUMNS], "regions table columns")
    expect_eq(len(got["values"]), len(want), "regions table rows")
    by_name = {r["name"]: r for r in want}
    for row, text in zip(got["values"], got["rows"]):
        r = by_name.get(row[0])
        expect(r is not None, f"region {row[0]} is not in regions --json")
        for (col, get), v, shown in zip(COLUMNS[1:], row[1:], text[1:]):
            w = get(r)
            expect(close(v, w), f"regions table, {row[0]} {col}: {v} (shown {shown!r}), "
                   f"regions --json says {w}")
            expect(shown.strip() not in ("", "-", "NaN"), f"{row[0]} {col} shown as {shown!r}")
    return by_name


def check_views(env, page, trace, label):
    """Every view's totals against the other reports; a screenshot each."""
    leaks = env.json("leaks", trace=trace)
    peak = env.json("peak", trace=trace)
    summary = env.json("summary", trace=trace)
    st = env.load(page)
    expect_eq(st["view"], "leaked", "the first view")
    want = {
        "leaked": (leaks["leaked_bytes"], leaks["leaked_blocks"]),
        "peak": (peak["peak_bytes"], peak["peak_blocks"]),
        "allocated": (summary["bytes_allocated"], summary["alloc_calls"]),
    }
    shown = {}
    for view, (nbytes, blocks) in want.items():
        s = env.load(page, f"view={view}")
        expect_eq(s["view"], view, "view from the hash")
        expect_eq((s["shown"]["bytes"], s["shown"]["blocks"]), (nbytes, blocks),
                  f"{label}: {view} view totals")
        expect(s["shown"]["boxes"] > 1 or nbytes == 0, f"{view}: the flame graph drew no frame")
        shown[view] = s
        env.shot(page, f"view={view}", f"{label}.{view}")
    expect(len({v["shown"]["bytes"] for v in shown.values()}) > 1 or leaks["leaked_bytes"] == 0,
           "switching views changes the totals")
    # By count: the allocated view's boxes weigh blocks.
    env.shot(page, "view=allocated&measure=count", f"{label}.allocated-count")
    # Kept per region: kept --region's figures.
    regions = check_regions_table(env, st, trace)
    for name, r in regions.items():
        k = env.json("kept", "--region", name, trace=trace)
        s = env.load(page, f"view=kept&region={name}")
        expect_eq((s["shown"]["bytes"], s["shown"]["blocks"]), (k["kept_bytes"], k["kept_blocks"]),
                  f"{label}: kept view of region {name} (kept --region)")
        expect_eq(s["shown"]["bytes"], r["incl"]["kept_bytes"]["total"],
                  f"{label}: kept view of {name} vs regions incl.kept_bytes")
        expect(f"region {name}" in s["title"], f"kept view title names the region: {s['title']}")
    if regions:
        env.shot(page, f"view=kept&region={next(iter(regions))}", f"{label}.kept")
    # The whole run as the time range: every block alive at the end.
    s = env.load(page, f"view=range&range=0,{summary['duration'] + 1}")
    expect_eq((s["shown"]["bytes"], s["shown"]["blocks"]),
              (summary["leaked_bytes"], summary["leaked_blocks"]),
              f"{label}: time range over the whole run = live at exit")
    env.shot(page, f"view=range&range=0,{summary['duration'] / 2}", f"{label}.range")
    return st, shown


def case_c_leak(args):
    # tests/tracer/progs/kept.c: cb keeps 48 B in each of 10 calls and late
    # 32 B in 3 of 6; test (around cb) keeps cb's 480 B inclusively.
    env = Env(args, "c_leak")
    trace = env.path("kept.trace")
    env.run([os.path.join(env.progs, "kept")], trace)
    page = env.report([trace], "kept.html")
    st, shown = check_views(env, page, trace, "c")
    leaked = shown["leaked"]
    for fn in ("cb", "late", "main"):
        expect(fn in leaked["shown"]["functions"], f"leaked view lacks {fn}: {leaked['shown']['functions']}")
    expect("copy" not in leaked["shown"]["functions"], "copy's blocks are freed: not leaked")
    expect_eq(st["kinds"].get("cb"), "native (own code)", "cb's kind")
    expect_eq(st["kinds"].get("__libc_start_main"), "native (library)", "libc's kind")
    # Search: the boxes matching "cb" hold the 480 B cb leaked.
    s = env.load(page, "view=leaked&q=cb")
    expect_eq(s["shown"]["match"], 480, "search 'cb' in the leaked view")
    expect("matching &quot;cb&quot;" in s["dom"] or 'matching "cb"' in s["dom"], "the match line")
    env.shot(page, "view=leaked&q=cb", "c.search")
    # Sorting: by allocs/inv incl. (column 3), largest first.
    s = env.load(page, "sort=-3")
    col = [float(v[3]) for v in s["regions"]["values"]]
    expect_eq(col, sorted(col, reverse=True), "rows sorted by allocs/inv incl.")
    expect_eq(s["regions"]["values"][0][0], "test", "test has the most allocations (inclusive)")
    s = env.load(page, "sort=0")
    expect_eq([v[0] for v in s["regions"]["values"]], ["cb", "copy", "late", "result", "test"],
              "rows sorted by name")
    # A region row selected: the kept view of that region, its row marked.
    s = env.load(page, "view=kept&region=late")
    expect('<tr class="sel" data-region="late">' in s["dom"], "the selected region's row is marked")
    # Zoom into a frame: only its subtree is laid out below the chain.
    whole = page_data(page)
    d, tree = whole["traces"][0], whole["tree"]
    names = {i: tree["strs"][tree["frames"][5 * i + 1]] for i in range(len(tree["frames"]) // 5)}
    node_cb = [n + 1 for n in range(len(tree["nodes"]) // 2) if names[tree["nodes"][2 * n + 1]] == "cb"]
    s = env.load(page, f"view=leaked&interp=1&zoom={node_cb[0]}")
    expect_eq(s["shown"]["zoom"], node_cb[0], "zoomed node")
    expect(s["shown"]["boxes"] < leaked["shown"]["boxes"], "zoomed: fewer boxes")
    env.shot(page, f"view=leaked&zoom={node_cb[0]}", "c.zoom")
    bands = {b[2] for b in d["timeline"]["bands"]}
    expect_eq(bands, {"test", "copy", "result", "late"}, "top-level region bands")
    expect(st["timeline"]["bands"] >= 4, f"region bands: {st['timeline']}")
    expect(st["timeline"]["heap_points"] > 100, f"the heap curve has its steps: {st['timeline']}")
    drive_c(env, page)


def drive_c(env, page):
    """The page's controls used as a person would (see Env.drive)."""
    leaks = env.json("leaks", trace=env.path("kept.trace"))
    peak = env.json("peak", trace=env.path("kept.trace"))
    # The view list: leaked -> peak.
    s = env.drive(page, "select-view", "tmSet('tm-view', 'peak');")
    expect_eq((s["view"], s["shown"]["bytes"]), ("peak", peak["peak_bytes"]), "view list: peak")
    s = env.drive(page, "select-back", "tmSet('tm-view', 'peak'); tmSet('tm-view', 'leaked');")
    expect_eq(s["shown"]["bytes"], leaks["leaked_bytes"], "view list: back to leaked")
    # A click on a row of the regions table selects the region's kept view.
    s = env.drive(page, "row-click",
                  "document.querySelector('#tm-regions tr[data-region=late] td').click();")
    expect_eq((s["view"], s["shown"]["bytes"], s["shown"]["blocks"]), ("kept", 96, 3),
              "row click: late kept 3 x 32 B")
    # A click on a heading sorts by it; a second click reverses.
    s = env.drive(page, "sort-click", "document.querySelectorAll('#tm-regions th')[0].click();")
    expect_eq([v[0] for v in s["regions"]["values"]], ["cb", "copy", "late", "result", "test"],
              "heading click: by name")
    s = env.drive(page, "sort-twice", "document.querySelectorAll('#tm-regions th')[0].click();"
                  "document.querySelectorAll('#tm-regions th')[0].click();")
    expect_eq([v[0] for v in s["regions"]["values"]], ["test", "result", "late", "copy", "cb"],
              "heading clicked twice: reversed")
    # The search box.
    s = env.drive(page, "search", "tmSet('tm-search', 'late');")
    expect_eq(s["shown"]["match"], 96, "search box: late leaked 96 B")
    # A click on the flame graph's fourth row (main, the whole width) zooms
    # into main; a click on it again goes back up.
    s = env.drive(page, "zoom", "tmMouse(tmCanvas('tm-flame-graph'), 'click', 5, 17 * 4 + 8);")
    expect(s["shown"]["zoom"] > 0, f"flame click zooms: {s['shown']}")
    expect("main" in s["dom"] and "reset zoom" in s["dom"], "zoomed: the reset button")
    zoom = s["shown"]["zoom"]
    s = env.drive(page, "unzoom", "tmMouse(tmCanvas('tm-flame-graph'), 'click', 5, 17 * 4 + 8);"
                  "tmMouse(tmCanvas('tm-flame-graph'), 'click', 5, 17 * 4 + 8);")
    expect(s["shown"]["zoom"] != zoom, f"a second click goes back up: {s['shown']['zoom']}")
    # A tooltip on hovering a frame.
    s = env.drive(page, "hover", "tmMouse(tmCanvas('tm-flame-graph'), 'mousemove', 5, 17 * 4 + 8);")
    m = re.search(r'<div id="tm-tip"[^>]*>(.*?)</div>\s*(?:<pre|<script|</body>|$)', s["dom"], re.S)
    tip = re.sub(r"<[^>]+>", " ", m.group(1)) if m else ""
    expect("main" in tip and "576 B in 13 blocks" in tip and "100.0%" in tip,
           f"tooltip over main: {tip!r}")
    # Dragging across the whole timeline picks the whole run: what is still
    # alive at its end is what leaked.
    s = env.drive(page, "drag", """
        var c = tmCanvas('tm-timeline'), w = c.getBoundingClientRect().width;
        tmMouse(c, 'mousedown', 64, 50); tmMouse(c, 'mousemove', w - 64, 50);
        tmMouse(c, 'mouseup', w - 64, 50);""")
    expect_eq((s["view"], s["shown"]["bytes"], s["shown"]["blocks"]), ("range", 576, 13),
              "timeline drag over the whole run")
    # Dragging over the first half: less is shown than the whole run has.
    s = env.drive(page, "drag-half", """
        var c = tmCanvas('tm-timeline'), w = c.getBoundingClientRect().width;
        tmMouse(c, 'mousedown', 64, 50); tmMouse(c, 'mousemove', 64 + (w - 128) * 0.5, 50);
        tmMouse(c, 'mouseup', 64 + (w - 128) * 0.5, 50);""")
    expect(s["view"] == "range" and s["title"].startswith("allocated between 0.0 ms"),
           f"timeline drag over the first half: {s['title']}")


def case_python_leak(args):
    # pyleak.py: leak_in_python keeps 100 B in each of 30 "step" calls.
    env = Env(args, "python_leak")
    trace = env.path("py.trace")
    env.run([sys.executable, os.path.join(HERE, "pyleak.py"), "30"], trace,
            extra=("--python-stacks",))
    page = env.report([trace], "py.html")
    st, shown = check_views(env, page, trace, "python")
    fns = shown["leaked"]["shown"]["functions"]
    for fn in ("leak_in_python", "step", "<module>"):
        expect(fn in fns, f"leaked view lacks the Python frame {fn}: {fns}")
    expect_eq(st["kinds"].get("leak_in_python"), "Python (own code)", "leak_in_python's kind")
    k = st["kept"]["step"]
    expect(k["bytes"] >= 3000 and "leak_in_python" in k["functions"],
           f"step keeps leak_in_python's 30 x 100 B: {k}")
    # The interpreter's frames: hidden by default (Python frames called
    # through different C paths merge), shown with the checkbox.
    s = env.load(page, "view=leaked&interp=1")
    expect("PyEval_EvalCode" in s["shown"]["functions"], f"interp=1 shows them: {s['shown']['functions']}")
    interp = [f for f, k in s["kinds"].items() if k == "interpreter" and f in s["shown"]["functions"]]
    expect("PyEval_EvalCode" in interp, f"PyEval_EvalCode is the interpreter's: {interp}")
    expect(not [f for f in fns if f in interp], f"interpreter frames hidden: {fns}")
    expect_eq((s["shown"]["bytes"], s["shown"]["blocks"]),
              (shown["leaked"]["shown"]["bytes"], shown["leaked"]["shown"]["blocks"]),
              "the same totals with the interpreter's frames")
    expect(s["shown"]["boxes"] > shown["leaked"]["shown"]["boxes"], "more boxes with them")
    env.shot(page, "view=leaked&interp=1", "python.leaked-interp")
    s = env.drive(page, "interp-box", "document.getElementById('tm-interp').click();")
    expect("PyEval_EvalCode" in s["shown"]["functions"], "the checkbox shows them")
    s = env.load(page, "view=leaked&q=leak_in_python")
    expect(s["shown"]["match"] >= 3000, f"search leak_in_python: {s['shown']['match']}")


def case_sweep(args):
    # pyleak.py at N = 10, 20, 40: leaked bytes barely grow (100 B a step)
    # but region step keeps 100 B per invocation: the sweep says FAIL.
    env = Env(args, "sweep")
    traces = []
    for n in (20, 10, 40):
        t = env.path(f"py.{n}.trace")
        env.run([sys.executable, os.path.join(HERE, "pyleak.py"), str(n)], t)
        traces.append(t)
    sweep = json.loads(env.tidemark("sweep", "--json", "-o", env.path("sweep"), *traces,
                                    status=3).stdout)
    page = env.report(traces, "sweep.html")
    d = page_data(page)["sweep"]
    expect_eq(d["verdict"], sweep["verdict"], "verdict as tidemark sweep")
    expect_eq([c["name"] for c in d["criteria"]], [c["name"] for c in sweep["criteria"]],
              "criteria as tidemark sweep")
    for a, b in zip(d["criteria"], sweep["criteria"]):
        for key in ("slope", "fitted_low", "fitted_high", "threshold"):
            expect(close(a[key], b[key]), f"{a['name']} {key}: {a[key]} vs sweep's {b[key]}")
        expect_eq(a["verdict"], b["verdict"], f"{a['name']} verdict")
        expect(all(close(x, y) for x, y in zip(a["values"], b["values"])),
               f"{a['name']} values {a['values']} vs sweep's {b['values']}")
        expect_eq(a["explanation"], b["explanation"], f"{a['name']} explanation")
    expect_eq(d["reasons"], sweep["reasons"], "reasons")
    expect_eq(d["values"], [10, 20, 40], "the parameter's values, in order")
    st = env.load(page)
    expect_eq(st["trace"], 2, "the trace of the largest value opens first")
    expect_eq(st["sweep"], "FAIL", "the sweep's verdict in the page")
    expect('id="tm-sweep-verdict">FAIL<' in st["dom"], "verdict shown")
    expect_eq(len(re.findall(r'class="run(?: sel)?"', st["dom"])), len(d["criteria"]) + 2 + 3,
              "one chart per criterion, heap and RSS peaks, one small timeline per trace")
    env.shot(page, "", "sweep")
    # Each trace's own view: the third (N = 40) leaked 40 x 100 B.
    leaks = env.json("leaks", trace=traces[2])
    s = env.load(page, "trace=2")
    expect_eq((s["trace"], s["shown"]["bytes"]), (2, leaks["leaked_bytes"]), "trace 2's leaked view")
    # A click on a trace's small timeline opens it.
    s = env.drive(page, "run-click", "document.querySelectorAll('.runs')[1].children[0].click();")
    expect_eq(s["trace"], 1, "a click on the first small timeline (N = 10) opens trace 1")
    # Two traces: no verdict, the page says why.
    page2 = env.report(traces[:2], "two.html")
    st = env.load(page2)
    expect(st["sweep"] is None and "at least 3" in st["dom"], "two traces: no verdict, and why")


def case_maps(args):
    # tests/tracer/progs/maps.c: anonymous maps, 53248 B in 3 ranges at
    # the end, peak 94208 B: in the summary and as a curve on the timeline.
    env = Env(args, "maps")
    trace = env.path("maps.trace")
    env.run([os.path.join(env.progs, "maps")], trace)
    summary = env.json("summary", trace=trace)
    page = env.report([trace], "maps.html")
    st = env.load(page)
    d = page_data(page)["traces"][0]["summary"]
    for key in ("maps_bytes", "maps_peak_bytes", "maps_count", "mmap_calls"):
        expect_eq(d[key], summary[key], f"page summary {key}")
    expect_eq((d["maps_bytes"], d["maps_peak_bytes"], d["maps_count"]), (53248, 94208, 3),
              "maps.c's figures")
    expect("52.0 KiB in 3 ranges at the end, peak 92.0 KiB" in st["dom"], "maps in the summary")
    expect(st["timeline"]["maps_points"] > 0, f"a maps curve: {st['timeline']}")
    expect("anonymous maps (mapped bytes)" in st["dom"], "the maps curve's legend")
    env.shot(page, "", "maps")


def case_burgers(args):
    # The seed workload, small: the Burgers benchmark at N = 41 with the
    # bridge (region burgers_rhs, one per callback invocation) and the
    # leaky right-hand side, which keeps memory in every call.
    env = Env(args, "burgers")
    bench = os.path.join(HERE, "..", "..", "samples", "burgers", "bench.py")
    trace = env.path("burgers.41.trace")
    env.run([sys.executable, bench, "--resolutions", "41", "--runs", "1",
             "--impls", "scipy_dopri5_bridge", "--leaky-rhs"], trace, extra=("--python-stacks",))
    page = env.report([trace], "burgers.html")
    size = os.path.getsize(page)
    expect(size <= 5 * 2**20, f"page size {size}")
    st = env.load(page, "view=kept&region=burgers_rhs_leaky")
    regions = check_regions_table(env, st, trace)
    k = env.json("kept", "--region", "burgers_rhs_leaky", trace=trace)
    expect_eq((st["shown"]["bytes"], st["shown"]["blocks"]), (k["kept_bytes"], k["kept_blocks"]),
              "kept view of burgers_rhs_leaky")
    expect(any(f.endswith("burgers_rhs_leaky") for f in st["shown"]["functions"]),
           f"the leaky callback's Python frame: {st['shown']['functions']}")
    expect(regions["burgers_rhs_leaky"]["accumulates"], "the leaky RHS accumulates")
    row = [v for v in st["regions"]["values"] if v[0] == "burgers_rhs_leaky"][0]
    expect_eq(row[-1], "1", "accumulates, in the table")
    env.shot(page, "view=kept&region=burgers_rhs_leaky", "burgers.kept")
    env.shot(page, "view=allocated", "burgers.allocated")
    print(f"Burgers N=41: page {size / 1024:.0f} KiB, rendered in {st['render_ms']:.0f} ms")


def case_cli(args):
    # Bad usage and unreadable traces: exit 2, one line; no Chromium needed.
    env = Env(args, "cli")
    trace = env.path("kept.trace")
    env.run([os.path.join(env.progs, "kept")], trace)
    for argv, needle in [((trace,), "-o FILE.html is required"),
                         ((), "expected 1 to 64 TRACEs"),
                         ((trace, "-o", env.path("x.html"), "--param", "a=b"), "--param wants a name"),
                         ((env.path("missing.trace"), "-o", env.path("y.html")), "missing.trace"),
                         ((trace, "-o", env.path("z.html"), "--json"), "")]:
        p = env.tidemark("report", *argv, status=2)
        expect(needle in p.stderr, f"report {argv}: {p.stderr!r} lacks {needle!r}")
    expect(not os.path.exists(env.path("y.html")), "no page for a trace that cannot be opened")
    # -o creates its folders; the title is the page's, escaped.
    out = env.path("a/b/page.html")
    p = env.tidemark("report", trace, "-o", out, "--title", "<N & M>")
    expect_eq(p.stdout, f"report: {out}\n", "what report prints")
    with open(out, encoding="utf-8") as f:
        text = f.read()
    expect("<title>&lt;N &amp; M></title>" in text, "the title, escaped")
    no_external_url(out)


def case_empty(args):
    import tracegen as tg
    env = Env(args, "empty")
    # A complete trace with no event at all.
    trace = env.path("empty.trace")
    with open(trace, "wb") as f:
        f.write(tg.header() + tg.block(0, tg.Records().end().b))
    page = env.report([trace], "empty.html")
    st = env.load(page)
    expect_eq((st["shown"]["bytes"], st["shown"]["blocks"], st["regions"]["rows"]), (0, 0, []),
              "empty trace")
    expect_eq(st["error"], None, "a complete empty trace is not damaged")
    for view in ("leaked", "peak", "allocated", "kept", "range"):
        env.load(page, f"view={view}")
        env.shot(page, f"view={view}", f"empty.{view}")
    # A header and nothing else: truncated, exit 2, the page still written.
    head = env.path("header-only.trace")
    with open(head, "wb") as f:
        f.write(tg.header())
    page = env.report([head], "header-only.html", status=2)
    st = env.load(page)
    expect(st["banner"] and st["error"], f"header only: the error shown: {st['error']}")


def partial_error(env, trace):
    """The one line `summary` says about a damaged trace, without its
    "tidemark: PATH: " prefix."""
    p = env.tidemark("summary", trace, status=2)
    return p.stderr.strip().split(": ", 2)[-1]


def case_damaged(args):
    env = Env(args, "damaged")
    trace = env.path("py.trace")
    env.run([sys.executable, os.path.join(HERE, "pyleak.py"), "200"], trace,
            extra=("--python-stacks",))
    full = env.json("summary", trace=trace)
    cut = env.path("cut.trace")
    with open(trace, "rb") as f:
        data = f.read()
    import tracegen as tg
    blocks = tg.parse_blocks(data)
    expect(len(blocks) >= 2, f"the trace has several blocks: {len(blocks)}")
    with open(cut, "wb") as f:
        f.write(data[: blocks[1][0] + 30])      # inside the second block
    partial = env.json("summary", trace=cut, status=2)
    page = env.report([cut], "cut.html", status=2)
    st = env.load(page)
    expect(st["banner"], "the damage is said on the page")
    expect(st["error"] and partial_error(env, cut).startswith(st["error"]),
           f"the reader's error on the page: {st['error']}")
    s = env.load(page, "view=allocated")
    expect_eq(s["shown"]["blocks"], partial["alloc_calls"], "what could be read: allocations")
    got = partial["alloc_calls"] + partial["free_calls"]
    expect(0 < got < full["alloc_calls"] + full["free_calls"],
           f"the cut trace is partial: {got} events of {full['alloc_calls'] + full['free_calls']}")
    s = env.load(page, "view=peak")
    expect_eq(s["shown"]["bytes"], partial["peak_bytes"], "what could be read: the peak")
    env.shot(page, "", "damaged")
    # A byte flipped in the middle: the block's checksum fails.
    bad = env.path("flipped.trace")
    mid = len(data) // 2
    with open(bad, "wb") as f:
        f.write(data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:])
    page = env.report([bad], "flipped.html", status=2)
    st = env.load(page)
    expect(st["banner"] and st["error"], f"flipped byte: the error shown: {st['error']}")
    # In a sweep, the damaged trace is one of several: still one page.
    page = env.report([trace, cut], "both.html", status=2)
    st = env.load(page, "trace=1")
    expect(st["banner"], "the damaged trace's banner in a two-trace page")


def case_large(args):
    # tests/tracer/progs/flood.c: 5,000,064 malloc/free pairs, 10 million
    # events; 7 blocks of 24 B leak.
    env = Env(args, "large")
    trace = env.path("flood.trace")
    env.run([os.path.join(env.progs, "flood")], trace)
    summary = env.json("summary", trace=trace)
    events = summary["alloc_calls"] + summary["free_calls"]
    expect(events >= 10_000_000, f"10 million events: {events}")
    page = env.report([trace], "flood.html")
    size = os.path.getsize(page)
    st = env.load(page)
    expect_eq((st["shown"]["bytes"], st["shown"]["blocks"]), (168, 7), "flood leaks 7 x 24 B")
    s = env.load(page, "view=allocated")
    expect_eq(s["shown"]["blocks"], summary["alloc_calls"], "allocated view: every allocation")
    check_regions_table(env, st, trace)
    _, base = env.chromium(os.path.join(HERE, "blank.html"), "", ["--dump-dom"])
    env.shot(page, "view=allocated", "flood.allocated")
    print(f"10M-event trace: {events} events, trace {os.path.getsize(trace) / 2**20:.1f} MiB, "
          f"report {size / 2**20:.2f} MiB written in {env.report_seconds:.1f} s, "
          f"rendered in {st['render_ms']:.0f} ms (performance.now() at the end of the first render); "
          f"Chromium's whole run {st['seconds']:.2f} s, a blank page's {base:.2f} s")
    expect(st["render_ms"] < 5000, f"the page renders in seconds: {st['render_ms']} ms")
    expect(size <= 5 * 2**20, f"report of 10M events: {size} bytes, at most 5 MiB")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("case")
    ap.add_argument("--tidemark", required=True)
    ap.add_argument("--progs", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--pythonpath", required=True)
    args = ap.parse_args()
    if args.case != "cli" and not os.access(CHROMIUM, os.X_OK):
        print(f"SKIP: {CHROMIUM} is not installed (setup.sh installs Debian's chromium)")
        return SKIP
    globals()["case_" + args.case](args)
    print(f"report.{args.case}: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
