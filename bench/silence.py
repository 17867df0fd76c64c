"""How long a command stays silent: run it, timestamp each line it prints, report the longest gap and where it was.

    python bench/silence.py [--quiet] -- make run
    python bench/silence.py -- python -m recommender run

The command's stdout and stderr go to one pipe, as in a log file (not a terminal: the
command's output is what a log would hold, buffering included). A carriage return ends a
line too, so a progress bar redrawn in place counts as output. Each line is echoed with
its time since the start (unless ``--quiet``). Prints `name: value unit` lines: the
longest silence (the target is at most 10 s), the lines before and after it, the whole
run's time, its line count and the command's exit status (this script exits with it).
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import subprocess
import sys
import time

LINE_END = re.compile(rb"[\r\n]")


def timed_lines(command: list[str], echo: bool) -> tuple[list[tuple[float, str]], int]:
    """(seconds since start, text) of every non-empty line ``command`` printed, and its exit status."""
    started = time.perf_counter()
    lines: list[tuple[float, str]] = []
    pending = b""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0) as child:
        while chunk := os.read(child.stdout.fileno(), 65536):
            at = time.perf_counter() - started
            *complete, pending = LINE_END.split(pending + chunk)
            for raw in complete:
                if text := raw.decode(errors="replace").rstrip():
                    lines.append((at, text))
                    if echo:
                        print(f"[{at:7.1f}] {text}", flush=True)
        status = child.wait()
    if pending.strip():
        lines.append((time.perf_counter() - started, pending.decode(errors="replace").rstrip()))
    lines.append((time.perf_counter() - started, f"(exit {status})"))
    return lines, status


def longest_silence(lines: list[tuple[float, str]]) -> tuple[float, str, str]:
    """The longest gap between consecutive lines (the start counts as a line), with the lines around it."""
    marks = [(0.0, "(start)"), *lines]
    gap, before, after = max(
        ((b[0] - a[0], a[1], b[1]) for a, b in itertools.pairwise(marks)), key=lambda found: found[0]
    )
    return gap, before, after


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quiet", action="store_true", help="do not echo the command's lines")
    parser.add_argument("command", nargs="+", help="the command and its arguments (after --)")
    args = parser.parse_args()
    lines, status = timed_lines(args.command, echo=not args.quiet)
    gap, before, after = longest_silence(lines)
    print(f"longest_silence: {gap:.1f} s")
    print(f"silent_after: {before[:160]}")
    print(f"silent_until: {after[:160]}")
    print(f"total: {lines[-1][0]:.1f} s")
    print(f"lines: {len(lines) - 1} lines")
    print(f"exit_status: {status}")
    return status


if __name__ == "__main__":
    sys.exit(main())
