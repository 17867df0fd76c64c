"""Bad copies of the export, one thing wrong in each, for the export check and the pipeline.

``BAD_EXPORTS`` lists (name, kind, apply): ``apply(folder)`` breaks, in place, an
export copied from the sample with ``export_copies.copy_export``. The kind says who
must refuse it:

- ``malformed``: ``dbt seed`` cannot load it (or would load it wrongly: short rows,
  blank lines, an open quote), so ``exports.check`` refuses it before anything is loaded;
- ``wrong``: valid CSV that loads, whose content a dbt data test or contract
  (``dbt build``) or the data-quality gate after it (``recommender.warehouse.quality``) refuses.
"""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable
from pathlib import Path

from export_copies import Edit, drop_column, edit_file, edit_line, edit_rows, replace_field

from recommender.warehouse.export_csv import LOADER_FIELD_LIMIT
from recommender.warehouse.exports import ORIGINAL_NAMES

Apply = Callable[[Path], None]
GARBAGE_BYTES = 50 * 1024 * 1024


def _edit(seed: str, edit: Edit) -> Apply:
    return lambda folder: edit_file(folder, seed, edit)


def _write_bytes(seed: str, make: Callable[[bytes], bytes]) -> Apply:
    def apply(folder: Path) -> None:
        path = folder / ORIGINAL_NAMES[seed]
        path.write_bytes(make(path.read_bytes()))

    return apply


def _remove(seed: str) -> Apply:
    return lambda folder: (folder / ORIGINAL_NAMES[seed]).unlink()


def _header_only(rows: list[list[str]]) -> list[list[str]]:
    return rows[:1]


def _add_column(name: str, value: str) -> Edit:
    return edit_rows(lambda rows: [[*rows[0], name]] + [[*row, value] for row in rows[1:]])


def _column(rows: list[list[str]], name: str) -> int:
    return rows[0].index(name)


def _negate_scores(rows: list[list[str]]) -> list[list[str]]:
    at = _column(rows, "imdb_score")
    return rows[:1] + [[*row[:at], f"-{row[at]}" if row[at] else "", *row[at + 1 :]] for row in rows[1:]]


def _repeat_first_title(rows: list[list[str]]) -> list[list[str]]:
    copy = list(rows[1])
    copy[_column(rows, "index")] = str(len(rows) - 1)
    copy[_column(rows, "title")] += " (again)"
    return [*rows, copy]


def _repeat_a_year(rows: list[list[str]]) -> list[list[str]]:
    at = _column(rows, "RELEASE_YEAR")
    rows[3][at] = rows[2][at]
    return rows


def _seasons_for_a_movie(rows: list[list[str]]) -> list[list[str]]:
    movie = next(row for row in rows[1:] if row[_column(rows, "type")] == "MOVIE")
    movie[_column(rows, "seasons")] = "3"
    return rows


def _garbage(data: bytes) -> bytes:
    header = data.split(b"\n", 1)[0] + b"\n"
    return header + random.Random(50).randbytes(GARBAGE_BYTES)


def _re_encode(encoding: str) -> Callable[[bytes], bytes]:
    return lambda data: data.decode("utf-8").encode(encoding)


