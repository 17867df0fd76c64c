"""The command line as `make` calls it: exit codes and messages, against real servers."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from export_copies import copy_export, replace_field
from queries import cli

import recommender.cli
from recommender.warehouse import exports, logins
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


def _parsers(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the command tree, the root first, with its command line."""
    yield parser.prog, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield from _parsers(child)


def test_every_option_of_every_command_has_help_that_shows_its_default() -> None:
    missing = []
    for prog, parser in _parsers(recommender.cli.parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            if not action.option_strings:  # an argument: it says what it is
                missing += [] if action.help else [f"{prog} {action.dest}: no help"]
                continue
            shown = formatter._expand_help(action) if action.help else ""
            if not action.help or not ("(default: " in shown or shown.endswith("(required)")):
                missing.append(f"{prog} {action.option_strings[0]}: {shown!r}")
    assert not missing
    assert len(list(_parsers(recommender.cli.parser()))) > 20  # the walk reached the nested commands


def test_the_help_is_plain_text_and_shows_the_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ([], ["simulate"], ["server"]):
        with pytest.raises(SystemExit):
            recommender.cli.main([*command, "--help"])
    shown = capsys.readouterr().out
    assert "``" not in shown
    assert "(default: 3000)" in shown  # simulate --users
    assert "{start,stop,status}" in shown


@pytest.mark.parametrize(
    ("environ", "host", "port"),
    [
        ({"NETFLIX_PGPORT": "54998"}, "127.0.0.1", 54998),
        ({"PGHOST": "db.internal", "PGPORT": "6543"}, "db.internal", 6543),
    ],
    ids=["embedded", "own server"],
)
def test_pgadmin_writes_a_server_per_group_on_the_configured_port_and_no_password(
    environ: dict[str, str], host: str, port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("PGHOST", "PGPORT", "PGPASSWORD", "NETFLIX_PGPORT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PGDATABASE", "wh_pgadmin")
    out = tmp_path / "servers.json"
    assert recommender.cli.main(["pgadmin", "--out", str(out)]) == 0
    servers = list(json.loads(out.read_text())["Servers"].values())
    assert [server["Name"].rsplit("(", 1)[1].rstrip(")") for server in servers] == list(logins.GROUPS)
    assert {(s["Host"], s["Port"], s["MaintenanceDB"]) for s in servers} == {(host, port, "wh_pgadmin")}
    assert all(set(server) >= {"Name", "Group", "Username", "SSLMode"} for server in servers)
    assert not [key for server in servers for key in server if "pass" in key.lower()]  # no Password, no PassFile
