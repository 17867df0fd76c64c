"""Checking an export before loading: the check reads each file as dbt seed does.

What the check passes, dbt seed loads; what dbt seed cannot load, the check refuses,
naming every bad file with its line and column, in a short message, writing nothing.
The bad copies are the catalogue in ``bad_exports.py``.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest
from bad_exports import BAD_EXPORTS, Apply
from export_copies import copy_export, edit_line, edit_rows, replace_field, resave_without_index

from recommender.warehouse import exports
from recommender.warehouse.dbt import run_dbt
from recommender.warehouse.export_csv import LOADER_FIELD_LIMIT, MAX_PROBLEMS_SHOWN
from recommender.warehouse.sample import write_sample
from recommender.warehouse.targets import Target

MALFORMED = [pytest.param(name, apply, id=name) for name, kind, apply in BAD_EXPORTS if kind == "malformed"]
WRONG = [pytest.param(apply, id=name) for name, kind, apply in BAD_EXPORTS if kind == "wrong"]

# What the refusal of each malformed copy must say (besides naming the file, a line and a column)
EXPECTED = {
    "non-numeric-year": [
        "raw_titles.csv (raw_titles), line 4, column release_year: invalid input syntax for type integer",
        '"nineteen-ninety"',
    ],
    "runtime-out-of-range": [
        'raw_titles.csv (raw_titles), line 8, column runtime: value "99999999999" is out of range for type integer'
    ],
    "score-not-a-number": ["Best Shows Netflix.csv (raw_best_shows), line 2, column SCORE: invalid input syntax"],
    "truncated-row": [
        "raw_credits.csv (raw_credits), line 10, column character: missing data for column character",
        "3 of 5 fields",
    ],
    "blank-line": ["raw_credits.csv (raw_credits), line 20, column person_id: missing data", "a blank line"],
    "extra-field": ["(raw_best_movie_by_year), line 3, column 7: extra data after last expected column"],
    "unbalanced-quote": ["Best Shows Netflix.csv (raw_best_shows), line 5, column TITLE: unbalanced quote"],
    "missing-column": ["Best Movies Netflix.csv (raw_best_movies), line 1, column SCORE: missing from the header"],
    "unexpected-column": ['raw_titles.csv (raw_titles), line 1, column 14: unexpected column "rating"'],
    "duplicated-header-column": [
        'raw_titles.csv (raw_titles), line 1, column 14: column "imdb_votes" appears twice (first as column 13)'
    ],
    "blank-header-column": ["(raw_best_show_by_year), line 1, column 8: a blank column name"],
    "header-field-over-the-limit": [
        "raw_credits.csv (raw_credits), line 1, column 6: a field of 131,073 characters, longer than the 131,072"
    ],
    "title-one-over-the-limit": ["raw_titles.csv (raw_titles), line 3, column title: a field of 131,073 characters"],
    "title-of-1-mb": ["raw_titles.csv (raw_titles), line 2, column title: a field of 1,048,575 characters", "…"],
    "not-utf8": [
        "raw_credits.csv (raw_credits), line 3, column character: invalid byte sequence for UTF-8: 0xed",
        r'"Detective Garc\xeda"',
    ],
    "utf16-file": ["(raw_best_show_by_year), line 1, column 1: the file is UTF-16", "dbt seed reads UTF-8"],
    "nul-byte": [r"raw_titles.csv (raw_titles), line 6, column title: a NUL character (0x00)", r'"Nul\x00Title"'],
    "double-byte-order-mark": [r'(raw_best_movies), line 1, column 1: unexpected column "\ufeffindex"'],
    "garbage-50-mb": [
        "raw_credits.csv (raw_credits), line 2, column person_id: invalid byte sequence for UTF-8",
        "more problems not shown",
    ],
    "empty-file": ["Best Shows Netflix.csv (raw_best_shows), line 1: the file is empty"],
    "binary-file": [
        "Best Movies Netflix.csv (raw_best_movies), line 1, column 1: invalid byte sequence for UTF-8: 0x8b"
    ],
    "missing-file": ["missing export files: 'raw_credits.csv'"],
}
NO_LINE = {"missing-file"}
NO_COLUMN = {"missing-file", "empty-file"}


def test_the_catalogue_of_bad_exports_is_complete() -> None:
    names = [name for name, _, _ in BAD_EXPORTS]
    kinds = Counter(kind for _, kind, _ in BAD_EXPORTS)
    assert len(names) == len(set(names)) >= 24
    assert set(kinds) == {"malformed", "wrong"} and kinds["malformed"] >= 14 and kinds["wrong"] >= 8
    assert set(EXPECTED) == {name for name, kind, _ in BAD_EXPORTS if kind == "malformed"}


def test_locate_accepts_original_and_seed_names(tmp_path: Path) -> None:
    original = copy_export(exports.SAMPLE_DIR, tmp_path / "original")
    assert locate_names(original)["raw_best_movies"] == "Best Movies Netflix.csv"
    assert locate_names(exports.SAMPLE_DIR)["raw_best_movies"] == "raw_best_movies.csv"


def locate_names(folder: Path) -> dict[str, str]:
    return {seed: path.name for seed, path in exports.locate(folder).items()}


def test_locate_names_every_missing_file(tmp_path: Path) -> None:
    folder = copy_export(exports.SAMPLE_DIR, tmp_path / "export")
    (folder / "Best Shows Netflix.csv").unlink()
    (folder / "raw_credits.csv").unlink()
    with pytest.raises(exports.ExportError, match=r"Best Shows Netflix\.csv.*|raw_credits\.csv") as err:
        exports.locate(folder)
    assert "'Best Shows Netflix.csv'" in str(err.value) and "'raw_credits.csv'" in str(err.value)


def test_check_counts_every_row_of_the_sample(database: Target, tmp_path: Path) -> None:
    expected = write_sample(tmp_path)
    with closing(database.connect()) as conn:
        assert exports.check(conn, exports.locate(tmp_path)) == expected


def test_copies_that_differ_as_the_real_ones_do_pass(database: Target, tmp_path: Path) -> None:
    """A byte-order mark, LF, CRLF or CR line ends, no `index` column: dbt seed loads them all, so they pass."""
    expected = write_sample(tmp_path / "sample")
    folder = copy_export(
        exports.SAMPLE_DIR,
        tmp_path / "variants",
        {
            "raw_titles": resave_without_index,
            "raw_best_shows": lambda text: text.replace("\n", "\r"),
            "raw_best_movies": lambda text: text.replace("\n", "\r\n"),
        },
        bom=True,
    )
    with closing(database.connect()) as conn:
        assert exports.check(conn, exports.locate(folder)) == expected


def _persistent_tables(database: Target) -> int:
    with closing(database.connect()) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from pg_class where relpersistence = 'p' and relnamespace > 16383")
        return cur.fetchone()[0]


@pytest.mark.parametrize(("name", "apply"), MALFORMED)
def test_malformed_export_is_refused_naming_file_line_and_column(
    database: Target, tmp_path: Path, name: str, apply: Apply
) -> None:
    pristine = copy_export(exports.SAMPLE_DIR, tmp_path / "pristine")
    folder = copy_export(exports.SAMPLE_DIR, tmp_path / "bad")
    apply(folder)
    changed = [
        path.name
        for path in pristine.iterdir()
        if not (folder / path.name).is_file() or (folder / path.name).read_bytes() != path.read_bytes()
    ]
    assert changed
    with closing(database.connect()) as conn, pytest.raises(exports.ExportError) as err:
        exports.check(conn, exports.locate(folder))
    message = str(err.value)
    assert len(message) < 5_000
    assert "Traceback" not in message and "Error:" not in message
    for file_name in changed:
        assert file_name in message
    if name not in NO_LINE:
        assert re.search(r", line \d+", message)
        assert message.startswith("the export cannot be loaded; nothing was changed:\n")
    if name not in NO_COLUMN:
        assert re.search(r", line \d+, column [^\s:]+: ", message)
    for part in EXPECTED[name]:
        assert part in message
    assert _persistent_tables(database) == 0  # the check created no table


@pytest.mark.parametrize("apply", WRONG)
def test_wrong_content_in_valid_csv_passes_the_check(database: Target, tmp_path: Path, apply: Apply) -> None:
    """Refusing these is the job of dbt build's tests and contracts and of the quality gate, not of the check."""
    folder = copy_export(exports.SAMPLE_DIR, tmp_path / "wrong")
    apply(folder)
    with closing(database.connect()) as conn:
        counts = exports.check(conn, exports.locate(folder))
    assert set(counts) == set(exports.ORIGINAL_NAMES)


