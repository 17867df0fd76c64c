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

import bisect
import codecs
import csv
import io
import itertools
import operator
import re
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg2
import yaml
from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from recommender.errors import BadInputError
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


# ``dbt seed`` parses with Python's csv module, which refuses a field (a header name
# included) longer than ``csv.field_size_limit()``: 131,072 characters unless a
# program raises it, and neither dbt nor agate does. A longer field fails the whole
# seed ("CSV contains a field longer than the maximum length of 131072 characters").
LOADER_FIELD_LIMIT = 131_072
# agate reads a value that is blank or "null" (after strip() and lower()) as null
LOADER_NULLS = ("", "null")
EXCERPT_CHARS = 60
MAX_PROBLEMS_SHOWN = 20

# NUL, or a byte that is not UTF-8 (decoded as a surrogate by "surrogateescape")
_BAD_CHARACTERS = re.compile("[\x00\udc80-\udcff]")
_CSV_SPECIAL = re.compile('[",\n]')
_FIELD_LIMIT_LOCK = threading.Lock()


class ExportError(BadInputError, ValueError):
    """The export cannot be loaded; the message names each file and what to fix."""


@dataclass(frozen=True)
class SeedSpec:
    """A raw table as declared to dbt: its column types and which columns may be absent."""

    name: str
    column_types: dict[str, str]
    optional_columns: tuple[str, ...]


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


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a file: where (line and column, none where there is none) and what."""

    line: int  # 0 where there is none
    position: int  # of the column in the header, 1-based, for ordering; 0 where there is none
    column: str | None = field(compare=False)
    message: str = field(compare=False)

    def render(self, where: str) -> str:
        line = f", line {self.line}" if self.line else ""
        column = f", column {self.column}" if self.column is not None else ""
        return f"{where}{line}{column}: {self.message}"


@dataclass
class FileReport:
    """What the check found in one file: its data records, how many problems, the first of them in file order."""

    where: str  # "raw_titles.csv (raw_titles)"
    rows: int = 0
    total: int = 0
    problems: list[Problem] = field(default_factory=list)  # sorted, at most MAX_PROBLEMS_SHOWN

    def add(self, line: int, position: int, column: str | None, describe: str | Callable[[], str]) -> None:
        """Count a problem; describe it (call ``describe``) only if it is among the first MAX_PROBLEMS_SHOWN."""
        self.total += 1
        if len(self.problems) == MAX_PROBLEMS_SHOWN and (line, position) >= (
            self.problems[-1].line,
            self.problems[-1].position,
        ):
            return
        message = describe if isinstance(describe, str) else describe()
        bisect.insort(self.problems, Problem(line, position, column, message))
        del self.problems[MAX_PROBLEMS_SHOWN:]


def excerpt(value: str, start: int = 0) -> str:
    """``value`` quoted for a message: about EXCERPT_CHARS characters from near ``start``, and its length if cut.

    Bytes that are not UTF-8 show as \\xNN, other invisible characters as escapes.
    """
    begin = max(0, min(start - EXCERPT_CHARS // 3, len(value) - EXCERPT_CHARS))
    shown: list[str] = []
    width, end = 0, begin
    while end < len(value) and width < EXCERPT_CHARS:
        piece = _visible(value[end])
        shown.append(piece)
        width += len(piece)
        end += 1
    cut_before, cut_after = begin > 0, end < len(value)
    quoted = f'"{"…" if cut_before else ""}{"".join(shown)}{"…" if cut_after else ""}"'
    return f"{quoted} ({len(value):,} characters)" if cut_before or cut_after else quoted


def _visible(char: str) -> str:
    if char.isprintable() or char == " ":
        return char
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"
    return {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(char) or (
        f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
    )


@contextmanager
def _unlimited_csv_fields() -> Iterator[None]:
    """Let the csv module read fields of any length, so a long one is measured and named, not an exception."""
    with _FIELD_LIMIT_LOCK:
        previous = csv.field_size_limit(sys.maxsize)
        try:
            yield
        finally:
            csv.field_size_limit(previous)


def _decode(data: bytes) -> tuple[str, bool]:
    """The text ``dbt seed`` reads from ``data``, and whether it holds a NUL or a byte that is not UTF-8.

    One leading byte-order mark is skipped and CRLF and CR become LF, as agate's
    universal-newlines read does; bytes that are not UTF-8 are kept as surrogates
    (\\udc80-\\udcff) so that the records can still be read and the bad bytes named.
    """
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("utf-8", "surrogateescape"), True
    return text, "\x00" in text


@dataclass(frozen=True)
class _QuoteError:
    """Where a record's quoting breaks: the line and field (0-based) of the quote, and what is wrong."""

    line: int
    field: int
    message: str


