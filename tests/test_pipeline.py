"""The pipeline on real PostgreSQL servers: raw seeds, staging views, their tests, and bad input losing nothing."""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import pytest
from export_copies import copy_export, drop_column, replace_field, resave_without_index
from queries import query

from recommender.refresh import pipeline
from recommender.warehouse import exports
from recommender.warehouse.dbt import run_dbt
from recommender.warehouse.sample import write_sample
from recommender.warehouse.targets import Target

REAL_COUNTS = {
    "raw.raw_titles": 5806,
    "raw.raw_credits": 77213,
    "raw.raw_best_movies": 387,
    "raw.raw_best_shows": 246,
    "raw.raw_best_movie_by_year": 49,
    "raw.raw_best_show_by_year": 31,
    "staging.stg_netflix__titles": 5806,
}
STAGING_OF = {
    "raw_titles": "stg_netflix__titles",
    "raw_credits": "stg_netflix__credits",
    "raw_best_movies": "stg_netflix__best_movies",
    "raw_best_shows": "stg_netflix__best_shows",
    "raw_best_movie_by_year": "stg_netflix__best_movie_by_year",
    "raw_best_show_by_year": "stg_netflix__best_show_by_year",
}


def _raw_snapshot(target: Target) -> dict[str, tuple[int, str]]:
    """Row count and a digest of every row of every raw table."""
    return {
        table: query(
            target,
            f"select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from raw.{table} as t",
        )[0]
        for table in STAGING_OF
    }


def _statuses(summary: pipeline.Summary) -> set[str]:
    """The dbt statuses of a build's nodes; exposures and saved queries build nothing (no-op)."""
    return {status for (kind, status) in summary.dbt_counts if kind not in ("exposure", "saved_query")}


def test_sample_loads_every_row_and_passes_every_dbt_test(sample_warehouse: pipeline.Summary, tmp_path: Path) -> None:
    expected = write_sample(tmp_path)
    for seed, rows in expected.items():
        assert sample_warehouse.row_counts[f"raw.{seed}"] == rows
        assert sample_warehouse.row_counts[f"staging.{STAGING_OF[seed]}"] == rows  # no row dropped or invented
    # the one warning: the sample's unmatched best-of row
    assert _statuses(sample_warehouse) <= {"success", "pass", "warn"}
    assert sample_warehouse.dbt_counts[("test", "pass")] >= 40
    # six export files and two reference seeds: ISO 3166 and the best-of lists' genres
    assert sample_warehouse.dbt_counts[("seed", "success")] == 8
    for table in ("app.users", "app.viewing_events", "core.users", "core.viewing_events", "marts.ml_interactions"):
        assert sample_warehouse.row_counts[table] > 0, table
    assert sample_warehouse.row_counts["core.users"] == sample_warehouse.row_counts["app.users"] == 500
    assert f"{sample_warehouse.dbt_counts[('test', 'pass')]} data tests and" in sample_warehouse.render()


def test_schemas_are_named_exactly(sample_warehouse: pipeline.Summary) -> None:
    schemas = {name.split(".")[0] for name in sample_warehouse.row_counts}
    assert schemas == {"raw", "staging", "core", "marts", "app"}


def test_staging_parses_lists_and_blanks_like_python(sample_warehouse: pipeline.Summary) -> None:
    rows = query(
        sample_warehouse.target,
        "select r.id, r.genres, r.production_countries, s.genres, s.production_countries, r.title, s.title"
        " from raw.raw_titles as r join staging.stg_netflix__titles as s on s.content_id = r.id",
    )
    assert len(rows) == sample_warehouse.row_counts["raw.raw_titles"]
    for content_id, raw_genres, raw_countries, genres, countries, raw_title, title in rows:
        assert genres == ast.literal_eval(raw_genres), content_id
        assert countries == ast.literal_eval(raw_countries), content_id
        assert title == (raw_title.strip() if raw_title and raw_title.strip() else None)
    assert any(countries == ["NA"] for *_, countries, _, _ in rows)  # Namibia, not a null


def test_credits_keep_null_like_characters_and_trim_names(sample_warehouse: pipeline.Summary) -> None:
    characters = {
        c for (c,) in query(sample_warehouse.target, "select character_name from staging.stg_netflix__credits")
    }
    assert {"Nan", "Nat", None} <= characters
    untrimmed = query(
        sample_warehouse.target,
        "select count(*) from staging.stg_netflix__credits where person_name <> btrim(person_name, e' \\u00a0')",
    )
    assert untrimmed == [(0,)]
    with (exports.SAMPLE_DIR / "raw_credits.csv").open(encoding="utf-8", newline="") as fh:
        assert any(r["name"] != r["name"].strip() for r in csv.DictReader(fh))


@pytest.mark.real_export
@pytest.mark.one_server
def test_real_export_loads_every_row(real_warehouse: pipeline.Summary) -> None:
    assert {name: real_warehouse.row_counts[name] for name in REAL_COUNTS} == REAL_COUNTS
    assert _statuses(real_warehouse) <= {"success", "pass"}


