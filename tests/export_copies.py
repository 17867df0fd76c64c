"""Copies of an export with one thing changed, the way copies of the real export differ or break."""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Callable
from pathlib import Path

from recommender.warehouse.exports import ORIGINAL_NAMES, locate

Edit = Callable[[str], str]


def copy_export(source: Path, dest: Path, edits: dict[str, Edit] | None = None, *, bom: bool = False) -> Path:
    """Copy the export in ``source`` to ``dest`` under its original names, applying ``edits`` per raw table."""
    dest.mkdir(parents=True, exist_ok=True)
    for seed, path in locate(source).items():
        text = path.read_bytes().decode("utf-8-sig")
        text = (edits or {}).get(seed, lambda t: t)(text)
        data = text.encode("utf-8")
        (dest / ORIGINAL_NAMES[seed]).write_bytes((codecs.BOM_UTF8 if bom else b"") + data)
    return dest


def resave_without_index(text: str) -> str:
    """What pandas writes after ``read_csv(index_col=0).to_csv(index=False)``: no index column, LF endings."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if rows[0][0] == "index":
        rows = [row[1:] for row in rows]
    return "".join(_csv_line(row) + "\n" for row in rows)


def _csv_line(record: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(record)
    return out.getvalue()


def replace_field(line_number: int, column: str, value: str) -> Edit:
    """Set ``column`` of the record on physical ``line_number`` (1 = header) to ``value``."""

    def edit(text: str) -> str:
        header = next(csv.reader([text.splitlines()[0]]))

        def change(body: str) -> str:
            record = next(csv.reader([body]))
            record[header.index(column)] = value
            return _csv_line(record)

        return edit_line(line_number, change)(text)

    return edit


def drop_column(column: str) -> Edit:
    """Remove ``column`` from every record."""

    def edit(text: str) -> str:
        rows = list(csv.reader(io.StringIO(text, newline="")))
        position = rows[0].index(column)
        return "".join(_csv_line(row[:position] + row[position + 1 :]) + "\r\n" for row in rows)

    return edit


def edit_rows(change: Callable[[list[list[str]]], list[list[str]]]) -> Edit:
    """Apply ``change`` to the parsed records (header first), writing them back with the file's line ending."""

    def edit(text: str) -> str:
        ending = "\r\n" if "\r\n" in text else "\n"
        rows = change(list(csv.reader(io.StringIO(text, newline=""))))
        return "".join(_csv_line(row) + ending for row in rows)

    return edit


def edit_file(folder: Path, seed: str, edit: Edit) -> None:
    """Apply ``edit`` to the text of ``seed``'s file in an export copied by ``copy_export``, in place."""
    path = folder / ORIGINAL_NAMES[seed]
    path.write_bytes(edit(path.read_bytes().decode("utf-8-sig")).encode("utf-8"))


def edit_line(line_number: int, change: Callable[[str], str]) -> Edit:
    """Apply ``change`` to the text of one physical line (its line ending kept)."""

    def edit(text: str) -> str:
        lines = text.splitlines(keepends=True)
        line = lines[line_number - 1]
        body = line.rstrip("\r\n")
        lines[line_number - 1] = change(body) + line[len(body) :]
        return "".join(lines)

    return edit
