"""An experiment's report from hand-made mart rows: the markdown (definition, one row per arm, how to read it),
a valid chart per daily metric, what is missing said plainly, and the command line's exit codes."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import closing
from datetime import date
from pathlib import Path

import matplotlib.image
import pytest
from experiment_marts import DAILY_METRICS, daily_rows, summary_row, write_daily, write_summary
from queries import cli

from recommender import activity
from recommender.errors import MissingError
from recommender.experiments.report import write_report
from recommender.warehouse.targets import Target

ARMS = {"control": True, "ease": False, "als": False}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def warehouse(new_database: Callable[[], Target]) -> Target:
    """A database with the app schema, experiment 1 (three arms) and its mart rows; experiment 2 has none."""
    target = new_database()
    with closing(target.connect()) as conn:
        with conn, conn.cursor() as cur:
            cur.execute(
                "create schema core; create table core.titles (content_id text primary key);"
                " create table core.countries (country_code text primary key)"
            )
        activity.ensure_schema(conn)
        for experiment_id in (1, 2):
            arms = tuple(
                activity.Arm(arm, model=arm if arm != "control" else "popularity", is_control=is_control)
                for arm, is_control in ARMS.items()
            )
            experiment = activity.Experiment(experiment_id, f"three arms {experiment_id}", 7, date(2024, 5, 1), 5, arms)
            activity.create_experiment(conn, experiment)
    write_summary(target, [summary_row(1, arm, is_control, 1 + n) for n, (arm, is_control) in enumerate(ARMS.items())])
    write_daily(target, daily_rows(1, ARMS, 5, date(2024, 5, 1)))
    return target


def test_the_report_has_the_definition_a_row_per_arm_and_a_chart_per_metric(warehouse: Target, tmp_path: Path) -> None:
    with closing(warehouse.connect()) as conn:
        report = write_report(conn, 1, tmp_path / "report")
    assert report == tmp_path / "report" / "report.md"
    text = report.read_text()
    assert text.startswith("# Experiment 1: three arms 1")
    assert "seed: 7" in text and "first day: 2024-05-01" in text and "How to read it" in text
    section = text.split("## Summary by arm", 1)[1].split("### How to read it", 1)[0]
    header, _, *rows = [line for line in section.splitlines() if line.startswith("|")]
    assert "watch min / user [95% CI]" in header and "lift" in header
    assert [row.split(" | ")[0] for row in rows] == ["| control (control)", "| als", "| ease"]
    assert " +15.0% [" in rows[1] and " — |" in rows[0]  # als: lift 0.05 * 3 with its interval; the control none
    charts = sorted(tmp_path.glob("report/*.png"))
    assert len(charts) == len(DAILY_METRICS)
    for chart in charts:
        assert chart.read_bytes()[:8] == PNG_SIGNATURE and chart.stat().st_size > 1000
        height, width, _ = matplotlib.image.imread(chart).shape
        assert height > 100 and width > 100
        assert f"]({chart.name})" in text


def test_what_is_missing_is_said_with_what_to_run(warehouse: Target, tmp_path: Path) -> None:
    with closing(warehouse.connect()) as conn:
        with pytest.raises(MissingError, match="no experiment 9"):
            write_report(conn, 9, tmp_path)
        with pytest.raises(MissingError, match=r"no rows of experiment 2.*dbt build"):
            write_report(conn, 2, tmp_path)
        with conn, conn.cursor() as cur:
            cur.execute("drop table marts.experiment_daily_metrics")
        with pytest.raises(MissingError, match=r"experiment_daily_metrics is not in the warehouse.*make run"):
            write_report(conn, 1, tmp_path)
    assert not (tmp_path / "report.md").exists()


def test_the_command_prints_where_the_report_is_and_refuses_a_missing_experiment(
    warehouse: Target, tmp_path: Path
) -> None:
    done = cli(warehouse, "experiment", "report", "1", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert str(tmp_path / "out" / "report.md") in done.stdout and len(done.stdout.strip().splitlines()) == 1
    assert (tmp_path / "out" / "daily_regret.png").is_file()
    missing = cli(warehouse, "experiment", "report", "9", "--out", str(tmp_path / "none"))
    assert missing.returncode == 2 and "no experiment 9" in missing.stderr
    assert cli(warehouse, "experiment", "report", "0").returncode == 2  # refused by its arguments
