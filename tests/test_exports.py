"""Checking an export before loading: every bad file is named with its line and column, nothing is written."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest
from export_copies import Edit, copy_export, drop_column, edit_line, replace_field

from recommender import exports
from recommender.sample import write_sample
from recommender.warehouse import Target


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


@pytest.mark.parametrize(
    ("seed", "edit", "expected"),
    [
        pytest.param(
            "raw_titles",
            replace_field(4, "release_year", "nineteen-ninety"),
            ["raw_titles.csv (raw_titles)", "invalid input syntax for type integer", "line 4, column release_year"],
            id="non-numeric-year",
        ),
        pytest.param(
            "raw_credits",
            edit_line(10, lambda line: line.rsplit(",", 2)[0]),
            ["raw_credits.csv (raw_credits)", "missing data for column", "line 10"],
            id="truncated-row",
        ),
        pytest.param(
            "raw_best_shows",
            edit_line(5, lambda line: line.replace(",", ',"', 1)),
            ["Best Shows Netflix.csv (raw_best_shows)", "unterminated CSV quoted field"],
            id="unbalanced-quote",
        ),
        pytest.param(
            "raw_best_movies",
            drop_column("SCORE"),
            ["Best Movies Netflix.csv (raw_best_movies)", "missing columns ['SCORE']"],
            id="missing-column",
        ),
        pytest.param(
            "raw_titles",
            edit_line(1, lambda line: line + ",rating"),
            ["raw_titles.csv (raw_titles)", "unexpected columns ['rating']"],
            id="unexpected-column",
        ),
        pytest.param(
            "raw_best_movie_by_year",
            edit_line(3, lambda line: line + ",42"),
            ["raw_best_movie_by_year", "extra data after last expected column", "line 3"],
            id="extra-field",
        ),
    ],
)
def test_bad_file_is_named_with_line_and_column(
    database: Target, tmp_path: Path, seed: str, edit: Edit, expected: list[str]
) -> None:
    folder = copy_export(exports.SAMPLE_DIR, tmp_path / "bad", {seed: edit})
    with closing(database.connect()) as conn, pytest.raises(exports.ExportError) as err:
        exports.check(conn, exports.locate(folder))
    message = str(err.value)
    for part in expected:
        assert part in message
    assert "nothing was changed" in message
    with closing(database.connect()) as conn, conn.cursor() as cur:
        cur.execute("select count(*) from pg_class where relpersistence = 'p' and relnamespace > 16383")
        assert cur.fetchone()[0] == 0  # the check created no table


def test_every_bad_file_is_listed_and_not_utf8_is_caught(database: Target, tmp_path: Path) -> None:
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
    assert "raw_credits" in problems[1] and "invalid byte sequence" in problems[1]
    assert "line 2, column SCORE" in problems[2]
