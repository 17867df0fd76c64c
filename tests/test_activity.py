"""Writing and reading users and viewing events, on real servers: validation, idempotence, round trips."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from queries import cli

from recommender import activity, pipeline
from recommender.warehouse import PROJECT_ROOT, read_table


@pytest.fixture
def conn(small_warehouse: pipeline.Summary) -> Iterator[activity.connection]:
    with closing(small_warehouse.target.connect()) as connection:
        yield connection


def _users(first_id: int, n: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": range(first_id, first_id + n),
            "age_band": ["18-24", "35-44", "65+"][:n],
            "country_code": ["NA", "US", "LB"][:n],
            "signup_date": pd.to_datetime(["2021-05-01", "2022-01-31", "2020-12-24"][:n]),
            "plan": ["basic", "premium", "standard"][:n],
            "device": ["mobile", "tv", "web"][:n],
            "language": ["en", "en", "ar"][:n],
            "attributes": [{"cohort": "a", "score": 1.5}, {}, {"tags": ["x", "y"]}][:n],
        }
    )


def _events(conn: activity.connection, user_ids: list[int]) -> pd.DataFrame:
    titles = read_table(conn, "core.titles", columns=["content_id"], order_by=["content_id"], limit=2).content_id
    return pd.DataFrame(
        {
            "event_id": [7001, 7002, 7003],
            "user_id": [user_ids[0], user_ids[0], user_ids[1]],
            "content_id": [titles[0], titles[1], titles[0]],
            "started_at": pd.to_datetime(["2023-01-01 20:00", "2023-01-02 21:30", "2023-01-03 08:00"], utc=True),
            "seconds_watched": [5400, 1200, 0],
            "completion_ratio": [1.0, 0.25, 0.0],
            "rating": pd.array([5, None, 1], dtype="Int16"),
            "device": ["tv", "mobile", "web"],
        }
    )


def _count(conn: activity.connection, table: str) -> int:
    with conn.cursor() as cur:
        cur.execute(f"select count(*) from {table}")
        return cur.fetchone()[0]


def test_written_frames_read_back_identical(conn: activity.connection) -> None:
    users = _users(800_001)
    activity.write_users(conn, users)
    back = activity.read_users(conn)
    pd.testing.assert_frame_equal(
        back[back.user_id >= 800_001].reset_index(drop=True), activity.UserBatch.validate(users)
    )
    events = _events(conn, [800_001, 800_002])
    activity.write_events(conn, events)
    back_events = activity.read_events(conn, user_id=[800_001, 800_002])
    pd.testing.assert_frame_equal(back_events, activity.EventBatch.validate(events))


def test_the_same_batch_twice_writes_once(conn: activity.connection) -> None:
    users = _users(810_001)
    first = activity.write_users(conn, users)
    before = _count(conn, "app.users")
    second = activity.write_users(conn, users.copy())
    assert (first.written, second.written, second.batch_id) == (True, False, first.batch_id)
    assert _count(conn, "app.users") == before


def test_an_invalid_batch_is_refused_whole_with_row_level_reasons(conn: activity.connection) -> None:
    users = _users(820_001).assign(plan=["basic", "gold", "standard"], country_code=["US", "US", "ZZ"])
    before = _count(conn, "app.users")
    with pytest.raises(activity.BatchError) as err:
        activity.write_users(conn, users)
    problems = err.value.problems
    assert set(zip(problems.row, problems.column, strict=True)) == {(1, "plan"), (2, "country_code")}
    assert "row 1: plan='gold'" in str(err.value)
    assert "row 2: country_code='ZZ': unknown country_code (not in core.countries)" in str(err.value)
    assert _count(conn, "app.users") == before


def test_an_unknown_title_is_refused_with_a_clear_message(conn: activity.connection) -> None:
    activity.write_users(conn, _users(830_001))
    events = _events(conn, [830_001, 830_002]).assign(event_id=[8001, 8002, 8003])
    events.loc[2, "content_id"] = "tm0000001"
    before = _count(conn, "app.viewing_events")
    with pytest.raises(
        activity.BatchError, match=r"row 2: content_id='tm0000001': unknown content_id \(not in core.titles\)"
    ):
        activity.write_events(conn, events)
    events.loc[1, "user_id"] = 999_999_999
    with pytest.raises(activity.BatchError, match=r"row 1: user_id=999999999: unknown user_id \(not in app.users\)"):
        activity.write_events(conn, events)
    assert _count(conn, "app.viewing_events") == before


def test_a_missing_column_and_a_bad_type_are_named(conn: activity.connection) -> None:
    events = _events(conn, [830_001, 830_002]).drop(columns=["device"]).assign(seconds_watched=["1", "x", "3"])
    with pytest.raises(activity.BatchError) as err:
        activity.write_events(conn, events)
    message = str(err.value)
    assert "device" in message and "column_in_dataframe" in message
    assert "seconds_watched" in message


def test_read_table_filters_streams_and_names_unknown_columns(conn: activity.connection) -> None:
    movies = read_table(
        conn, "marts.catalogue", columns=["content_id", "content_type"], where={"content_type": "movie"}
    )
    assert len(movies) > 0 and set(movies.content_type) == {"movie"}
    picked = read_table(conn, "core.titles", where={"content_id": movies.content_id[:3].tolist()})
    assert sorted(picked.content_id) == sorted(movies.content_id[:3])
    assert len(read_table(conn, "core.titles", where={"title": None})) == 1
    chunks = list(read_table(conn, "core.credits", columns=["person_id"], chunksize=1000))
    assert {len(chunk) for chunk in chunks[:-1]} == {1000}
    assert sum(map(len, chunks)) == _count(conn, "core.credits")
    with pytest.raises(KeyError, match="has no column 'rating'"):
        read_table(conn, "core.titles", columns=["rating"])
    with pytest.raises(LookupError, match=r"no table or view 'core\.nothing'"):
        read_table(conn, "core.nothing")


def test_ml_interactions_has_one_row_per_watched_pair(small_warehouse: pipeline.Summary) -> None:
    with closing(small_warehouse.target.connect()) as conn, conn.cursor() as cur:
        cur.execute(
            "select (select count(*) from marts.ml_interactions),"
            " (select count(*) from (select distinct user_id, content_id from core.viewing_events) as pairs),"
            " (select min(confidence) from marts.ml_interactions)"
        )
        interactions, pairs, min_confidence = cur.fetchone()
    assert interactions == pairs > 0
    assert min_confidence >= 1
    assert small_warehouse.row_counts["core.viewing_events"] == small_warehouse.row_counts["app.viewing_events"]


def test_simulate_twice_leaves_the_event_count_unchanged(small_warehouse: pipeline.Summary, tmp_path: Path) -> None:
    target = small_warehouse.target
    command = ["simulate", "--users", "150", "--days", "10", "--seed", "3", "--first-user-id", "600000"]
    first = cli(target, *command, "--truth", str(tmp_path / "truth.csv"))
    assert first.returncode == 0, first.stderr
    with closing(target.connect()) as conn:
        events = _count(conn, "app.viewing_events")
    second = cli(target, *command)
    assert second.returncode == 0, second.stderr
    assert "already in the warehouse, skipped" in second.stdout
    with closing(target.connect()) as conn:
        assert _count(conn, "app.viewing_events") == events
    truth = pd.read_csv(tmp_path / "truth.csv")
    assert len(truth) == 150 and "genre_drama" in truth.columns


def test_the_notebook_runs(small_warehouse: pipeline.Summary, work_dir: Path) -> None:
    notebook = nbformat.read(PROJECT_ROOT / "notebooks" / "data_scientist_quickstart.ipynb", as_version=4)
    env = {**small_warehouse.target.env(), "DBT_TARGET_PATH": str(work_dir), "DBT_LOG_PATH": str(work_dir / "logs")}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(
            notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": PROJECT_ROOT}}
        ).execute()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    outputs = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.output_type == "error"]
    text = "".join(output.get("text", "") for output in outputs)
    assert "credits streamed 1,000 at a time" in text and "viewing_events batch" in text