def test_a_title_at_the_loader_limit_loads_and_one_character_more_is_refused(
    database: Target, tmp_path: Path, work_dir: Path
) -> None:
    at_limit = exports.locate(
        copy_export(
            exports.SAMPLE_DIR, tmp_path / "at", {"raw_titles": replace_field(2, "title", "t" * LOADER_FIELD_LIMIT)}
        )
    )
    with closing(database.connect()) as conn:
        assert exports.check(conn, at_limit)["raw_titles"] == 600
    assert csv.field_size_limit() == LOADER_FIELD_LIMIT  # the check gave the csv module its limit back
    seed = ["seed", "--full-refresh", "--select", "raw_titles"]
    loaded = run_dbt(
        seed, database, raw_dir=exports.prepare(at_limit, work_dir / "raw_export"), target_path=work_dir, capture=True
    )
    assert loaded.returncode == 0, loaded.stdout
    with closing(database.connect()) as conn, conn.cursor() as cur:
        cur.execute("select table_schema from information_schema.tables where table_name = 'raw_titles'")
        (schema,) = cur.fetchone()
        cur.execute(f'select max(length(title)) from "{schema}".raw_titles')
        assert cur.fetchone()[0] == LOADER_FIELD_LIMIT

    over = exports.locate(
        copy_export(
            exports.SAMPLE_DIR,
            tmp_path / "over",
            {"raw_titles": replace_field(2, "title", "t" * (LOADER_FIELD_LIMIT + 1))},
        )
    )
    with closing(database.connect()) as conn, pytest.raises(exports.ExportError, match="line 2, column title"):
        exports.check(conn, over)
    failed = run_dbt(
        seed, database, raw_dir=exports.prepare(over, work_dir / "raw_export"), target_path=work_dir, capture=True
    )
    assert failed.returncode != 0
    assert "longer than the maximum length of 131072 characters" in failed.stdout  # agate's word for the limit