def _records(text: str) -> Iterator[tuple[int, list[str] | _QuoteError]]:
    """(first line, fields) of each record as dbt seed's csv reader reads them; a _QuoteError ends them.

    The reader is the csv module's default dialect, as agate uses it, but strict:
    where that reader would silently take the text after a closing quote into the
    field, or read an open quote to the end of the file, this reports the quote.
    """
    reader = csv.reader(io.StringIO(text), strict=True)
    start = 1
    try:
        for record in reader:
            yield start, record
            start = reader.line_num + 1
    except csv.Error:  # strict: a quote problem (the field size limit is lifted, CR is read as LF)
        raw = "".join(itertools.islice(io.StringIO(text), start - 1, reader.line_num))
        yield start, _quote_error(raw, start)


def _quote_error(raw: str, start: int) -> _QuoteError:
    """Find where the quoting of ``raw`` (the lines of one record, from line ``start``) breaks.

    The csv module's rules: a quote opens a quoted field only as the field's first
    character; inside, a doubled quote is a quote; a closing quote must be followed
    by a comma or the end of the line.
    """
    field, field_start, at = 0, 0, 0
    while (found := _CSV_SPECIAL.search(raw, at)) is not None:
        char, at = found.group(), found.end()
        if char == ",":
            field, field_start = field + 1, at
        elif char == '"' and found.start() == field_start:
            opened = found.start()
            while (closing := raw.find('"', at)) >= 0 and raw.startswith('"', closing + 1):
                at = closing + 2  # a doubled quote inside the quoted field
            if closing < 0:
                return _QuoteError(
                    start + raw.count("\n", 0, opened),
                    field,
                    "unterminated CSV quoted field: the quote opened here runs to the end of the file: "
                    + excerpt(raw, opened),
                )
            at = closing + 1
            if raw[at : at + 1] not in ("", ",", "\n"):
                return _QuoteError(
                    start + raw.count("\n", 0, opened),
                    field,
                    f"unbalanced quote: the quoted field opened here is closed on line "
                    f"{start + raw.count(chr(10), 0, closing)} and followed by more text: {excerpt(raw, at)}",
                )
    return _QuoteError(start, field, "a quote the csv module cannot read: " + excerpt(raw))


def _field_problem(value: str, check_characters: bool) -> Callable[[], str] | None:
    """Why dbt seed cannot load ``value`` whatever its column (a bad byte, a NUL, too long), as a describer."""
    found = _BAD_CHARACTERS.search(value) if check_characters else None
    if found and found.group() == "\x00":
        return lambda: f"a NUL character (0x00), which PostgreSQL text cannot hold: {excerpt(value, found.start())}"
    if found:
        byte = ord(found.group()) - 0xDC00
        return lambda: (
            f"invalid byte sequence for UTF-8: 0x{byte:02x} (the file must be UTF-8): {excerpt(value, found.start())}"
        )
    if len(value) > LOADER_FIELD_LIMIT:
        return lambda: (
            f"a field of {len(value):,} characters, longer than the {LOADER_FIELD_LIMIT:,} "
            f"dbt seed's CSV reader accepts: {excerpt(value)}"
        )
    return None


def _check_header(spec: SeedSpec, report: FileReport, first: tuple[int, list[str] | _QuoteError] | None) -> bool:
    """Whether the header matches the declared columns as dbt seed requires; if not, report why."""
    if first is None:
        report.add(1, 0, None, "the file is empty: no header line")
        return False
    header = first[1]
    if isinstance(header, _QuoteError):
        report.add(header.line, header.field + 1, str(header.field + 1), header.message)
        return False
    if not header:
        report.add(1, 0, None, "the header line is blank")
        return False
    unreadable = [(position, _field_problem(name, True)) for position, name in enumerate(header, start=1)]
    for position, describe in unreadable:
        if describe is not None:
            report.add(1, position, str(position), describe)
    if report.total:  # the names cannot be read: missing and unexpected columns would say nothing more
        return False
    seen: dict[str, int] = {}
    for position, name in enumerate(header, start=1):
        if not name:
            report.add(1, position, str(position), "a blank column name")
        elif name in seen:
            first_seen = seen[name]
            report.add(
                1,
                position,
                str(position),
                lambda n=name, f=first_seen: f"column {excerpt(n)} appears twice (first as column {f})",
            )
        elif name not in spec.column_types:
            report.add(
                1,
                position,
                str(position),
                lambda n=name: f"unexpected column {excerpt(n)} (not declared for {spec.name})",
            )
        seen.setdefault(name, position)
    for name in spec.column_types:
        if name not in seen and name not in spec.optional_columns:
            report.add(1, len(header) + 1, name, lambda: f"missing from the header (declared for {spec.name})")
    return report.total == 0


