"""Publishing recommendations on real servers: atomic for readers, failures change nothing, rollback, pruning."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from contextlib import closing

import numpy as np
import pandas as pd
import psycopg2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from psycopg2.extensions import connection, cursor

from recommender.ml import publish
from recommender.ml.publish import checks, partitions, runs
from recommender.warehouse import access
from recommender.warehouse.targets import Target


@pytest.fixture
def conn(database: Target) -> Iterator[connection]:
    with closing(database.connect()) as connection:
        publish.ensure_schema(connection)
        yield connection


def _recommendations(users: int, k: int = 3, *, seed: int = 0) -> pd.DataFrame:
    """``k`` recommendations for each of users 1..``users``, sorted by user and rank."""
    rng = np.random.default_rng(seed)
    titles = rng.integers(1_000, 999_999, users * k)
    return pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(1, users + 1), k),
            "content_id": [f"{'tm' if n % 2 else 'ts'}{n}" for n in titles],
            "score": np.sort(rng.random(users * k)).astype("float32"),
            "rank": np.tile(np.arange(1, k + 1), users),
            # commas, quotes and non-ASCII survive the CSV stream
            "reason": [f'because you watched "Amélie, {n % 97}"' for n in titles],
        }
    )


def _published(conn: connection, recommendations: pd.DataFrame, model: str = "popularity", **kwargs) -> str:
    run_id = publish.start_run(conn, model, {"k": 3}, {"users": int(recommendations.user_id.nunique())})
    publish.publish(conn, run_id, recommendations, metrics={"ndcg": 0.1}, timings={"fit": 1.5}, **kwargs)
    return run_id


def _current(conn: connection) -> pd.DataFrame:
    with conn, conn.cursor() as cur:
        cur.execute(
            "select run_id, user_id, content_id, score, rank, reason from predictions.current_recommendations"
            " order by user_id, rank"
        )
        return pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description])


def _run(conn: connection, run_id: str) -> dict:
    with conn, conn.cursor() as cur:
        cur.execute("select * from predictions.model_runs where run_id = %s", (run_id,))
        return dict(zip([d.name for d in cur.description], cur.fetchone(), strict=True))


def _name(conn: connection, run_id: str) -> str:
    """The table of the run's rows, as the door names it."""
    with conn, conn.cursor() as cur:
        cur.execute("select predictions.partition_name(%s)", (run_id,))
        return cur.fetchone()[0]


