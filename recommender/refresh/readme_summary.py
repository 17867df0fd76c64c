"""The README quotes what a first ``make run`` prints; this rewrites the quote from a real run.

    python -m recommender.refresh.readme_summary

builds the committed sample into a throwaway embedded server (about a minute), runs
``python -m recommender run`` on it as a newcomer would, and replaces each line of the
README's quote by the line of the same label in the output. Lines the quote elides
(``…``) stay elided. ``tests/test_readme_summary.py`` fails when the quote's counts
drift from what a build gives.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

from recommender.refresh import generations
from recommender.warehouse.dbt import LIVE_EXPORT
from recommender.warehouse.targets import PROJECT_ROOT, throwaway_warehouse

README = PROJECT_ROOT / "README.md"
# the README's fenced block that quotes the summary
QUOTE = re.compile(r"```\n(?=refresh: )(.*?netflix_warehouse built from .*?\n)```", re.S)
BATCH_ID = re.compile(r"\b(users|viewing_events|ratings)-([0-9a-f]{4})[0-9a-f]+")
# figures that change from run to run or machine to machine: times, generation and run ids, addresses
VOLATILE = re.compile(r"\d+(\.\d+)? s\b|\b(gen|run)-\d{8}T\d{6}-[0-9a-f]+|postgresql://\S+")
# lines that depend on the simulated cohort, whose size the test fixtures choose
COHORT = re.compile(
    r"^(core\.(users|viewing_events|ratings)|marts\.(ml_interactions|user_activity_summary|user_recommendations)"
    r"|app\.\S+|simulation: \S+|recommender: \S+)$"
)


def label(line: str) -> str:
    """What a line reports: its first word, and the next one when the first ends with a colon;
    for dbt's line of a node (``12:00:00  154 of 160 PASS name ...``), the node's name."""
    words = line.split()
    if not words:
        return ""
    if re.fullmatch(r"\d\d:\d\d:\d\d", words[0]) and len(words) > 5:
        return words[5]
    return " ".join(words[:2]) if words[0].endswith(":") and len(words) > 1 else words[0]


def quoted(line: str) -> str:
    """A line as the README quotes it: no local path, batch ids shortened."""
    return BATCH_ID.sub(r"\1-\2…", line.replace(str(PROJECT_ROOT), "/…"))


def _quoted_block(readme: str) -> re.Match[str]:
    match = QUOTE.search(readme)
    if match is None:
        raise LookupError("README.md has no fenced block quoting `make run`'s summary")
    return match


def quote(readme: str) -> list[str]:
    return _quoted_block(readme).group(1).splitlines()


def rewrite(readme: str, output: str) -> str:
    """``readme`` with each quoted line replaced by the output's line of the same label."""
    # the address stays the quote's: the run's is a throwaway server's
    lines = {label(line): quoted(line) for line in output.splitlines() if line.strip() and "://" not in line}
    match = _quoted_block(readme)
    fresh = [lines.get(label(line), line) if "…" not in label(line) else line for line in match.group(1).splitlines()]
    return readme[: match.start(1)] + "\n".join(fresh) + "\n" + readme[match.end(1) :]


def _figures(lines: list[str]) -> dict[str, str]:
    """label → line, for the lines a build of the sample fixes whatever the cohort, volatile parts masked."""
    return {
        label(line): " ".join(VOLATILE.sub("#", quoted(line)).split())
        for line in lines
        if line.startswith("  ") and not COHORT.match(label(line)) and "…" not in line
    }


def drift(readme: str, output: str) -> list[str]:
    """The quoted lines whose figures differ from ``output``'s (times, ids and the cohort aside)."""
    found = _figures(output.splitlines())
    return [
        f"README: {line!r}, a build: {found.get(name)!r}"
        for name, line in _figures(quote(readme)).items()
        if found.get(name) != line
    ]


def main() -> int:
    # a run relinks the live export to its own copy: put back the link of the warehouse people read
    live = LIVE_EXPORT.readlink() if LIVE_EXPORT.is_symlink() else None
    with throwaway_warehouse("netflix_readme") as target:
        try:
            run = subprocess.run(
                [sys.executable, "-m", "recommender", "run"],
                cwd=PROJECT_ROOT,
                env={**os.environ, **target.env()},
                text=True,
                stdout=subprocess.PIPE,
                check=True,
            )
        finally:
            shutil.rmtree(generations.export_copies(generations.EXPORTS_DIR, target), ignore_errors=True)
            if live is not None:
                LIVE_EXPORT.unlink(missing_ok=True)
                LIVE_EXPORT.symlink_to(live)
    README.write_text(rewrite(README.read_text(), run.stdout))
    print(f"{README}: the summary quote now holds the figures of this run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
