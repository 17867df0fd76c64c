"""The catalogue export: find its six files, check them, hand them to ``dbt seed``.

A folder may hold the files under their original Kaggle names
(``Best Movies Netflix.csv``) or under their seed names (``raw_best_movies.csv``).

The check and the loader agree: the check reads every file the way ``dbt seed``
does, so a file it passes loads, and a file that would fail the load it refuses.
``dbt seed`` reads a file with agate, that is Python's ``csv`` module (default
dialect, default field size limit) on the file decoded as strict UTF-8 with one
leading byte-order mark skipped and CRLF and CR read as LF; it fails on a header
that does not match the declared columns (``macros/assert_seed_columns.sql``),
on a record with more fields than the header, on a NUL character (PostgreSQL
text cannot hold one), and on a value its declared type does not accept, once
blank and ``null`` values are read as null. The check copies the typed values,
as read, with ``COPY`` into a temporary table of the declared types, in a
transaction that is rolled back; for a file that fails, it casts each value as
``dbt seed`` does to name every bad one. Nothing is written.

The check also refuses what ``dbt seed`` would load wrongly instead of failing:
a record with fewer fields than the header or a blank line (loaded with nulls),
and quotes the csv module reads leniently, the way an unbalanced quote shows: a
quoted field followed by more text (read into the field, newlines and the next
records included) or left open at the end of the file (the rest of the file
read into it). The check reads with ``strict=True`` where dbt does not; nothing
else differs.

Every problem is named by file, line and column; a value is shown as an excerpt
of at most 60 characters with its full length; at most 20 problems are listed,
with a count of the rest.
"""

from __future__ import annotations

import codecs
import csv
import operator
import shutil
from pathlib import Path

import yaml
from psycopg2.extensions import connection

from recommender.errors import BadInputError
from recommender.warehouse.export_csv import (
    LOADER_FIELD_LIMIT,
    MAX_PROBLEMS_SHOWN,
    FileReport,
    QuoteError,
    SeedSpec,
    check_header,
    check_record,
    decode,
    records,
    unlimited_csv_fields,
)
from recommender.warehouse.export_types import check_types
from recommender.warehouse.targets import PROJECT_ROOT

SEEDS_YAML = PROJECT_ROOT / "models" / "staging" / "netflix" / "_netflix__seeds.yml"
SAMPLE_DIR = PROJECT_ROOT / "seeds" / "netflix"
ORIGINAL_NAMES = {
    "raw_titles": "raw_titles.csv",
    "raw_credits": "raw_credits.csv",
    "raw_best_movies": "Best Movies Netflix.csv",
    "raw_best_shows": "Best Shows Netflix.csv",
    "raw_best_movie_by_year": "Best Movie by Year Netflix.csv",
    "raw_best_show_by_year": "Best Show by Year Netflix.csv",
}


class ExportError(BadInputError, ValueError):
    """The export cannot be loaded; the message names each file and what to fix."""


def seed_specs(path: Path = SEEDS_YAML) -> dict[str, SeedSpec]:
    seeds = yaml.safe_load(path.read_text(encoding="utf-8"))["seeds"]
    return {
        seed["name"]: SeedSpec(
            name=seed["name"],
            column_types=seed["config"]["column_types"],
            optional_columns=tuple(seed["config"].get("meta", {}).get("optional_columns", ())),
        )
        for seed in seeds
    }