def _check_record(header: list[str], report: FileReport, line: int, record: list[str], suspicious: bool) -> bool:
    """Report what dbt seed would fail on, or load wrongly, in one data record; True if there is nothing."""
    width, expected = len(record), len(header)
    sound = True
    if width < expected:
        missing = header[width]
        what = "a blank line" if width == 0 else f"the record has {width} of {expected} fields"
        report.add(
            line, width + 1, missing, lambda: f"missing data for column {missing}: {what} (dbt seed would load nulls)"
        )
        sound = False
    elif width > expected:
        report.add(
            line,
            expected + 1,
            str(expected + 1),
            lambda: f"extra data after last expected column: the record has {width} fields, the header {expected}",
        )
        sound = False
    if suspicious or max(map(len, record), default=0) > LOADER_FIELD_LIMIT:
        for position, value in enumerate(record, start=1):
            describe = _field_problem(value, suspicious)
            if describe is not None:
                report.add(line, position, header[position - 1] if position <= expected else str(position), describe)
                sound = False
    return sound


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
    text, suspicious = _decode(data)
    del data
    with _unlimited_csv_fields():
        records = _records(text)
        first = next(records, None)
        if not _check_header(spec, report, first):
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
        for line, record in records:
            if isinstance(record, _QuoteError):
                column = header[record.field] if record.field < width else str(record.field + 1)
                message = f"{record.message}; the rest of the file is not checked"
                report.add(record.line, record.field + 1, column, message)
                break
            report.rows += 1
            sound = (
                len(record) == width and not suspicious and max(map(len, record)) <= LOADER_FIELD_LIMIT
            ) or _check_record(header, report, line, record, suspicious)
            if sound and pick is not None:
                lines.append(line)
                picked = pick(record)
                values.append(picked if len(typed) > 1 else (picked,))
    if lines:
        _check_types(conn, spec, report, typed, lines, values)
    return report


def _as_loaded(value: str) -> str | None:
    return None if value.strip().lower() in LOADER_NULLS else value


def _check_types(
    conn: connection,
    spec: SeedSpec,
    report: FileReport,
    columns: list[tuple[str, int]],
    lines: list[int],
    values: list[tuple[str, ...]],
) -> None:
    """Copy the typed values, as dbt seed reads them, into a temporary table of their declared types.

    If COPY refuses one, cast every value as dbt seed does to name each one refused.
    """
    table = sql.Identifier(spec.name)
    definition = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(spec.column_types[name])) for name, _ in columns
    )
    escape = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
    nulls = LOADER_NULLS
    copied = "".join(
        "\t".join("\\N" if value.strip().lower() in nulls else value.translate(escape) for value in row) + "\n"
        for row in values
    )
    with conn.cursor() as cur:
        cur.execute(sql.SQL("create temporary table {} ({}) on commit drop").format(table, definition))
        cur.execute("savepoint typed_values")
        copy = sql.SQL("copy {} from stdin with (format text, encoding 'UTF8')").format(table)
        try:
            cur.copy_expert(copy.as_string(conn), io.BytesIO(copied.encode("utf-8")))
            return
        except psycopg2.DataError as exc:
            cur.execute("rollback to savepoint typed_values")
            failure = exc.diag.message_primary or str(exc)
        before = report.total
        for index, (name, position) in enumerate(columns):
            column = [_as_loaded(row[index]) for row in values]
            for cell, message in _refused_values(cur, spec.column_types[name], index, column):
                value = column[cell] or ""
                report.add(
                    lines[cell], position, name, lambda v=value, m=message: _cut(m.replace(f'"{v}"', excerpt(v)))
                )
        if report.total == before:  # COPY refused a value that a cast accepts: name the file at least
            report.add(0, 0, None, lambda: _cut(failure))


def _refused_values(cur: cursor, kind: str, index: int, values: list[str | None]) -> list[tuple[int, str]]:
    """(0-based position, message) of each value that the cast dbt seed applies (``cell::kind``) refuses."""
    function = sql.Identifier("pg_temp", f"netflix_export_refused_{index}")
    cur.execute(
        sql.SQL(
            """
            create function {function}(cells text[]) returns table (cell integer, message text)
            language plpgsql as $$
            declare
                converted {kind};
            begin
                for i in 1 .. coalesce(array_length(cells, 1), 0) loop
                    continue when cells[i] is null;
                    begin
                        converted := cells[i]::{kind};
                    exception when data_exception then
                        cell := i - 1;
                        message := sqlerrm;
                        return next;
                    end;
                end loop;
            end
            $$
            """
        ).format(function=function, kind=sql.SQL(kind))
    )
    cur.execute(sql.SQL("select cell, message from {}(%s::text[])").format(function), (values,))
    return cur.fetchall()


def _cut(message: str, limit: int = 3 * EXCERPT_CHARS) -> str:
    return message if len(message) <= limit else f"{message[:limit]}… ({len(message):,} characters)"


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
    """Copy a checked export under its seed names into ``dest``, the folder ``dbt seed`` will read."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for seed, path in files.items():
        shutil.copyfile(path, dest / f"{seed}.csv")
    return dest
