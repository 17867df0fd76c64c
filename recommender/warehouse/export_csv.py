"""Reading an export's CSV text as the loader would, and naming each problem by file, line and column."""

from __future__ import annotations

import bisect
import codecs
import csv
import io
import itertools
import re
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

# ``dbt seed`` parses with Python's csv module, which refuses a field (a header name
# included) longer than ``csv.field_size_limit()``: 131,072 characters unless a
# program raises it, and neither dbt nor agate does. A longer field fails the whole
# seed ("CSV contains a field longer than the maximum length of 131072 characters").
LOADER_FIELD_LIMIT = 131_072


# agate reads a value that is blank or "null" (after strip() and lower()) as null
LOADER_NULLS = ("", "null")


EXCERPT_CHARS = 60


# NUL, or a byte that is not UTF-8 (decoded as a surrogate by "surrogateescape")
_BAD_CHARACTERS = re.compile("[\x00\udc80-\udcff]")


_CSV_SPECIAL = re.compile('[",\n]')


_FIELD_LIMIT_LOCK = threading.Lock()


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
def unlimited_csv_fields() -> Iterator[None]:
    """Let the csv module read fields of any length, so a long one is measured and named, not an exception."""
    with _FIELD_LIMIT_LOCK:
        previous = csv.field_size_limit(sys.maxsize)
        try:
            yield
        finally:
            csv.field_size_limit(previous)


def decode(data: bytes) -> tuple[str, bool]:
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
class QuoteError:
    """Where a record's quoting breaks: the line and field (0-based) of the quote, and what is wrong."""

    line: int
    field: int
    message: str


def records(text: str) -> Iterator[tuple[int, list[str] | QuoteError]]:
    """(first line, fields) of each record as dbt seed's csv reader reads them; a QuoteError ends them.

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


def _quote_error(raw: str, start: int) -> QuoteError:
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
                return QuoteError(
                    start + raw.count("\n", 0, opened),
                    field,
                    "unterminated CSV quoted field: the quote opened here runs to the end of the file: "
                    + excerpt(raw, opened),
                )
            at = closing + 1
            if raw[at : at + 1] not in ("", ",", "\n"):
                return QuoteError(
                    start + raw.count("\n", 0, opened),
                    field,
                    f"unbalanced quote: the quoted field opened here is closed on line "
                    f"{start + raw.count(chr(10), 0, closing)} and followed by more text: {excerpt(raw, at)}",
                )
    return QuoteError(start, field, "a quote the csv module cannot read: " + excerpt(raw))


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


def check_header(spec: SeedSpec, report: FileReport, first: tuple[int, list[str] | QuoteError] | None) -> bool:
    """Whether the header matches the declared columns as dbt seed requires; if not, report why."""
    if first is None:
        report.add(1, 0, None, "the file is empty: no header line")
        return False
    header = first[1]
    if isinstance(header, QuoteError):
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


def check_record(header: list[str], report: FileReport, line: int, record: list[str], suspicious: bool) -> bool:
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


MAX_PROBLEMS_SHOWN = 20


@dataclass(frozen=True)
class SeedSpec:
    """A raw table as declared to dbt: its column types and which columns may be absent."""

    name: str
    column_types: dict[str, str]
    optional_columns: tuple[str, ...]
