"""Writing and reading users, viewing events and ratings, on real servers: validation, idempotence, round trips."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient
from psycopg2.extensions import connection
from queries import cli, query

from recommender import activity
from recommender.refresh import pipeline
from recommender.warehouse.dbt import run_dbt
from recommender.warehouse.targets import PROJECT_ROOT, Target, read_table


@pytest.fixture
def conn(small_warehouse: pipeline.Summary) -> Iterator[connection]:
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


def _events(conn: connection, user_ids: list[int]) -> pd.DataFrame:
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


def _ratings(conn: connection, user_ids: list[int]) -> pd.DataFrame:
    titles = read_table(conn, "core.titles", columns=["content_id"], order_by=["content_id"], limit=2).content_id
    return pd.DataFrame(
        {
            "rating_id": [9001, 9002, 9003],
            "user_id": [user_ids[0], user_ids[0], user_ids[1]],
            "content_id": [titles[0], titles[1], titles[0]],
            "rating": [5, 2, 3],
            "rated_at": pd.to_datetime(["2023-01-01 22:00", "2023-01-02 23:00", "2023-01-03 09:15"], utc=True),
        }
    )


def _count(conn: connection, table: str) -> int:
    with conn.cursor() as cur:
        cur.execute(f"select count(*) from {table}")
        return cur.fetchone()[0]


def test_written_frames_read_back_identical(conn: connection) -> None:
    users = _users(800_001)
    activity.write_users(conn, users)
    back = activity.read_users(conn)
    pd.testing.assert_frame_equal(
        back[back.user_id >= 800_001].reset_index(drop=True), activity.UserBatch.validate(users)
    )
    events = _events(conn, [800_001, 800_002])
    activity.write_events(conn, events)
    back_events = activity.read_events(conn, user_id=[800_001, 800_002])
    pd.testing.assert_frame_equal(back_events, activity.EventBatch.validate(events.assign(impression_id=None)))


def test_the_same_batch_twice_writes_once(conn: connection) -> None:
    users = _users(810_001)
    first = activity.write_users(conn, users)
    before = _count(conn, "app.users")
    second = activity.write_users(conn, users.copy())
    assert (first.written, second.written, second.batch_id) == (True, False, first.batch_id)
    assert _count(conn, "app.users") == before


def test_an_invalid_batch_is_refused_whole_with_row_level_reasons(conn: connection) -> None:
    users = _users(820_001).assign(plan=["basic", "gold", "standard"], country_code=["US", "US", "ZZ"])
    before = _count(conn, "app.users")
    with pytest.raises(activity.BatchError) as err:
        activity.write_users(conn, users)
    problems = err.value.problems
    assert set(zip(problems.row, problems.column, strict=True)) == {(1, "plan"), (2, "country_code")}
    assert "row 1: plan='gold'" in str(err.value)
    assert "row 2: country_code='ZZ': unknown country_code (not in core.countries)" in str(err.value)
    assert _count(conn, "app.users") == before


def test_an_unknown_title_is_refused_with_a_clear_message(conn: connection) -> None:
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


def test_a_missing_column_and_a_bad_type_are_named(conn: connection) -> None:
    events = _events(conn, [830_001, 830_002]).drop(columns=["device"]).assign(seconds_watched=["1", "x", "3"])
    with pytest.raises(activity.BatchError) as err:
        activity.write_events(conn, events)
    message = str(err.value)
    assert "device" in message and "column_in_dataframe" in message
    assert "seconds_watched" in message


def test_ratings_read_back_identical_and_are_written_once(conn: connection) -> None:
    activity.write_users(conn, _users(840_001))
    ratings = _ratings(conn, [840_001, 840_002])
    first = activity.write_ratings(conn, ratings)
    back = activity.read_ratings(conn, user_id=[840_001, 840_002])
    pd.testing.assert_frame_equal(back, activity.RatingBatch.validate(ratings.assign(impression_id=None)))
    assert list(back.columns) == activity.RATING_COLUMNS
    before = _count(conn, "app.ratings")
    second = activity.write_ratings(conn, ratings.copy())
    assert (first.written, second.written, second.batch_id) == (True, False, first.batch_id)
    assert _count(conn, "app.ratings") == before


def test_an_invalid_ratings_batch_is_refused_whole(conn: connection) -> None:
    activity.write_users(conn, _users(850_001))
    ratings = pd.concat([_ratings(conn, [850_001, 850_002])] * 2, ignore_index=True).assign(
        rating_id=range(9101, 9107), rating=[0, 6, 4, 4, 4.5, 3]
    )
    ratings.loc[2, "user_id"] = 999_999_999
    ratings.loc[3, "content_id"] = "tm0000001"
    before, batches = _count(conn, "app.ratings"), _count(conn, "app.batches")
    with pytest.raises(activity.BatchError) as err:
        activity.write_ratings(conn, ratings)
    problems = err.value.problems
    assert set(zip(problems.row.dropna(), problems.column[problems.row.notna()], strict=True)) == {
        (0, "rating"),
        (1, "rating"),
        (2, "user_id"),
        (3, "content_id"),
        (4, "rating"),  # 4.5 stars is refused, not cut to 4
    }
    message = str(err.value)
    assert message.startswith("ratings batch refused, nothing written")
    assert "row 1: rating=6" in message
    assert "row 2: user_id=999999999: unknown user_id (not in app.users)" in message
    assert "row 3: content_id='tm0000001': unknown content_id (not in core.titles)" in message
    assert (_count(conn, "app.ratings"), _count(conn, "app.batches")) == (before, batches)
    # a user id that is not even a number is named by pandera, not looked up
    with pytest.raises(activity.BatchError, match=r"row 0: user_id='someone'"):
        activity.write_ratings(conn, ratings.assign(user_id=["someone", *[850_001] * 5]))


def test_a_title_rated_again_keeps_both_ratings(conn: connection) -> None:
    activity.write_users(conn, _users(860_001, n=1))
    rating = _ratings(conn, [860_001, 860_001]).drop(columns=["rating_id"]).head(1)
    again = rating.assign(rating=1, rated_at=rating.rated_at + pd.Timedelta(days=30))
    first = activity.write_ratings(conn, rating)
    activity.write_ratings(conn, again)
    back = activity.read_ratings(conn, user_id=860_001)
    assert len(back) == 2 and back.content_id.nunique() == 1 and back.rating_id.is_unique
    assert back.sort_values("rated_at").rating.tolist() == [rating.rating.iloc[0], 1]  # both kept, in time order
    # ids derived from the typed columns: the same rating at another time resolution is the same batch
    nanoseconds = rating.assign(rated_at=rating.rated_at.astype("datetime64[ns, UTC]"))
    assert activity.write_ratings(conn, nanoseconds).batch_id == first.batch_id


def _database_now(conn: connection) -> pd.Timestamp:
    with conn, conn.cursor() as cur:  # a transaction of its own: now() is when it began
        cur.execute("select now()")
        return pd.Timestamp(cur.fetchone()[0])


def test_a_rating_without_its_time_is_given_now(conn: connection) -> None:
    activity.write_users(conn, _users(880_001, n=1))
    ratings = _ratings(conn, [880_001, 880_001]).drop(columns=["rating_id"]).head(2)
    before = _database_now(conn)
    activity.write_ratings(conn, ratings.drop(columns=["rated_at"]).head(1))  # no column
    activity.write_ratings(conn, ratings.assign(rated_at=[pd.NaT, ratings.rated_at[1]]).tail(1))  # given: kept
    activity.write_ratings(conn, ratings.assign(rated_at=[None, ratings.rated_at[1]]).head(1))  # null: now, again
    after = _database_now(conn)
    back = activity.read_ratings(conn, user_id=880_001).sort_values("rated_at")
    assert back.rated_at.iloc[0] == ratings.rated_at[1]
    assert before <= back.rated_at.iloc[1] < back.rated_at.iloc[2] <= after  # a rating again later is another one


def test_deleting_a_user_deletes_their_ratings(conn: connection) -> None:
    activity.write_users(conn, _users(870_001, n=1))
    written = activity.write_ratings(conn, _ratings(conn, [870_001, 870_001]).assign(rating_id=[9201, 9202, 9203]))
    assert activity.delete_users(conn, [870_001]) == 1
    assert activity.read_ratings(conn, user_id=870_001).empty
    assert not activity.is_written(conn, written.batch_id)


OLD_APP_SCHEMA = """
create schema app;
create table app.batches (
    batch_id text primary key,
    kind text not null check (kind in ('users', 'viewing_events')),
    row_count integer not null check (row_count >= 0),
    written_at timestamptz not null default now()
);
create schema core;
create table core.countries (country_code text primary key);
insert into core.countries values ('NA'), ('US'), ('LB');
create table core.titles (content_id text primary key);
insert into core.titles values ('tm1001'), ('ts2002');
"""


def test_ensure_schema_lets_an_older_warehouse_write_ratings(database: Target) -> None:
    def kind_check(cur: activity.cursor) -> list[tuple]:
        cur.execute(
            "select oid, conname, pg_get_constraintdef(oid) from pg_constraint"
            " where conrelid = 'app.batches'::regclass and contype = 'c' and conname like '%kind%'"
        )
        return cur.fetchall()

    with closing(database.connect()) as conn:
        with conn, conn.cursor() as cur:  # app.batches as the warehouses created before ratings have it
            cur.execute(OLD_APP_SCHEMA)
            assert [name for _, name, _ in kind_check(cur)] == ["batches_kind_check"]  # PostgreSQL's name
        activity.ensure_schema(conn)
        with conn.cursor() as cur:
            migrated = kind_check(cur)
        assert len(migrated) == 1 and "'ratings'::text" in migrated[0][2]
        activity.ensure_schema(conn)
        with conn.cursor() as cur:
            assert kind_check(cur) == migrated  # idempotent: a check that allows every kind is left as it is
        activity.write_users(conn, _users(1, n=2))
        ratings = pd.DataFrame(
            {
                "user_id": [1, 2],
                "content_id": ["tm1001", "ts2002"],
                "rating": [4, 5],
                "rated_at": pd.to_datetime(["2023-03-01 12:00", "2023-03-02 12:00"], utc=True),
            }
        )
        assert activity.write_ratings(conn, ratings).written
        assert len(activity.read_ratings(conn)) == 2


def test_dbt_loads_written_ratings_into_core_and_the_marts(small_warehouse: pipeline.Summary, work_dir: Path) -> None:
    target = small_warehouse.target
    with closing(target.connect()) as connection:
        activity.write_users(connection, _users(890_001, n=2))
        ratings = _ratings(connection, [890_001, 890_002]).assign(rating_id=[9401, 9402, 9403])
        activity.write_ratings(connection, ratings)
    selection = ["--select", "users", "source:app.ratings+"]  # core.users too: core.ratings' users are tested there
    result = run_dbt(["build", "--quiet", *selection], target, target_path=work_dir, capture=True)
    assert result.returncode == 0, result.stdout
    rows = query(
        target,
        "select rating_id, user_id, content_id, rating, rated_at from core.ratings"
        " where rating_id = any(%s) order by rating_id",
        ([9401, 9402, 9403],),
    )
    expected = activity.RatingBatch.validate(ratings)
    assert rows == [
        (row.rating_id, row.user_id, row.content_id, row.rating, row.rated_at.to_pydatetime())
        for row in expected.itertuples()
    ]
    # rated, never watched: a row each, weighted 1 + (stars - 1) / 2
    interactions = query(
        target,
        "select user_id, content_id, view_count, latest_rating, confidence::float8 from marts.ml_interactions"
        " where user_id in (890001, 890002) order by 1, 2",
    )
    assert interactions == [
        (row.user_id, row.content_id, 0, row.rating, 1 + (row.rating - 1) / 2) for row in expected.itertuples()
    ]
    summary = query(
        target,
        "select titles_watched, ratings_given, titles_rated, mean_rating::float8, last_rated_at"
        " from marts.user_activity_summary where user_id = 890001",
    )
    first_user = expected[expected.user_id == 890_001]
    assert summary == [(0, 2, 2, first_user.rating.mean(), first_user.rated_at.max().to_pydatetime())]


def test_read_table_filters_streams_and_names_unknown_columns(conn: connection) -> None:
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


def test_ml_interactions_has_one_row_per_watched_or_rated_pair(small_warehouse: pipeline.Summary) -> None:
    with closing(small_warehouse.target.connect()) as conn, conn.cursor() as cur:
        cur.execute(
            "select (select count(*) from marts.ml_interactions),"
            " (select count(*) from (select user_id, content_id from core.viewing_events"
            " union select user_id, content_id from core.ratings) as pairs),"
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
    assert "already written, skipped" in second.stdout
    with closing(target.connect()) as conn:
        assert _count(conn, "app.viewing_events") == events
    truth = pd.read_csv(tmp_path / "truth.csv")
    assert len(truth) == 150 and "genre_drama" in truth.columns


NOTEBOOK = PROJECT_ROOT / "notebooks" / "data_scientist_quickstart.ipynb"


def _outputs(notebook: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    return [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.get("outputs", [])]


def _images(outputs: list[nbformat.NotebookNode]) -> list[str]:
    return [output.data["image/png"] for output in outputs if "image/png" in output.get("data", {})]


@pytest.mark.one_server
def test_the_notebook_runs_twice(small_warehouse: pipeline.Summary, work_dir: Path) -> None:
    """Executed from scratch twice on one warehouse: the second cohort takes ids past the first, no errors, charts."""
    env = {**small_warehouse.target.env(), "DBT_TARGET_PATH": str(work_dir), "DBT_LOG_PATH": str(work_dir / "logs")}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        with closing(small_warehouse.target.connect()) as conn:
            users_before = _count(conn, "app.users")
        for _ in range(2):
            notebook = nbformat.read(NOTEBOOK, as_version=4)
            for cell in notebook.cells:
                if cell.cell_type == "code":
                    cell.outputs = []
            NotebookClient(
                notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": PROJECT_ROOT}}
            ).execute()
            outputs = _outputs(notebook)
            assert not [output for output in outputs if output.output_type == "error"]
            assert len(_images(outputs)) >= 3
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    text = "".join(output.get("text", "") for output in outputs)
    assert "credits streamed 1,000 at a time" in text and "viewing_events batch" in text
    with closing(small_warehouse.target.connect()) as conn:
        assert _count(conn, "app.users") == users_before + 2 * 200  # two cohorts of 200, the second not skipped


def test_the_saved_notebook_shows_charts_and_no_secrets() -> None:
    """The committed outputs hold the charts and nothing of the machine that ran them: no paths, DSNs or passwords."""
    outputs = _outputs(nbformat.read(NOTEBOOK, as_version=4))
    assert len(_images(outputs)) >= 3 and not [output for output in outputs if output.output_type == "error"]
    text = json.dumps(
        [
            {**output, "data": {k: v for k, v in output.get("data", {}).items() if k != "image/png"}}
            for output in outputs
        ]
    )
    for leak in ("/work/", "/home/", "/tmp/", "/root/", "postgresql://", "password", "PGPASSWORD"):
        assert leak not in text
