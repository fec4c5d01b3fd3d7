#!/usr/bin/python3
"""mkman.py --tidemark BIN --guide USER-GUIDE.md --preload P --python D --doc D -o OUT

Writes the tidemark(1) man page at build time from what the built binary
says about itself (`tidemark --help`, `--version` and every command's
`--help`, verbatim) and from the user guide's table of environment
variables, so the page cannot drift from the program.  --preload, --python
and --doc are the install paths relative to the prefix, for FILES.
"""
import argparse
import os
import re
import subprocess
import sys


def run(*args):
    out = subprocess.run(args, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"mkman: {' '.join(args)} exited {out.returncode}: {out.stderr.strip()}")
    return out.stdout


def esc(text):
    """Roff-escaped text: backslashes, ASCII hyphens (options must stay
    copyable), and lines that would read as requests."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line[:1] in (".", "'") else line
                     for line in text.split("\n"))


def inline(md):
    """A markdown table cell as roff: `code` in bold."""
    return re.sub(r"`([^`]*)`", lambda m: "\\fB" + m.group(1) + "\\fR", esc(md))


def parse_top_help(text):
    """(description, [(command, summary)], closing lines) of `tidemark --help`."""
    blocks = text.strip("\n").split("\n\n")
    desc = " ".join(blocks[1].split())
    commands, closing = [], []
    for block in blocks[2:]:
        lines = block.split("\n")
        if lines[0] == "commands:":
            commands = [tuple(re.match(r"  (\S+)\s+(.*)", l).groups()) for l in lines[1:]]
        else:
            closing.append(block)
    if not commands:
        sys.exit("mkman: no 'commands:' list in tidemark --help")
    return desc, commands, closing


def environment(guide):
    """The rows of the user guide's `| variable | default | meaning |` table."""
    rows, inside = [], False
    for line in open(guide, encoding="utf-8"):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:3] == ["variable", "default", "meaning"]:
            inside = True
        elif inside and line.startswith("|"):
            if not set(cells[0]) <= set("-: "):
                rows.append(cells)
        elif inside:
            break
    if not rows:
        sys.exit(f"mkman: no '| variable | default | meaning |' table in {guide}")
    return rows


def page(args):
    version = run(args.tidemark, "--version").split()[1]
    desc, commands, closing = parse_top_help(run(args.tidemark, "--help"))
    name_line = desc[0].lower() + desc[1:].rstrip(".")
    out = [f'.TH TIDEMARK 1 "" "tidemark {version}" "User Commands"',
           ".SH NAME", f"tidemark \\- {esc(name_line)}",
           ".SH SYNOPSIS",
           ".B tidemark\n.I COMMAND\n.RI [ ARGS ...]",
           ".br\n.B tidemark\n.BR \\-\\-help \" | \" \\-\\-version",
           ".SH DESCRIPTION", esc(desc)]
    exit_status = []
    for block in closing:
        head, _, rest = block.partition("Exit status:")
        if head.strip():
            out += [".PP", esc(" ".join(head.split()))]
        if rest:
            exit_status.append(" ".join(rest.split()))
    out.append(".SH COMMANDS")
    for cmd, summary in commands:
        out += [f".SS {esc(cmd)}", esc(summary), ".PP\n.RS 4\n.nf",
                esc(run(args.tidemark, cmd, "--help").rstrip("\n")), ".fi\n.RE"]
    out.append(".SH ENVIRONMENT")
    for var, default, meaning in environment(args.guide):
        out += [".TP", inline(var) + (f" (default {inline(default)})"
                                      if default.strip("`") not in ("", "unset") else ""),
                inline(meaning)]
    if exit_status:
        out += [".SH EXIT STATUS", esc(" ".join(exit_status))]
    prefix = "\\fIPREFIX\\fR/"
    out += [".SH FILES",
            "\\fIPREFIX\\fR is the directory above the one holding the \\fBtidemark\\fR binary;"
            " a built tree uses its own lib/ and python/ instead.",
            ".TP", prefix + esc(args.preload),
            "the preload that \\fBtidemark run\\fR puts in LD_PRELOAD",
            ".TP", prefix + esc(args.python) + "/tidemark",
            "the Python package (regions, marks, the callback bridge, the solvers)",
            ".TP", prefix + esc(args.doc),
            "the user guide, the trace format and the architecture",
            ".SH SEE ALSO", ".BR heaptrack (1),", ".BR valgrind (1)"]
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[1])
    for opt in ("--tidemark", "--guide", "--preload", "--python", "--doc", "-o"):
        ap.add_argument(opt, required=True)
    args = ap.parse_args()
    text = page(args)
    os.makedirs(os.path.dirname(os.path.abspath(args.o)), exist_ok=True)
    with open(args.o, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