def test_every_bad_file_is_listed_and_bad_characters_are_caught(database: Target, tmp_path: Path) -> None:
    folder = copy_export(
        exports.SAMPLE_DIR,
        tmp_path / "bad",
        {"raw_titles": replace_field(3, "runtime", "ninety"), "raw_best_shows": replace_field(2, "SCORE", "high")},
    )
    credits = folder / "raw_credits.csv"
    credits.write_bytes(credits.read_bytes().replace(b"Castillo", "Castillo".encode("utf-16-le"), 1))
    with closing(database.connect()) as conn, pytest.raises(exports.ExportError) as err:
        exports.check(conn, exports.locate(folder))
    problems = str(err.value).splitlines()[1:]
    assert len(problems) == 3
    assert "line 3, column runtime" in problems[0]
    assert "raw_credits" in problems[1] and "a NUL character" in problems[1]
    assert "line 2, column SCORE" in problems[2]


def test_many_problems_are_cut_to_a_short_list_that_still_names_every_bad_file(
    database: Target, tmp_path: Path
) -> None:
    def every_year_bad(rows: list[list[str]]) -> list[list[str]]:
        at = rows[0].index("release_year")
        return rows[:1] + [[*row[:at], "soon", *row[at + 1 :]] for row in rows[1:]]

    folder = copy_export(
        exports.SAMPLE_DIR,
        tmp_path / "bad",
        {
            "raw_titles": edit_rows(every_year_bad),
            "raw_best_movies": edit_line(4, lambda line: line + ",1,2"),
        },
    )
    with closing(database.connect()) as conn, pytest.raises(exports.ExportError) as err:
        exports.check(conn, exports.locate(folder))
    problems = str(err.value).splitlines()[1:]
    shown = [line for line in problems if "more problem" not in line]
    assert len(shown) == MAX_PROBLEMS_SHOWN
    assert shown[0].strip() == (
        'raw_titles.csv (raw_titles), line 2, column release_year: invalid input syntax for type integer: "soon"'
    )
    assert "raw_titles.csv (raw_titles): 581 more problems not shown" in problems[MAX_PROBLEMS_SHOWN - 1]
    assert "Best Movies Netflix.csv (raw_best_movies), line 4, column 9: extra data" in problems[-1]