def _partitions(conn: connection) -> set[str]:
    """Tables in schema predictions other than the parent (attached or not)."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "select relname from pg_class where relnamespace = 'predictions'::regnamespace and relkind = 'r'"
            " and relname not in ('model_runs', 'switch_lock')"
        )
        return {name for (name,) in cur.fetchall()}


def _assert_same_rows(rows: pd.DataFrame, run_id: str, recommendations: pd.DataFrame) -> None:
    assert (rows.run_id == run_id).all()
    expected = recommendations.reset_index(drop=True)
    for column in ("user_id", "content_id", "rank", "reason"):
        assert rows[column].tolist() == expected[column].tolist(), column
    np.testing.assert_array_equal(rows.score.to_numpy("float32"), expected.score.to_numpy("float32"))


def test_published_rows_are_current_with_their_run(conn: connection) -> None:
    recommendations = _recommendations(50, k=4)
    run_id = publish.start_run(conn, "ease", {"l2": np.float64(250.0), "nan": float("nan")}, {"events": 1234})
    assert re.fullmatch(r"run-\d{8}T\d{6}-[0-9a-f]{6}", run_id)
    assert _run(conn, run_id)["status"] == "running"
    assert publish.current_run(conn) is None

    result = publish.publish(conn, run_id, recommendations, metrics={"ndcg@10": 0.25}, timings={"fit": 2.5})

    assert (result.run_id, result.rows, result.users, result.previous_run) == (run_id, 200, 50, None)
    assert publish.current_run(conn) == run_id
    _assert_same_rows(_current(conn), run_id, recommendations)
    run = _run(conn, run_id)
    assert run["status"] == "published" and run["is_current"]
    assert (run["row_count"], run["user_count"]) == (200, 50)
    assert run["metrics"] == {"ndcg@10": 0.25} and run["timings"] == {"fit": 2.5}
    assert run["parameters"] == {"l2": 250.0, "nan": None} and run["data_snapshot"] == {"events": 1234}
    assert run["published_at"] is not None and run["finished_at"] is not None and run["error"] is None
    assert _partitions(conn) == {_name(conn, run_id)}
    publish.ensure_schema(conn)  # again: changes nothing
    assert publish.current_run(conn) == run_id


def test_a_second_publish_replaces_the_first_whole(conn: connection) -> None:
    first = _published(conn, _recommendations(30, seed=1))
    second_recommendations = _recommendations(20, k=5, seed=2)
    run_id = publish.start_run(conn, "ease", {}, {})
    result = publish.publish(conn, run_id, second_recommendations, metrics={}, timings={})
    assert result.previous_run == first
    _assert_same_rows(_current(conn), run_id, second_recommendations)
    assert not _run(conn, first)["is_current"] and _run(conn, first)["status"] == "published"


def test_the_attach_needs_no_validation_scan(conn: connection) -> None:
    with conn, conn.cursor() as cur:
        cur.execute("set client_min_messages = debug1")
    run_id = _published(conn, _recommendations(10))
    implied = f'partition constraint for table "{_name(conn, run_id)}" is implied by existing constraints'
    assert any(implied in notice for notice in conn.notices), conn.notices


def _poll(target: Target, stop: threading.Event, polls: list[tuple[float, float, list]], *, transaction: bool) -> None:
    """Count the current recommendations per run until ``stop``; in transactions of 5 reads, or autocommit."""
    with closing(target.connect()) as reader, reader.cursor() as cur:
        reader.autocommit = not transaction
        while not stop.is_set():
            began = time.monotonic()
            cur.execute("select run_id, count(*) from predictions.current_recommendations group by run_id")
            polls.append((began, time.monotonic(), cur.fetchall()))
            if transaction and len(polls) % 5 == 0:
                reader.commit()


def _readers(target: Target, count: int) -> tuple[threading.Event, list[list], list[threading.Thread]]:
    stop, polls = threading.Event(), [[] for _ in range(count)]
    threads = [
        threading.Thread(target=_poll, args=(target, stop, polls[i]), kwargs={"transaction": i % 2 == 1}, daemon=True)
        for i in range(count)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while not all(polls) and time.monotonic() < deadline:  # every reader has read before the publish starts
        time.sleep(0.01)
    assert all(polls), "a reader did not start"
    return stop, polls, threads


def test_readers_never_see_an_empty_partial_or_mixed_set(database: Target, conn: connection) -> None:
    size = 200_000
    old = _published(conn, _recommendations(size // 20, k=20, seed=3))
    stop, polls, threads = _readers(database, 2)
    run_id = publish.start_run(conn, "ease", {}, {})
    began = time.monotonic()
    publish.publish(conn, run_id, _recommendations(size // 20, k=20, seed=4), metrics={}, timings={})
    ended = time.monotonic()
    while not all(any(start > ended for start, _, _ in reader) for reader in polls) and time.monotonic() < ended + 30:
        time.sleep(0.01)  # until every reader has read again after the publish
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    every = [poll for reader in polls for poll in reader]
    assert all(rows in ([(old, size)], [(run_id, size)]) for _, _, rows in every), [
        rows for _, _, rows in every if rows not in ([(old, size)], [(run_id, size)])
    ]
    seen = {rows[0][0] for _, _, rows in every}
    assert seen == {old, run_id}  # the readers saw the switch
    assert any(began < start and end < ended for start, end, _ in every)  # and read while it was published

    # one user's current rows come from an index, not a scan of the partitions
    with conn, conn.cursor() as cur:
        cur.execute("explain select * from predictions.current_recommendations where user_id = 42")
        plan = "\n".join(line for (line,) in cur.fetchall())
    assert "Index" in plan and "Seq Scan on recommendations" not in plan, plan


def test_rapid_publishes_never_show_readers_an_empty_set(database: Target, conn: connection) -> None:
    """Readers that planned before a partition was attached must not see its run become current.

    Without publish's wait for older readers, about 1 % of these reads saw no rows.
    """
    recommendations = _recommendations(500, k=2)
    runs = [_published(conn, recommendations)]
    stop, polls, threads = _readers(database, 3)
    for _ in range(30):
        runs.append(_published(conn, recommendations, keep=3))
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    every = [rows for reader in polls for _, _, rows in reader]
    bad = [rows for rows in every if len(rows) != 1 or rows[0][1] != 1000 or rows[0][0] not in runs]
    assert not bad, f"{len(bad)} of {len(every)} reads: {bad[:5]}"
    assert len({rows[0][0] for rows in every}) > 2
    assert len(_partitions(conn)) == 3


def _untouched(conn: connection, run_id: str, recommendations: pd.DataFrame) -> None:
    assert publish.current_run(conn) == run_id
    _assert_same_rows(_current(conn), run_id, recommendations)
    assert _partitions(conn) == {_name(conn, run_id)}


def test_a_refused_run_fails_and_changes_nothing(conn: connection) -> None:
    good = _recommendations(40)
    previous = _published(conn, good)
    bad = _recommendations(40, seed=5)
    bad.loc[7, "rank"] = 0
    run_id = publish.start_run(conn, "ease", {}, {})
    with pytest.raises(publish.PublishError, match=r"column 'rank' must be between 1 and 32767: 1 row\(s\): row 7 "):
        publish.publish(conn, run_id, bad, metrics={}, timings={})
    run = _run(conn, run_id)
    assert run["status"] == "failed" and not run["is_current"] and "row 7" in run["error"]
    assert run["published_at"] is None and run["finished_at"] is not None
    _untouched(conn, previous, good)


def test_a_key_violation_in_the_database_fails_the_run(conn: connection, monkeypatch: pytest.MonkeyPatch) -> None:
    good = _recommendations(40)
    previous = _published(conn, good)
    duplicated = pd.concat([_recommendations(40, seed=6), _recommendations(1, seed=7)], ignore_index=True)
    monkeypatch.setattr(checks, "_duplicated", lambda user_id, rank: np.array([], dtype="int64"))  # let it through
    run_id = publish.start_run(conn, "ease", {}, {})
    with pytest.raises(psycopg2.errors.UniqueViolation):
        publish.publish(conn, run_id, duplicated, metrics={}, timings={})
    run = _run(conn, run_id)
    assert run["status"] == "failed" and "UniqueViolation" in run["error"] and "duplicate" in run["error"]
    _untouched(conn, previous, good)


def test_a_failure_during_the_copy_fails_the_run(conn: connection, monkeypatch: pytest.MonkeyPatch) -> None:
    good = _recommendations(40)
    previous = _published(conn, good)

    class Broken(partitions._CsvStream):
        calls = 0

        def read(self, size: int = -1) -> bytes:
            Broken.calls += 1
            if Broken.calls == 3:
                raise OSError("the stream broke")
            return super().read(size)

    monkeypatch.setattr(partitions, "_CsvStream", lambda table: Broken(table, batch_rows=10))
    run_id = publish.start_run(conn, "ease", {}, {})
    with pytest.raises(psycopg2.errors.QueryCanceled, match=r"error in \.read\(\) call: OSError the stream broke"):
        publish.publish(conn, run_id, _recommendations(40, seed=8), metrics={}, timings={})
    assert Broken.calls == 3
    assert _run(conn, run_id)["status"] == "failed" and "the stream broke" in _run(conn, run_id)["error"]
    _untouched(conn, previous, good)


def test_a_failure_after_the_attach_removes_the_partition(conn: connection, monkeypatch: pytest.MonkeyPatch) -> None:
    good = _recommendations(40)
    previous = _published(conn, good)
    attached = []

    def switch(cur: cursor, run_id: str) -> None:
        cur.execute("select relname from pg_class where relnamespace = 'predictions'::regnamespace")
        attached.append({name for (name,) in cur.fetchall()})
        raise RuntimeError("the switch failed")

    monkeypatch.setattr(runs, "make_current", switch)
    run_id = publish.start_run(conn, "ease", {}, {})
    with pytest.raises(RuntimeError, match="the switch failed"):
        publish.publish(conn, run_id, _recommendations(40, seed=9), metrics={}, timings={})
    assert _name(conn, run_id) in attached[0]  # it got that far
    assert _run(conn, run_id)["status"] == "failed" and "the switch failed" in _run(conn, run_id)["error"]
    _untouched(conn, previous, good)


def test_a_reader_that_never_ends_fails_the_publish_in_time(database: Target, conn: connection) -> None:
    good = _recommendations(40)
    previous = _published(conn, good)
    with closing(database.connect()) as reader, reader.cursor() as cur:
        cur.execute("select count(*) from predictions.current_recommendations")  # and stays in its transaction
        run_id = publish.start_run(conn, "ease", {}, {})
        with pytest.raises(publish.PublishError, match=rf"gave up after 0.5 s .*pid {reader.get_backend_pid()} "):
            publish.publish(conn, run_id, _recommendations(40, seed=10), metrics={}, timings={}, reader_wait_s=0.5)
        assert publish.current_run(conn) == previous
        cur.execute("select count(*) from predictions.current_recommendations")
        assert cur.fetchone()[0] == len(good)
    assert _run(conn, run_id)["status"] == "failed"
    _untouched(conn, previous, good)  # it waited before attaching: nothing was left behind


def test_rollback_returns_to_the_previous_run(conn: connection) -> None:
    with pytest.raises(publish.PublishError, match="no run is current"):
        publish.rollback(conn)
    first_recommendations = _recommendations(30, seed=11)
    first = _published(conn, first_recommendations)
    with pytest.raises(publish.PublishError, match=f"cannot roll back run {first}: there is no earlier published run"):
        publish.rollback(conn)
    second = _published(conn, _recommendations(25, seed=12))

    assert publish.rollback(conn) == first

    assert publish.current_run(conn) == first
    _assert_same_rows(_current(conn), first, first_recommendations)
    assert _run(conn, second)["status"] == "rolled_back" and not _run(conn, second)["is_current"]
    with pytest.raises(publish.PublishError, match=f"cannot roll back run {first}"):
        publish.rollback(conn)
    _published(conn, _recommendations(20, seed=13))
    assert publish.rollback(conn) == first  # the rolled-back run is no candidate


def test_pruning_keeps_the_newest_runs(conn: connection) -> None:
    runs = [_published(conn, _recommendations(10, seed=seed), keep=2) for seed in range(4)]
    assert _partitions(conn) == {_name(conn, run_id) for run_id in runs[2:]}
    assert [_run(conn, run_id)["status"] for run_id in runs] == ["published"] * 4
    assert publish.rollback(conn) == runs[2]
    with pytest.raises(publish.PublishError, match=r"2 earlier run\(s\) had their recommendations pruned"):
        publish.rollback(conn)
    # the current run keeps its rows even when newer runs outnumber keep
    runs.append(_published(conn, _recommendations(10, seed=5), keep=1))
    assert _partitions(conn) == {_name(conn, runs[-1])}


def test_a_failed_prune_does_not_fail_the_publish(conn: connection, monkeypatch: pytest.MonkeyPatch) -> None:
    _published(conn, _recommendations(10))

    def prune(*args: object) -> list[str]:
        raise psycopg2.errors.LockNotAvailable("canceling statement due to lock timeout")

    monkeypatch.setattr(runs, "prune", prune)
    run_id = publish.start_run(conn, "ease", {}, {})
    result = publish.publish(conn, run_id, _recommendations(10, seed=1), metrics={}, timings={}, keep=1)
    assert "lock timeout" in result.prune_error and "pruning stopped" in str(result)
    assert publish.current_run(conn) == run_id and _run(conn, run_id)["status"] == "published"


def test_runs_fail_once_and_publish_once(conn: connection) -> None:
    run_id = publish.start_run(conn, "ease", {}, {})
    publish.fail_run(conn, run_id, "first reason")
    publish.fail_run(conn, run_id, "second reason")  # as a caller's own except clause may
    assert _run(conn, run_id)["error"] == "first reason"
    with pytest.raises(publish.PublishError, match=f"run {run_id} is failed: open_rows takes a running run"):
        publish.publish(conn, run_id, _recommendations(5), metrics={}, timings={})
    with pytest.raises(publish.PublishError, match="'run-nope' is not a run id"):
        publish.publish(conn, "run-nope", _recommendations(5), metrics={}, timings={})
    with pytest.raises(publish.PublishError, match="there is no run run-20000101T000000-000000"):
        publish.publish(conn, "run-20000101T000000-000000", _recommendations(5), metrics={}, timings={})
    published = _published(conn, _recommendations(5))
    with pytest.raises(publish.PublishError, match="is published: fail_run takes a running or failed run"):
        publish.fail_run(conn, published, "too late")
    assert publish.current_run(conn) == published


@pytest.mark.parametrize("order", ["schema first", "grants first"])
def test_analysts_may_read_the_predictions(database: Target, order: str) -> None:
    with closing(database.connect()) as conn:
        with conn, conn.cursor() as cur:
            for role in ("analyst", "data_scientist"):  # as dbt creates them (roles are cluster-wide)
                cur.execute(
                    f"do $$ begin create role {role} nologin; exception when duplicate_object then null; end $$"
                )
        steps = [publish.ensure_schema, access.prepare_python_schemas]
        for step in steps if order == "schema first" else steps[::-1]:
            step(conn)
        partition = _name(conn, _published(conn, _recommendations(5)))
        with conn, conn.cursor() as cur:
            for relation in ("model_runs", "recommendations", "current_recommendations", partition):
                cur.execute("select has_table_privilege('analyst', %s, 'select')", (f"predictions.{relation}",))
                assert cur.fetchone()[0], relation


# ---------------------------------------------------------------------------------------------------------------------
# refusing bad recommendations (no database needed)


def _refusal(frame: pd.DataFrame) -> str:
    with pytest.raises(publish.PublishError) as caught:
        publish.check_rows(frame)
    return str(caught.value)


def test_refusals_name_the_column_and_the_rows() -> None:
    good = _recommendations(4)
    assert "missing column(s) 'reason'" in _refusal(good.drop(columns="reason"))
    assert "unexpected column(s) 'title'" in _refusal(good.assign(title="x"))
    assert "no rows" in _refusal(good.head(0))
    assert re.search(
        r"column 'content_id' has nulls: 1 row\(s\): row 3 \(user_id=2, rank=1\)",
        _refusal(good.assign(content_id=good.content_id.where(good.index != 3, None))),
    )
    assert re.search(
        r"column 'user_id' must hold integers: 1 row\(s\): row 1 \(user_id=1.5\)",
        _refusal(good.assign(user_id=good.user_id.astype(float).where(good.index != 1, 1.5))),
    )
    assert "column 'rank' must hold integers, not str" in _refusal(good.assign(rank="1"))
    assert re.search(
        r"column 'score' must be finite \(a real\): 1 row\(s\): row 2 \(score=",
        _refusal(good.assign(score=good.score.where(good.index != 2, np.inf))),
    )
    assert re.search(
        r"column 'reason' must hold text: 1 row\(s\): row 5 \(reason=7\)",
        _refusal(good.assign(reason=good.reason.astype(object).where(good.index != 5, 7))),
    )
    assert re.search(
        r"column 'content_id' must not be empty: 1 row\(s\): row 0 ",
        _refusal(good.assign(content_id=good.content_id.where(good.index != 0, ""))),
    )
    duplicated = good.copy()
    duplicated.loc[4, "rank"] = 3  # user 2 gets rank 3 twice: rows 4 and 5
    message = _refusal(duplicated)
    assert re.search(r"\(user_id, rank\) must be unique: 2 row\(s\): row 4 \(user_id=2, rank=3, ", message), message
    several = good.assign(rank=0, score=np.nan)
    assert "2 problem(s)" in _refusal(several)


@settings(max_examples=50, deadline=None)
@given(
    users=st.lists(st.integers(1, 2**40), min_size=1, max_size=30, unique=True),
    k=st.integers(1, 5),
    shuffle=st.randoms(use_true_random=False),
    broken=st.one_of(st.none(), st.integers(0, 10**6)),
)
def test_checked_rows_keep_their_values_and_a_bad_rank_is_found(users, k, shuffle, broken) -> None:
    frame = pd.DataFrame(
        {
            "user_id": np.repeat(users, k),
            "content_id": [f"tm{i}" for i in range(len(users) * k)],
            "score": np.linspace(0, 1, len(users) * k),
            "rank": np.tile(np.arange(1, k + 1), len(users)),
            "reason": "because",
        }
    )
    order = list(range(len(frame)))
    shuffle.shuffle(order)
    frame = frame.iloc[order].reset_index(drop=True)
    if broken is None:
        table = publish.check_rows(frame)
        assert table.column_names == list(publish.COLUMNS)
        assert table.column("user_id").to_pylist() == frame.user_id.tolist()
        assert table.column("rank").to_pylist() == frame["rank"].tolist()
    else:
        row = broken % len(frame)
        frame.loc[row, "rank"] = 0
        assert f"row {row} (rank=0)" in _refusal(frame)


def test_a_staged_run_becomes_current_only_in_its_callers_transaction(conn: connection) -> None:
    good = _recommendations(40)
    previous = _published(conn, good)
    staged = _published(conn, _recommendations(40, seed=11), current=False)
    _untouched_but_for(conn, previous, good, staged)
    assert _run(conn, staged)["status"] == "running" and _run(conn, staged)["row_count"] == 120
    with conn, conn.cursor() as cur:
        assert publish.make_current(cur, staged) == previous
    assert publish.current_run(conn) == staged and _run(conn, staged)["status"] == "published"


def _untouched_but_for(conn: connection, run_id: str, recommendations: pd.DataFrame, staged: str) -> None:
    assert publish.current_run(conn) == run_id
    _assert_same_rows(_current(conn), run_id, recommendations)
    assert _partitions(conn) == {_name(conn, run_id), _name(conn, staged)}


def _gone(conn: connection, pid: int) -> None:
    """Until the session ``pid`` has left pg_stat_activity (a backend exits a moment after its client closes)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with conn, conn.cursor() as cur:
            cur.execute("select count(*) from pg_stat_activity where pid = %s", (pid,))
            if cur.fetchone()[0] == 0:
                return
        time.sleep(0.01)


def test_a_run_whose_process_died_is_failed_and_pruned(database: Target, conn: connection) -> None:
    good = _recommendations(40)
    previous = _published(conn, good)
    with closing(database.connect()) as dying:  # its session ends as a killed process's would
        orphan = _published(dying, _recommendations(40, seed=12), current=False)
        running = publish.start_run(conn, "ease", {}, {})  # alive: its session is conn's
        assert publish.reap_orphans(conn) == []  # both sessions are alive
    _gone(conn, _run(conn, orphan)["backend_pid"])
    assert publish.reap_orphans(conn) == [orphan]
    assert _run(conn, orphan)["status"] == "failed"
    assert f"session {_run(conn, orphan)['backend_pid']} is gone" in _run(conn, orphan)["error"]
    assert _run(conn, running)["status"] == "running"
    publish.prune(conn)
    _untouched(conn, previous, good)
