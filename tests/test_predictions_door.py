"""Predictions change only through the door (the security definer functions of recommender/sql/predictions_door.sql).

On real servers, in a fresh database each: the group roles as dbt makes them, schema
predictions with a published current run, and people's logins as ``python -m recommender
access add`` makes them. Every attack is judged by the state afterwards: the current run
and the checksum of the rows readers see.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import Api, api_for
from psycopg2 import errors, sql
from psycopg2.extensions import connection

from recommender.api import keys
from recommender.api.routers.marts import PARQUET
from recommender.ml import publish
from recommender.warehouse import access, logins
from recommender.warehouse.targets import Target

COLUMNS = ["user_id", "content_id", "score", "rank", "reason"]


def _recommendations(users: int, k: int = 3, *, seed: int = 0, first_user: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(first_user, first_user + users), k),
            "content_id": [f"tm{n}" for n in rng.integers(1_000, 999_999, users * k)],
            "score": np.sort(rng.random(users * k)).astype("float32")[::-1],
            "rank": np.tile(np.arange(1, k + 1), users),
            "reason": "because you watched something",
        }
    )


def _publish(conn: connection, frame: pd.DataFrame, **kwargs) -> str:
    run_id = publish.start_run(conn, "ease", {"k": 3}, {"users": int(frame.user_id.nunique())})
    publish.publish(conn, run_id, frame, metrics={"ndcg": 0.1}, timings={}, **kwargs)
    return run_id


@dataclass(frozen=True)
class Warehouse:
    target: Target
    people: Callable[[str], connection]  # a new connection of a new login of the group

    def owner(self) -> connection:
        return self.target.connect()

    def seen(self) -> tuple:
        """What readers see: the current run, the checksum of its rows, the tables of predictions."""
        with closing(self.owner()) as conn, conn.cursor() as cur:
            cur.execute(
                "select (select run_id from predictions.model_runs where is_current),"
                " (select md5(string_agg(row(rows.*)::text, ',' order by user_id, rank))"
                "  from predictions.current_recommendations as rows),"
                " (select array_agg(relname::text order by relname) from pg_class"
                "  where relnamespace = 'predictions'::regnamespace and relkind in ('r', 'p', 'v'))"
            )
            return cur.fetchone()

    def run(self, run_id: str) -> dict:
        with closing(self.owner()) as conn, conn.cursor() as cur:
            cur.execute("select * from predictions.model_runs where run_id = %s", (run_id,))
            return dict(zip([d.name for d in cur.description], cur.fetchone(), strict=True))


def _groups(conn: connection) -> None:
    """The group roles as dbt's on-run-start makes them (roles are the server's: they may exist)."""
    with conn, conn.cursor() as cur:
        for group in logins.GROUPS:
            cur.execute(f"do $$ begin create role {group} nologin; exception when duplicate_object then null; end $$")


@pytest.fixture
def warehouse(database: Target) -> Iterator[Warehouse]:
    with closing(database.connect()) as conn:
        _groups(conn)
        publish.ensure_schema(conn)
        access.prepare_python_schemas(conn)
        _publish(conn, _recommendations(40))
    opened: list[connection] = []

    def person(group: str) -> connection:
        name = f"p{database.database[-12:]}_{len(opened)}"
        with closing(database.connect()) as conn:
            password = logins.add_login(conn, name, group)
        opened.append(
            psycopg2.connect(
                host=database.host, port=database.port, dbname=database.database, user=name, password=password
            )
        )
        return opened[-1]

    yield Warehouse(database, person)
    for conn in opened:
        conn.close()


def _current_partition(warehouse: Warehouse) -> str:
    with closing(warehouse.owner()) as conn, conn.cursor() as cur:
        cur.execute("select predictions.partition_name(run_id) from predictions.model_runs where is_current")
        return f"predictions.{cur.fetchone()[0]}"


def _denied(conn: connection, statement: str, code: str = "42501") -> str:
    """Run ``statement``, which must fail with ``code``; its message."""
    with pytest.raises(psycopg2.Error) as caught, conn.cursor() as cur:
        cur.execute(statement)
    conn.rollback()
    assert caught.value.pgcode == code, f"{statement}: {caught.value.pgcode} {caught.value}"
    return caught.value.diag.message_primary


def _writes(partition: str) -> list[str]:
    """Every direct change of predictions a reader might try."""
    row = "('run-20000101T000000-000000', 1, 'tm1', 1, 1, 'x')"
    attempts = [
        "update predictions.model_runs set is_current = false",
        "update predictions.model_runs set status = 'failed', is_current = false where is_current",
        "insert into predictions.model_runs (run_id, model, status) values ('run-mine', 'x', 'running')",
        "delete from predictions.model_runs",
        "truncate predictions.model_runs cascade",
        "select * from predictions.model_runs for update",
        "select * from predictions.switch_lock for update",
        "update predictions.switch_lock set only_row = true",
        "alter table predictions.model_runs add column note text",
        "drop view predictions.current_recommendations",
        "create table predictions.mine (x int)",
        "create view predictions.mine as select 1 as x",
        "create or replace function predictions.rollback() returns text language sql as $$ select 'x' $$",
        "comment on table predictions.model_runs is 'mine'",
        "alter table predictions.recommendations detach partition " + partition,
        "alter table predictions.recommendations add column note text",
        "create index on predictions.recommendations (score)",
        # the door's helpers run only inside it
        "select predictions.lock_switch()",
        "select predictions.take_lock('predictions.recommendations', 'access exclusive')",
        "select predictions.checked_run('run-20000101T000000-000000', 'x')",
    ]
    for table in ("predictions.recommendations", partition):
        attempts += [
            f"insert into {table} values {row}",
            f"update {table} set score = 0",
            f"delete from {table}",
            f"truncate {table}",
            f"drop table {table}",
            f"copy {table} from stdin",
            *(f"lock table {table} in {mode} mode" for mode in ("row share", "row exclusive", "access exclusive")),
        ]
    return attempts


@pytest.mark.parametrize("group", logins.GROUPS)
def test_direct_writes_are_denied_to_all_but_the_owner_and_change_nothing(warehouse: Warehouse, group: str) -> None:
    before = warehouse.seen()
    conn = warehouse.people(group)
    with conn, conn.cursor() as cur:
        cur.execute("set default_transaction_read_only = off")  # an analyst's session may lift its own
    for statement in _writes(_current_partition(warehouse)):
        _denied(conn, statement)
    with conn.cursor() as cur:  # reading is theirs, and the least lock
        cur.execute("lock table predictions.recommendations in access share mode")
        cur.execute("select count(*) from predictions.current_recommendations")
        assert cur.fetchone()[0] == 120
    conn.rollback()
    assert warehouse.seen() == before


def test_bad_calls_through_the_door_are_refused_and_change_nothing(warehouse: Warehouse) -> None:
    scientist, other = warehouse.people("data_scientist"), warehouse.people("data_scientist")
    with closing(warehouse.owner()) as owner:
        owners_run = publish.start_run(owner, "ease", {}, {}, session_bound=False)  # outlives this session
    mine = _publish(scientist, _recommendations(10, seed=1), current=False)  # staged: attached, still running
    published = _publish(other, _recommendations(10, seed=2), keep=5)
    failed = publish.start_run(scientist, "ease", {}, {})
    publish.fail_run(scientist, failed, "gave up")
    before = warehouse.seen()

    def refused(statement: str, code: str, says: str, caller: connection = scientist) -> None:
        assert says in _denied(caller, statement, code), statement

    for door in ("open_rows", "attach_rows", "make_current"):  # its own run, but published
        refused(f"select predictions.{door}('{published}')", "55000", f"run {published} is published", other)
    refused(f"select predictions.fail_run('{published}', 'too late')", "55000", "is published", other)
    assert warehouse.seen() == before
    publish.rollback(other)  # the owner's first run is current again
    before = warehouse.seen()

    refused("select predictions.start_run('bad model!', '{}', '{}')", "22023", "is not a model name")
    refused("select predictions.start_run('ease', '[1]', '{}')", "22023", "parameters must be a JSON object")
    refused("select predictions.open_rows('run-nope')", "22023", "'run-nope' is not a run id")
    refused("select predictions.open_rows('run-20000101T000000-000000')", "P0002", "there is no run")
    refused(f"select predictions.open_rows('{owners_run}')", "42501", "only that login, or the warehouse owner")
    refused(f"select predictions.fail_run('{owners_run}', 'mine now')", "42501", "was started by")
    refused(f"select predictions.open_rows('{published}')", "42501", "was started by")  # another person's
    refused(f"select predictions.make_current('{failed}')", "55000", f"run {failed} is failed")
    refused(f"select predictions.open_rows('{mine}')", "55000", "has its table of rows already")
    refused(f"select predictions.attach_rows('{mine}')", "55000", "are attached already")
    refused(f"select predictions.wait_for_readers('{mine}', -1)", "22023", "timeout_s must be between")
    refused(f"select predictions.record_results('{mine}', '[]', '{{}}')", "22023", "metrics must be a JSON object")
    refused("select * from predictions.prune(0)", "22023", "keep must be at least 1")
    # rows attached and made current in one transaction: readers planned before the attach were never waited for
    fresh = publish.start_run(scientist, "ease", {}, {})
    with scientist.cursor() as cur:
        cur.execute("select predictions.open_rows(%s)", (fresh,))
        insert = "insert into {} (user_id, content_id, score, rank, reason) values (1, 'tm1', 1, 1, 'x')"
        cur.execute(sql.SQL(insert).format(sql.SQL(cur.fetchone()[0])))
        cur.execute("select predictions.attach_rows(%s)", (fresh,))
    refused(f"select predictions.make_current('{fresh}')", "55000", "readers that planned their queries")
    assert warehouse.seen() == before
    assert warehouse.run(owners_run)["status"] == warehouse.run(mine)["status"] == "running"
    assert warehouse.run(published)["status"] == "rolled_back"


def _rows(conn: connection, run_id: str) -> pd.DataFrame:
    with conn, conn.cursor() as cur:
        cur.execute(
            "select user_id, content_id, score, rank, reason from predictions.recommendations where run_id = %s"
            " order by user_id, rank",
            (run_id,),
        )
        return pd.DataFrame(cur.fetchall(), columns=COLUMNS)


def _all_visible(conn: connection, table: str) -> tuple[int, int]:
    """The pages of ``table``, and how many the visibility map marks all-visible (ANALYZE counts them)."""
    with conn, conn.cursor() as cur:
        cur.execute(sql.SQL("analyze {}").format(sql.SQL(table)))
        cur.execute("select relpages, relallvisible from pg_class where oid = %s::regclass", (table,))
        return cur.fetchone()


def test_a_data_scientist_publishes_and_rolls_back_through_the_door(warehouse: Warehouse) -> None:
    scientist = warehouse.people("data_scientist")
    frame = _recommendations(2_000, k=5, seed=3)
    with closing(warehouse.owner()) as owner:
        previous = publish.current_run(owner)
        by_owner = _publish(owner, frame, current=False)  # staged: only its rows are compared
        by_scientist = _publish(scientist, frame)
        assert publish.current_run(owner) == by_scientist
        pd.testing.assert_frame_equal(_rows(owner, by_scientist), _rows(owner, by_owner))  # as the owner's land
        pd.testing.assert_frame_equal(_rows(owner, by_scientist), frame, check_dtype=False)
        publish.fail_run(owner, by_owner, "compared")
        run = warehouse.run(by_scientist)
        assert (run["started_by"], run["row_count"], run["user_count"]) == (scientist.info.user, 10_000, 2_000)
        # COPY FREEZE applied through the door (else it would have refused): its pages are all-visible at once,
        # where a COPY without FREEZE leaves none until a VACUUM (which pages depends on COPY's batches)
        with owner, owner.cursor() as cur:
            cur.execute("select 'predictions.' || predictions.partition_name(%s)", (by_scientist,))
            (partition,) = cur.fetchone()
            cur.execute(sql.SQL("create table public.unfrozen as select * from {}").format(sql.SQL(partition)))
        pages, visible = _all_visible(owner, partition)
        assert pages > 10 and visible > pages / 2
        assert _all_visible(owner, "public.unfrozen")[1] == 0
        assert publish.rollback(scientist) == previous
        assert publish.current_run(owner) == previous
        assert warehouse.run(by_scientist)["status"] == "rolled_back"


def test_a_data_scientist_prunes_what_only_the_owner_drops(warehouse: Warehouse) -> None:
    scientist = warehouse.people("data_scientist")
    runs = [_publish(scientist, _recommendations(5, seed=seed), keep=1) for seed in range(3)]
    with closing(warehouse.owner()) as owner:
        given_up = [run_id for run_id in runs if warehouse.run(run_id)["pruned_at"] is not None]
        assert given_up == runs[:2] and len(warehouse.seen()[2]) == 4 + 4  # their tables stay for the owner
        with pytest.raises(publish.PublishError, match="there is no earlier published run to return to"):
            publish.rollback(scientist)
        assert sorted(publish.prune(owner, keep=1)) == sorted([*given_up, *_first_runs(owner, runs)])
        assert len(warehouse.seen()[2]) == 1 + 4  # predictions' own: model_runs, recommendations, view, switch_lock


def _first_runs(conn: connection, others: list[str]) -> list[str]:
    with conn, conn.cursor() as cur:
        cur.execute("select run_id from predictions.model_runs where not (run_id = any(%s))", (others,))
        return [run_id for (run_id,) in cur.fetchall()]


def test_a_reader_holding_a_lock_fails_the_publish_in_time_naming_it(warehouse: Warehouse) -> None:
    scientist, reader = warehouse.people("data_scientist"), warehouse.people("analyst")
    before = warehouse.seen()
    with reader.cursor() as cur:
        cur.execute("select count(*), pg_backend_pid() from predictions.current_recommendations")
        reader_pid = cur.fetchone()[1]  # and its transaction stays open
    run_id = publish.start_run(scientist, "ease", {}, {})
    with pytest.raises(
        publish.PublishError, match=rf"gave up after 0.5 s .*pid {reader_pid} \(user {reader.info.user}"
    ):
        publish.publish(scientist, run_id, _recommendations(40, seed=4), metrics={}, timings={}, reader_wait_s=0.5)
    assert warehouse.run(run_id)["status"] == "failed"
    assert warehouse.seen() == before  # the previous run current, no partition behind
    reader.rollback()


def test_a_switch_held_elsewhere_bounds_the_wait_and_names_its_holder(warehouse: Warehouse) -> None:
    scientist = warehouse.people("data_scientist")
    before = warehouse.seen()
    with closing(warehouse.owner()) as holder:
        with holder.cursor() as cur:
            cur.execute("select pg_backend_pid() from predictions.switch_lock for update")
            holder_pid = cur.fetchone()[0]  # and its transaction stays open
        run_id = publish.start_run(scientist, "ease", {}, {})
        with pytest.raises(errors.LockNotAvailable, match=rf"another change of the current run .* pid {holder_pid} "):
            publish.publish(
                scientist, run_id, _recommendations(40, seed=5), metrics={}, timings={}, lock_timeout="200ms"
            )
        with pytest.raises(errors.LockNotAvailable, match=rf"pid {holder_pid} "):
            publish.rollback(scientist, lock_timeout="200ms")
        holder.rollback()
        assert warehouse.run(run_id)["status"] == "failed"
        publish.prune(holder)  # the failed run's partition: the owner drops it
    assert warehouse.seen() == before


def test_a_warehouse_built_before_loses_its_old_rights_on_the_next_ensure(warehouse: Warehouse) -> None:
    with closing(warehouse.owner()) as conn:
        with conn, conn.cursor() as cur:  # as prepare_python_schemas granted before the door
            cur.execute("grant usage, create on schema predictions to data_scientist")
            cur.execute("grant select, insert, update, delete on all tables in schema predictions to data_scientist")
            cur.execute(
                "alter default privileges in schema predictions grant select, insert, update, delete on tables"
                " to data_scientist"
            )
            cur.execute("comment on schema predictions is 'netflix_warehouse predictions before the door'")
        publish.ensure_schema(conn)
        with conn, conn.cursor() as cur:
            cur.execute(
                "select has_table_privilege('data_scientist', 'predictions.model_runs', 'insert, update, delete'),"
                " has_table_privilege('data_scientist', 'predictions.model_runs', 'select'),"
                " has_schema_privilege('data_scientist', 'predictions', 'create'),"
                " (select count(*) from pg_default_acl, aclexplode(defaclacl) as acl"
                "  where defaclnamespace = 'predictions'::regnamespace and acl.privilege_type <> 'SELECT'"
                "  and acl.grantee = 'data_scientist'::regrole),"
                " has_function_privilege('data_scientist', 'predictions.rollback()', 'execute'),"
                " has_function_privilege('analyst', 'predictions.rollback()', 'execute'),"
                " has_function_privilege('data_scientist', 'predictions.lock_switch()', 'execute')"
            )
            assert cur.fetchone() == (False, True, False, 0, True, False, False)


# ---------------------------------------------------------------------------------------------------------------------
# the same door over HTTP


@pytest.fixture
def door_api(warehouse: Warehouse) -> Iterator[Api]:
    with closing(warehouse.owner()) as conn:
        keys.ensure_schema(conn)  # before the API: the key of a second data scientist
        second = keys.create_key(conn, "data_scientist", "pytest another data scientist")
    with api_for(warehouse.target) as api:
        yield Api(api.client, {**api.keys, "other": second}, api.target)


def _parquet(frame: pd.DataFrame) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), sink)
    return sink.getvalue()


def test_the_api_publishes_through_the_door(door_api: Api, warehouse: Warehouse) -> None:
    http, scientist = door_api.client, door_api.headers("data_scientist")
    previous, *_ = warehouse.seen()
    start = {"model": "ease", "parameters": {"k": 3}, "data_snapshot": {"users": 20}}
    assert http.post("/runs", json=start).status_code == 401
    assert http.post("/runs", json=start, headers=door_api.headers("analyst")).status_code == 403
    assert http.post("/runs", json={**start, "model": "no spaces"}, headers=scientist).status_code == 422
    started = http.post("/runs", json=start, headers=scientist)
    assert started.status_code == 201 and started.json()["status"] == "running"
    run_id = started.json()["run_id"]
    assert warehouse.run(run_id)["started_by"] == logins.key_login(keys.parse_key_id(door_api.keys["data_scientist"]))

    path = f"/runs/{run_id}/recommendations"
    frame = _recommendations(20, seed=6)
    plain = http.put(path, content=b"x", headers={**scientist, "Content-Type": "text/plain"})
    assert plain.status_code == 415
    other = http.put(path, content=_parquet(frame), headers={**door_api.headers("other"), "Content-Type": PARQUET})
    assert other.status_code == 403 and "was started by" in other.json()["detail"]
    uploaded = http.put(path, content=_parquet(frame), headers={**scientist, "Content-Type": PARQUET})
    assert uploaded.status_code == 200 and uploaded.json() == {"run_id": run_id, "rows": 60, "users": 20}
    again = http.put(path, content=_parquet(frame), headers={**scientist, "Content-Type": PARQUET})
    assert again.status_code == 409 and "has its table of rows already" in again.json()["detail"]
    assert warehouse.seen()[0] == previous  # attached, not current

    published = http.post(f"/runs/{run_id}/publish", json={"metrics": {"ndcg": 0.2}}, headers=scientist)
    assert published.status_code == 200 and published.json()["is_current"] and published.json()["metrics"]
    with closing(warehouse.owner()) as owner:
        pd.testing.assert_frame_equal(_rows(owner, run_id), frame, check_dtype=False)
    rolled_back = http.post("/runs/rollback", headers=scientist)
    assert rolled_back.status_code == 200 and rolled_back.json()["run_id"] == previous
    assert http.post("/runs/rollback", headers=door_api.headers("analyst")).status_code == 403


def test_the_api_refuses_bad_rows_naming_the_column_and_row(door_api: Api, warehouse: Warehouse) -> None:
    http, scientist = door_api.client, door_api.headers("data_scientist")
    before = warehouse.seen()
    run_id = http.post("/runs", json={"model": "ease"}, headers=scientist).json()["run_id"]
    csv = "user_id,content_id,score,rank,reason\n1,tm1,0.9,1,x\n1,tm2,0.8,0,x\n2,tm1,0.7,1,x\n"
    refused = http.put(
        f"/runs/{run_id}/recommendations", content=csv.encode(), headers={**scientist, "Content-Type": "text/csv"}
    )
    assert refused.status_code == 422
    assert "column 'rank' must be between 1 and 32767: 1 row(s): row 1 (rank=0)" in refused.json()["detail"]
    assert warehouse.run(run_id)["status"] == "failed"
    assert http.post(f"/runs/{run_id}/publish", json={}, headers=scientist).status_code == 409
    unknown = http.post("/runs/run-20000101T000000-000000/fail", json={"error": "x"}, headers=scientist)
    assert unknown.status_code == 404
    assert http.post("/runs/run-nope/fail", json={"error": "x"}, headers=scientist).status_code == 422
    running = http.post("/runs", json={"model": "ease"}, headers=scientist).json()["run_id"]
    failed = http.post(f"/runs/{running}/fail", json={"error": "gave up"}, headers=scientist)
    assert failed.status_code == 200 and (failed.json()["status"], failed.json()["error"]) == ("failed", "gave up")
    assert warehouse.seen() == before