@pytest.mark.real_export
@pytest.mark.one_server
def test_real_export_resaved_without_index_with_bom_and_lf_loads_the_same(
    database: Target, real_export: Path, tmp_path: Path, work_dir: Path
) -> None:
    edits = dict.fromkeys(STAGING_OF, resave_without_index)
    copy = copy_export(real_export, tmp_path / "resaved", edits, bom=True)
    assert (copy / "raw_titles.csv").read_bytes().startswith(b"\xef\xbb\xbfid,title")
    summary = pipeline.run(database, copy, work_dir=work_dir / "dbt", simulation=None)
    assert {name: summary.row_counts[name] for name in REAL_COUNTS} == REAL_COUNTS
    # the copy gains the optional column, empty: raw keeps one shape whatever the copy
    assert query(database, "select count(*), count(index) from raw.raw_titles") == [(REAL_COUNTS["raw.raw_titles"], 0)]


@pytest.mark.one_server
def test_switching_between_copies_with_and_without_index_keeps_the_raw_table_s_shape(
    database: Target, tmp_path: Path, work_dir: Path
) -> None:
    pipeline.run(database, exports.SAMPLE_DIR, work_dir=work_dir / "a", simulation=None)
    without = copy_export(exports.SAMPLE_DIR, tmp_path / "no_index", dict.fromkeys(STAGING_OF, resave_without_index))
    pipeline.run(database, without, work_dir=work_dir / "b", simulation=None)
    columns = {
        c
        for (c,) in query(
            database,
            "select column_name from information_schema.columns"
            " where table_schema = 'raw' and table_name = 'raw_titles'",
        )
    }
    assert {"index", "release_year"} <= columns
    assert query(database, "select count(*), count(index) from raw.raw_titles") == [(600, 0)]
    assert query(database, "select count(*) from staging.stg_netflix__titles") == [(600,)]
    # dbt wrote its compiled seed SQL beside, not over, the copy it loaded (the live one, which plain dbt reads)
    # the copy holds the file's rows, with the optional column it lacked in front, empty
    live_copy = work_dir / "b" / "exports" / "live" / "raw_titles.csv"
    with live_copy.open(newline="") as copied, (without / "raw_titles.csv").open(newline="") as source:
        (header, *rows), (source_header, *source_rows) = list(csv.reader(copied)), list(csv.reader(source))
    assert header == ["index", *source_header] and rows == [["", *row] for row in source_rows]


@pytest.fixture(params=["sample", pytest.param("real", marks=pytest.mark.one_server)])
def loaded_export(request: pytest.FixtureRequest, database: Target, work_dir: Path) -> tuple[Target, Path]:
    """A database holding an export, and that export's folder."""
    folder = request.getfixturevalue("real_export") if request.param == "real" else exports.SAMPLE_DIR
    pipeline.run(database, folder, work_dir=work_dir / "first", simulation=None)
    return database, folder


def test_corrupted_export_fails_naming_raw_titles_and_keeps_every_raw_table(
    loaded_export: tuple[Target, Path], tmp_path: Path, work_dir: Path
) -> None:
    database, folder = loaded_export
    before = _raw_snapshot(database)
    corrupted = copy_export(
        folder, tmp_path / "corrupted", {"raw_titles": replace_field(5, "release_year", "nineteen-ninety")}
    )
    with pytest.raises(exports.ExportError, match=r"raw_titles.*line 5, column release_year"):
        pipeline.run(database, corrupted, work_dir=work_dir / "second", simulation=None)
    assert _raw_snapshot(database) == before


def test_plain_dbt_seed_of_a_bad_file_fails_and_leaves_the_table_as_it_was(
    database: Target, tmp_path: Path, work_dir: Path
) -> None:
    good = exports.prepare(exports.locate(exports.SAMPLE_DIR), work_dir / "good")
    seeded = run_dbt(["seed"], database, raw_dir=good, target_path=work_dir, capture=True)
    assert seeded.returncode == 0, seeded.stdout
    before = _raw_snapshot(database)
    bad = exports.prepare(
        exports.locate(
            copy_export(exports.SAMPLE_DIR, tmp_path / "bad", {"raw_titles": replace_field(7, "runtime", "long")})
        ),
        work_dir / "prepared",
    )
    result = run_dbt(["seed"], database, raw_dir=bad, target_path=work_dir, capture=True)
    assert result.returncode != 0
    assert "raw_titles" in result.stdout and 'invalid input syntax for type integer: "long"' in result.stdout
    assert _raw_snapshot(database) == before


def test_plain_dbt_seed_of_a_file_missing_a_column_names_file_and_column(
    database: Target, tmp_path: Path, work_dir: Path
) -> None:
    bad = exports.prepare(
        exports.locate(copy_export(exports.SAMPLE_DIR, tmp_path / "bad", {"raw_credits": drop_column("role")})),
        work_dir / "prepared",
    )
    result = run_dbt(["seed"], database, raw_dir=bad, target_path=work_dir, capture=True)
    assert result.returncode != 0
    assert "raw_credits.csv: header does not match the declared columns of raw_credits (missing: role" in result.stdout
