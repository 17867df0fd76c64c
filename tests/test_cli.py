"""The command line as `make` calls it: exit codes and messages, against real servers."""

from __future__ import annotations

from pathlib import Path

from export_copies import copy_export, replace_field
from queries import cli

from recommender.warehouse import exports
from recommender.warehouse.targets import Target


def test_dsn_prints_the_uri_of_the_selected_server(database: Target) -> None:
    result = cli(database, "dsn")
    assert result.returncode == 0
    assert result.stdout.strip() == database.uri()


def test_psql_runs_on_the_warehouse(database: Target) -> None:
    result = cli(database, "psql", "-XAtc", "select current_database()")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == database.database


def test_run_with_a_corrupted_export_exits_nonzero_naming_file_line_and_column(
    database: Target, tmp_path: Path
) -> None:
    corrupted = copy_export(
        exports.SAMPLE_DIR, tmp_path / "corrupted", {"raw_titles": replace_field(3, "release_year", "nineteen-ninety")}
    )
    result = cli(database, "run", "--raw-data-dir", str(corrupted))
    assert result.returncode == 2
    assert "raw_titles.csv (raw_titles)" in result.stderr
    assert "line 3, column release_year" in result.stderr
    assert "nothing was changed" in result.stderr


def test_check_export_reports_row_counts(database: Target) -> None:
    result = cli(database, "check-export", str(exports.SAMPLE_DIR))
    assert result.returncode == 0, result.stderr
    assert "raw_titles: 600 rows" in result.stdout


def test_unknown_arguments_are_refused(database: Target) -> None:
    result = cli(database, "dsn", "--bogus")
    assert result.returncode == 2
    assert "unrecognized arguments: --bogus" in result.stderr