def locate(folder: Path) -> dict[str, Path]:
    """Map each raw table to its file in ``folder``; original names win over seed names."""
    if not folder.is_dir():
        raise ExportError(f"{folder}: not a folder")
    found: dict[str, Path] = {}
    missing: list[str] = []
    for seed, original in ORIGINAL_NAMES.items():
        candidates = [folder / original, folder / f"{seed}.csv"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            missing.append(f"{original!r} (or {seed}.csv)")
        else:
            found[seed] = path
    if missing:
        raise ExportError(f"{folder}: missing export files: {', '.join(missing)}")
    return found


def check_file(conn: connection, spec: SeedSpec, path: Path) -> FileReport:
    """Read ``path`` as ``dbt seed`` would and check its values against ``spec``'s types; report every problem.

    The caller rolls the transaction back (the typed values are copied into a temporary table).
    """
    report = FileReport(f"{path.name} ({spec.name})")
    try:
        data = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        report.add(0, 0, None, lambda: f"cannot be read: {reason}")
        return report
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        report.add(1, 1, "1", "the file is UTF-16 (it starts with a UTF-16 byte-order mark): dbt seed reads UTF-8")
        return report
    text, suspicious = decode(data)
    del data
    with unlimited_csv_fields():
        rows = records(text)
        first = next(rows, None)
        if not check_header(spec, report, first):
            return report
        header: list[str] = first[1]  # type: ignore[index,assignment]
        typed = [
            (name, position)
            for position, name in enumerate(header, start=1)
            if spec.column_types[name].strip().lower() != "text"
        ]
        pick = operator.itemgetter(*(position - 1 for _, position in typed)) if typed else None
        width = len(header)
        lines: list[int] = []
        values: list[tuple[str, ...]] = []
        for line, record in rows:
            if isinstance(record, QuoteError):
                column = header[record.field] if record.field < width else str(record.field + 1)
                message = f"{record.message}; the rest of the file is not checked"
                report.add(record.line, record.field + 1, column, message)
                break
            report.rows += 1
            sound = (
                len(record) == width and not suspicious and max(map(len, record)) <= LOADER_FIELD_LIMIT
            ) or check_record(header, report, line, record, suspicious)
            if sound and pick is not None:
                lines.append(line)
                picked = pick(record)
                values.append(picked if len(typed) > 1 else (picked,))
    if lines:
        check_types(conn, spec, report, typed, lines, values)
    return report


def check(conn: connection, files: dict[str, Path]) -> dict[str, int]:
    """Check every file of the export; raise one ExportError listing every bad file; return rows per table.

    Nothing is written: the temporary tables live in a transaction that is rolled back.
    """
    specs = seed_specs()
    reports: dict[str, FileReport] = {}
    for seed, path in files.items():
        try:
            reports[seed] = check_file(conn, specs[seed], path)
        finally:
            conn.rollback()
    bad = [report for report in reports.values() if report.total]
    if bad:
        raise ExportError("the export cannot be loaded; nothing was changed:\n  " + "\n  ".join(_listing(bad)))
    return {seed: report.rows for seed, report in reports.items()}


def _listing(bad: list[FileReport]) -> list[str]:
    """At most MAX_PROBLEMS_SHOWN problems, at least one of every bad file, then how many more each has."""
    shown = [1] * len(bad)
    budget = MAX_PROBLEMS_SHOWN - len(bad)
    for i, report in enumerate(bad):
        more = max(0, min(budget, report.total - 1))
        shown[i] += more
        budget -= more
    lines = []
    for report, n in zip(bad, shown, strict=True):
        lines += [problem.render(report.where) for problem in report.problems[:n]]
        if report.total > n:
            rest = report.total - n
            lines.append(f"{report.where}: {rest:,} more problem{'s' if rest > 1 else ''} not shown")
    return lines


def prepare(files: dict[str, Path], dest: Path) -> Path:
    """Copy a checked export under its seed names into ``dest``, the folder ``dbt seed`` will read.

    A file without a declared optional column (``index``, which some copies lack) gains it,
    empty, in front: every copy loads into raw tables of one shape, and dbt's reader (agate)
    is never given a type for a column that is not there, which it warns about."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    specs = seed_specs()
    for seed, path in files.items():
        _copy_with_optional_columns(path, dest / f"{seed}.csv", specs[seed])
    return dest


def _copy_with_optional_columns(path: Path, copy: Path, spec: SeedSpec) -> None:
    with path.open(encoding="utf-8-sig", newline="") as source:
        rows = csv.reader(source)
        header = next(rows)
        missing = [name for name in spec.optional_columns if name in spec.column_types and name not in header]
        if not missing:
            shutil.copyfile(path, copy)
            return
        with copy.open("w", encoding="utf-8", newline="") as sink:
            writer = csv.writer(sink, lineterminator="\n")
            writer.writerow([*missing, *header])
            writer.writerows([*([""] * len(missing)), *row] for row in rows)
