"""Training on the warehouse and publishing: every user covered, new users served, failures harmless, rollback."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import pandas as pd
import pytest
from queries import cli, query

from recommender import activity
from recommender.ml import train
from recommender.refresh import pipeline
from recommender.warehouse.dbt import run_dbt
from recommender.warehouse.targets import Target

K = 20


def test_after_the_pipeline_every_user_has_k_current_recommendations(sample_warehouse: pipeline.Summary) -> None:
    target = sample_warehouse.target
    ((users, covered, rows, watched_reasons, blank_reasons),) = query(
        target,
        "select (select count(*) from core.users),"
        " (select count(distinct user_id) from marts.user_recommendations"
        "  where user_id in (select user_id from core.users)),"
        " (select count(*) from marts.user_recommendations),"
        " (select count(*) from marts.user_recommendations where reason like 'because you watched %'),"
        " (select count(*) from marts.user_recommendations where coalesce(reason, '') = '')",
    )
    assert users == covered == 500
    assert rows == users * K
    assert watched_reasons > rows / 2 and blank_reasons == 0
    # nothing recommended that the user already watched
    assert query(
        target,
        "select count(*) from marts.user_recommendations as r"
        " inner join marts.ml_interactions as i on r.user_id = i.user_id and r.content_id = i.content_id",
    ) == [(0,)]


def test_the_run_records_its_data_metrics_and_beats_popularity(sample_warehouse: pipeline.Summary) -> None:
    ((status, current, model, snapshot, metrics, user_count),) = query(
        sample_warehouse.target,
        "select status, is_current, model, data_snapshot, metrics, user_count from predictions.model_runs",
    )
    assert (status, current, model, user_count) == ("published", True, "default", 500)
    assert snapshot["interactions"] == sample_warehouse.row_counts["marts.ml_interactions"]
    assert metrics["default"]["ndcg"] > metrics["popularity"]["ndcg"] > 0
    assert metrics["default"]["precision"] > metrics["popularity"]["precision"]


def test_the_run_parameters_show_what_the_tuning_chose(sample_warehouse: pipeline.Summary) -> None:
    ((parameters, timings),) = query(
        sample_warehouse.target,
        "select parameters, timings from predictions.model_runs where model = 'default' order by started_at limit 1",
    )
    tuning = parameters["tuning"]
    chosen = tuning["chosen"]
    assert tuning["validation"]["users"] > 0 and tuning["trials"][0]["component"] == "ease"
    assert set(tuning["space"]) >= {"ease", "als", "als_share"}
    total = parameters["weights"].get("ease", 0) + parameters["weights"].get("als", 0)
    for name, share in (("ease", 1 - chosen["als_share"]), ("als", chosen["als_share"])):
        assert parameters["weights"].get(name, 0) == pytest.approx(total * share)
        if share > 0:  # the published model is built from the chosen settings
            assert parameters["models"][name] == chosen[name]
    assert parameters["tune"]["validation"] == "auto" and "tune" in timings


def _current(summary: pipeline.Summary) -> tuple[str, list[tuple]]:
    rows = query(
        summary.target,
        "select run_id, user_id, content_id, rank from predictions.current_recommendations order by user_id, rank",
    )
    return rows[0][0], rows


def test_a_brand_new_user_gets_recommendations(small_warehouse: pipeline.Summary, work_dir: Path) -> None:
    target = small_warehouse.target
    newcomer = pd.DataFrame(
        {
            "user_id": [900001],
            "age_band": ["25-34"],
            "country_code": ["BR"],
            "signup_date": pd.to_datetime(["2023-02-01"]),
            "plan": ["basic"],
            "device": ["mobile"],
            "language": ["pt"],
            "attributes": [{}],
        }
    )
    with closing(target.connect()) as conn:
        activity.write_users(conn, newcomer)
    assert run_dbt(["build", "--quiet", "--select", "source:app+"], target, target_path=work_dir).returncode == 0
    with closing(target.connect()) as conn:
        result = train.train(conn, k=K)
    assert result.users == small_warehouse.row_counts["core.users"] + 1
    rows = query(
        target,
        "select recommendation_rank, reason from marts.user_recommendations"
        " where user_id = 900001 order by recommendation_rank",
    )
    assert [rank for rank, _ in rows] == list(range(1, K + 1))
    assert {reason for _, reason in rows} == {"popular with viewers"}


def test_a_run_failing_mid_way_leaves_the_current_run_untouched(
    small_warehouse: pipeline.Summary, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _current(small_warehouse)

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("explaining failed")

    monkeypatch.setattr(train, "explain", broken)
    with closing(small_warehouse.target.connect()) as conn, pytest.raises(RuntimeError, match="explaining failed"):
        train.train(conn, k=K)
    assert _current(small_warehouse) == before
    ((status, error),) = query(
        small_warehouse.target, "select status, error from predictions.model_runs order by started_at desc limit 1"
    )
    assert status == "failed" and "explaining failed" in error


def test_rollback_makes_the_previous_run_current_again(small_warehouse: pipeline.Summary) -> None:
    target = small_warehouse.target
    first_run, first_rows = _current(small_warehouse)
    with closing(target.connect()) as conn:
        second = train.train(conn, "ease", k=5)
    assert _current(small_warehouse)[0] == second.run_id
    result = cli(target, "rollback")
    assert result.returncode == 0, result.stderr
    assert first_run in result.stdout
    assert _current(small_warehouse) == (first_run, first_rows)
    assert query(target, "select status from predictions.model_runs where run_id = %s", (second.run_id,)) == [
        ("rolled_back",)
    ]
    assert query(target, "select count(distinct run_id) from marts.user_recommendations") == [(1,)]


def test_train_on_an_empty_warehouse_says_what_to_run_first(database: Target) -> None:
    result = cli(database, "train")
    assert result.returncode == 2
    assert "error:" in result.stderr and "marts.ml_interactions" in result.stderr


def test_evaluate_on_the_warehouse_scores_models_against_the_simulated_tastes(
    sample_warehouse: pipeline.Summary, tmp_path: Path
) -> None:
    target = sample_warehouse.target
    tastes = tmp_path / "tastes.csv"
    # the fixture's own cohort again: nothing is written, the tastes are
    simulated = cli(target, "simulate", "--users", "500", "--days", "14", "--truth", str(tastes))
    assert simulated.returncode == 0, simulated.stderr
    assert "already written, skipped" in simulated.stdout
    result = cli(target, "evaluate", "--models", "popularity,ease", "--truth", str(tastes), "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    rows = {line.split("|")[1].strip(): line for line in result.stdout.splitlines() if line.startswith("| ")}
    assert set(rows) == {"model", "---", "popularity", "ease"}
    header = [cell.strip() for cell in rows["model"].split("|")[1:-1]]
    taste = {name: float(rows[name].split("|")[1:-1][header.index("taste")]) for name in ("popularity", "ease")}
    assert 0 < taste["popularity"] < taste["ease"] <= 1
    assert (tmp_path / "warehouse-evaluation.md").is_file() and (tmp_path / "warehouse-evaluation.png").stat().st_size


def test_source_freshness_passes_after_a_fresh_run(sample_warehouse: pipeline.Summary, work_dir: Path) -> None:
    result = run_dbt(["source", "freshness"], sample_warehouse.target, target_path=work_dir)
    assert result.returncode == 0
    sources = json.loads((work_dir / "sources.json").read_text())["results"]
    statuses = {source["unique_id"].removeprefix("source.netflix_warehouse."): source["status"] for source in sources}
    # app.ratings has no freshness check: the sample's cohort rates nothing, and an empty table counts as stale
    assert statuses == {"app.users": "pass", "app.viewing_events": "pass", "predictions.model_runs": "pass"}