BAD_EXPORTS: list[tuple[str, str, Apply]] = [
    # dbt seed cannot load these (or would load them wrongly): the check refuses them
    ("non-numeric-year", "malformed", _edit("raw_titles", replace_field(4, "release_year", "nineteen-ninety"))),
    ("runtime-out-of-range", "malformed", _edit("raw_titles", replace_field(8, "runtime", "99999999999"))),
    ("score-not-a-number", "malformed", _edit("raw_best_shows", replace_field(2, "SCORE", "high"))),
    ("truncated-row", "malformed", _edit("raw_credits", edit_line(10, lambda line: line.rsplit(",", 2)[0]))),
    ("blank-line", "malformed", _edit("raw_credits", edit_line(20, lambda line: "\r\n" + line))),
    ("extra-field", "malformed", _edit("raw_best_movie_by_year", edit_line(3, lambda line: line + ",42"))),
    ("unbalanced-quote", "malformed", _edit("raw_best_shows", edit_line(5, lambda line: line.replace(",", ',"', 1)))),
    ("missing-column", "malformed", _edit("raw_best_movies", drop_column("SCORE"))),
    ("unexpected-column", "malformed", _edit("raw_titles", edit_line(1, lambda line: line + ",rating"))),
    ("duplicated-header-column", "malformed", _edit("raw_titles", _add_column("imdb_votes", "12"))),
    ("blank-header-column", "malformed", _edit("raw_best_show_by_year", _add_column("", "x"))),
    (
        "header-field-over-the-limit",
        "malformed",
        _edit("raw_credits", edit_line(1, lambda line: line + "," + "h" * (LOADER_FIELD_LIMIT + 1))),
    ),
    (
        "title-one-over-the-limit",
        "malformed",
        _edit("raw_titles", replace_field(3, "title", "t" * (LOADER_FIELD_LIMIT + 1))),
    ),
    ("title-of-1-mb", "malformed", _edit("raw_titles", replace_field(2, "title", "Long " * (1024 * 1024 // 5)))),
    (
        "not-utf8",
        "malformed",
        _write_bytes("raw_credits", lambda data: data.replace(b"Garc\xc3\xada", b"Garc\xeda", 1)),
    ),
    ("utf16-file", "malformed", _write_bytes("raw_best_show_by_year", _re_encode("utf-16"))),
    ("nul-byte", "malformed", _edit("raw_titles", replace_field(6, "title", "Nul\x00Title"))),
    (
        "double-byte-order-mark",
        "malformed",
        _write_bytes("raw_best_movies", lambda data: "\ufeff\ufeff".encode() + data),
    ),
    ("garbage-50-mb", "malformed", _write_bytes("raw_credits", _garbage)),
    ("empty-file", "malformed", _write_bytes("raw_best_shows", lambda _: b"")),
    ("binary-file", "malformed", _write_bytes("raw_best_movies", lambda data: gzip.compress(data, mtime=0))),
    ("missing-file", "malformed", _remove("raw_credits")),
    # valid CSV that loads: dbt build (data tests, contracts) or the quality gate refuses it
    ("duplicated-title-id", "wrong", _edit("raw_titles", edit_rows(_repeat_first_title))),
    ("negative-imdb-scores", "wrong", _edit("raw_titles", edit_rows(_negate_scores))),
    ("title-type-film", "wrong", _edit("raw_titles", replace_field(2, "type", "FILM"))),
    ("titles-header-only", "wrong", _edit("raw_titles", edit_rows(_header_only))),
    ("credits-header-only", "wrong", _edit("raw_credits", edit_rows(_header_only))),
    ("credit-role-writer", "wrong", _edit("raw_credits", replace_field(3, "role", "WRITER"))),
    ("credit-of-an-unknown-title", "wrong", _edit("raw_credits", replace_field(4, "id", "tm999999999"))),
    ("content-id-pattern", "wrong", _edit("raw_titles", replace_field(5, "id", "xx12345"))),
    ("release-year-1700", "wrong", _edit("raw_titles", replace_field(6, "release_year", "1700"))),
    ("seasons-for-a-movie", "wrong", _edit("raw_titles", edit_rows(_seasons_for_a_movie))),
    ("runtime-null-literal", "wrong", _edit("raw_titles", replace_field(7, "runtime", "null"))),
    ("best-of-negative-score", "wrong", _edit("raw_best_movies", replace_field(2, "SCORE", "-9.5"))),
    ("best-of-unknown-genre", "wrong", _edit("raw_best_movies", replace_field(3, "MAIN_GENRE", "telenovela"))),
    ("best-of-year-twice", "wrong", _edit("raw_best_movie_by_year", edit_rows(_repeat_a_year))),
]
