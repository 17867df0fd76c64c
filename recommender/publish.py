"""Publishing a model run's recommendations to schema ``predictions``, atomically, with rollback.

A run is registered by ``start_run`` ('running') and published by ``publish``:

1. the recommendations are checked whole (``PublishError`` names each bad column and row);
2. in one transaction, its rows go by one streamed COPY into a new table of their own,
   ``predictions.recommendations_<run>`` (a CHECK ``run_id = '<run>'`` lets the ATTACH
   skip its validation scan), which gets its primary key and is attached as a partition
   of ``predictions.recommendations``. ATTACH takes only SHARE UPDATE EXCLUSIVE on the
   parent, so readers are never blocked; the new rows belong to a run that is not current;
3. it waits until every transaction that held a lock on ``predictions.recommendations``
   before the attach has ended (as CREATE INDEX CONCURRENTLY does). A query planned before
   the attach does not know the new partition; were the run made current while such a
   query takes its snapshot, it would see no rows at all. Measured: without this wait,
   about 1 % of the reads made during rapid publishes saw an empty set;
4. in one transaction, the previous run stops being current and this one becomes current.
   Readers of ``predictions.current_recommendations`` see the old run's rows, then the new
   run's, never an empty, partial or mixed set;
5. partitions beyond the newest ``keep`` published or rolled-back runs are detached
   concurrently and dropped; failing to do so is reported and never fails the publish.

A failure at any step marks the run 'failed' with its error and leaves no partition
behind (one attached before the failure is detached and dropped; if a reader blocks that,
the next publish's pruning drops it); the previous run stays current, its rows untouched.
``rollback`` makes the previous published run current again.

The rows are written with COPY FREEZE (the table is new in the transaction): readers never
set hint bits on them and index-only scans work at once. As PostgreSQL documents for FREEZE,
a REPEATABLE READ transaction older than the publish that reads the parent table directly
can see the new run's rows (never through ``current_recommendations``, which joins the
current run as of its snapshot).

Publishing needs the owner of ``predictions.recommendations`` (ATTACH and DETACH are the
owner's), i.e. the warehouse owner, not the data_scientist role.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pyarrow_lib
import pyarrow.compute as pyarrow_compute
import pyarrow.csv as pyarrow_csv
from psycopg2 import sql
from psycopg2.extensions import TRANSACTION_STATUS_IDLE, connection, cursor

log = logging.getLogger(__name__)

SCHEMA = "predictions"
PARENT = "recommendations"
COLUMNS = ("user_id", "content_id", "score", "rank", "reason")  # what ``publish`` takes, in COPY order
MAX_RANK = 32767  # rank is a smallint
# One key for the advisory lock that serialises switching the current run and pruning.
SWITCH_LOCK = int.from_bytes(hashlib.sha256(b"predictions.publish").digest()[:8], "big", signed=True)
COPY_BATCH_ROWS = 65_536  # rows rendered to CSV at a time while the server parses the previous batch
INDEX_MEMORY = "256MB"  # maintenance_work_mem for the primary key build (2M rows need about 150 MB)
WARN_AFTER_S = 5.0  # log the sessions a publish waits for after this many seconds

DDL = """
create schema if not exists predictions;

create table if not exists predictions.model_runs (
    run_id text primary key,
    model text not null,
    parameters jsonb not null default '{}',
    data_snapshot jsonb not null default '{}',
    metrics jsonb not null default '{}',
    timings jsonb not null default '{}',
    status text not null check (status in ('running', 'published', 'failed', 'rolled_back')),
    is_current boolean not null default false,
    user_count integer,
    row_count bigint,
    error text,
    backend_pid integer,  -- the session that registered the run: a run whose session ended while
    backend_start timestamptz,  -- running is recognised as orphaned (see reap_orphans)
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    published_at timestamptz
);

-- warehouses created before runs recorded their session
alter table predictions.model_runs add column if not exists backend_pid integer,
    add column if not exists backend_start timestamptz;

-- at most one current run
create unique index if not exists model_runs_one_current on predictions.model_runs (is_current) where is_current;

-- one partition per run; the primary key leads with user_id: it serves lookups of one user, and
-- builds faster than one leading with run_id (the same value in every row of a partition)
create table if not exists predictions.recommendations (
    run_id text not null,
    user_id bigint not null,
    content_id text not null,
    score real not null,
    rank smallint not null check (rank > 0),
    reason text not null,
    primary key (user_id, rank, run_id)
) partition by list (run_id);

-- the current run's rows, for the API and analysts; created once (replacing it would lock out readers)
do $$
begin
    if to_regclass('predictions.current_recommendations') is null then
        create view predictions.current_recommendations as
            select recommendations.* from predictions.recommendations
            inner join predictions.model_runs
                on recommendations.run_id = model_runs.run_id and model_runs.is_current;
    end if;
end
$$;
"""

OBJECTS = ("model_runs", "model_runs_one_current", "recommendations", "current_recommendations")
ORPHANED = "the process publishing it ended while it was running (its database session {pid} is gone)"


class PublishError(ValueError):
    """Recommendations refused, or a publish or rollback that cannot be done; the message says why.

    ``problems`` holds one line per bad column or row group when the recommendations were refused.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or []
        super().__init__(message)


@dataclass(frozen=True)
class PublishResult:
    run_id: str
    rows: int
    users: int
    previous_run: str | None  # the run that was current before, None for the first publish
    seconds: float  # DataFrame in to committed and current (pruning excluded)
    steps: dict[str, float] = field(default_factory=dict)  # seconds per step, pruning included
    pruned: list[str] = field(default_factory=list)  # runs whose partitions were dropped
    prune_error: str | None = None  # why pruning stopped, if it did (the publish stands)

    def __str__(self) -> str:
        replaced = f", replacing {self.previous_run}" if self.previous_run else ""
        pruned = f"; pruned {len(self.pruned)} old run(s)" if self.pruned else ""
        failed = f"; pruning stopped: {self.prune_error}" if self.prune_error else ""
        return (
            f"published run {self.run_id}: {self.rows:,} recommendations for {self.users:,} users"
            f" in {self.seconds:.1f} s{replaced}{pruned}{failed}"
        )


def ensure_schema(conn: connection) -> None:
    """Create schema ``predictions``, its tables and view if missing (idempotent).

    When all exist it only looks them up, so a role that may not create (data_scientist)
    can call it, and readers of the view are never locked out.
    """
    with conn, conn.cursor() as cur:
        cur.execute(
            "select count(*) from unnest(%s::text[]) as name where to_regclass('predictions.' || name) is not null",
            (list(OBJECTS),),
        )
        present = cur.fetchone()[0]
        cur.execute(
            "select count(*) from information_schema.columns"
            " where table_schema = 'predictions' and table_name = 'model_runs' and column_name = 'backend_start'"
        )
        if present < len(OBJECTS) or not cur.fetchone()[0]:
            cur.execute(DDL)


def new_run_id(now: datetime | None = None) -> str:
    """``run-YYYYMMDDTHHMMSS-<6 hex>`` (UTC): sorts by start time, to the second."""
    now = now or datetime.now(UTC)
    return f"run-{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"


def _plain(value: object) -> object:
    """``value`` as plain JSON data: numpy scalars and arrays become numbers and lists, NaN and
    infinities null, other objects their str."""
    if isinstance(value, np.generic | np.ndarray):
        value = value.tolist()
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if value is None or isinstance(value, str | int):
        return value
    return str(value)


def _json(value: dict[str, Any]) -> str:
    """JSON text of a dict, for a jsonb column (see ``_plain``)."""
    return json.dumps(_plain(value or {}), sort_keys=True)


def start_run(conn: connection, model: str, parameters: dict[str, Any], data_snapshot: dict[str, Any]) -> str:
    """Register a new run of ``model`` as 'running' (committed) and return its run_id.

    ``parameters`` (the model's) and ``data_snapshot`` (what it trained on) are stored as JSON.
    The run records this connection's session: should it end while the run is running
    (the process was killed), ``reap_orphans`` marks the run failed.
    """
    ensure_schema(conn)
    run_id = new_run_id()
    with conn, conn.cursor() as cur:
        cur.execute(
            "insert into predictions.model_runs"
            " (run_id, model, parameters, data_snapshot, status, backend_pid, backend_start)"
            " select %s, %s, %s, %s, 'running', pid, backend_start from pg_stat_activity where pid = pg_backend_pid()",
            (run_id, model, _json(parameters), _json(data_snapshot)),
        )
    return run_id


def reap_orphans(conn: connection) -> list[str]:
    """Mark 'failed' every running run whose registering session has ended; the runs marked.

    A process killed while it trained or published leaves its run 'running'; its database
    session ends with it. The session is matched by pid and start time, so a new session
    that reuses the pid is not taken for it. Their partitions go at the next prune.
    """
    with conn, conn.cursor() as cur:
        cur.execute(
            "update predictions.model_runs as runs"
            " set status = 'failed', finished_at = now(), error = replace(%s, '{pid}', runs.backend_pid::text)"
            " where runs.status = 'running' and runs.backend_pid is not null and not exists ("
            "   select from pg_stat_activity as sessions"
            "   where sessions.pid = runs.backend_pid and sessions.backend_start = runs.backend_start"
            " ) returning run_id",
            (ORPHANED,),
        )
        return sorted(run_id for (run_id,) in cur.fetchall())


def current_run(conn: connection) -> str | None:
    """The run_id whose recommendations are current, or None if none is."""
    with conn, conn.cursor() as cur:
        cur.execute("select run_id from predictions.model_runs where is_current")
        row = cur.fetchone()
    return row[0] if row else None


def fail_run(conn: connection, run_id: str, error: str) -> None:
    """Mark a running run 'failed' with ``error`` (its own transaction) and drop its partition if any.

    An open transaction on ``conn`` is rolled back first. A run already failed keeps its
    first error. A run published or rolled back cannot fail: PublishError.
    """
    if conn.get_transaction_status() != TRANSACTION_STATUS_IDLE:
        conn.rollback()
    with conn, conn.cursor() as cur:
        cur.execute(
            "update predictions.model_runs set status = 'failed', error = %s, finished_at = now()"
            " where run_id = %s and status = 'running' returning run_id",
            (error, run_id),
        )
        if cur.fetchone() is None:
            status = _status(cur, run_id)
            if status is None:
                raise PublishError(f"there is no run {run_id!r} in predictions.model_runs")
            if status != "failed":
                raise PublishError(f"run {run_id} is {status}; only a running run can fail")
    try:
        if _partition_exists(conn, run_id):
            _drop_tables(conn, [partition_name(run_id)])
    except Exception as exc:  # pruning drops it later
        log.warning("the partition of failed run %s stays until the next publish prunes it: %s", run_id, exc)


def _status(cur: cursor, run_id: str) -> str | None:
    cur.execute("select status from predictions.model_runs where run_id = %s", (run_id,))
    row = cur.fetchone()
    return row[0] if row else None


def partition_name(run_id: str) -> str:
    """The name (in schema predictions) of the table that holds ``run_id``'s rows."""
    slug = re.sub(r"[^a-z0-9]+", "_", run_id.lower().removeprefix("run-")).strip("_")
    name = f"{PARENT}_{slug}"
    if len(name) > 63 or not slug:  # PostgreSQL's identifier limit
        name = f"{name[:46]}_{hashlib.sha256(run_id.encode()).hexdigest()[:16]}"
    return name


# ---------------------------------------------------------------------------------------------------------------------
# checking the recommendations


def _value(value: object) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _rows(positions: np.ndarray, frame: pd.DataFrame, columns: list[str]) -> str:
    """How many rows, and the first five by position with the values of ``columns``."""
    shown = ", ".join(
        "row {} ({})".format(p, ", ".join(f"{c}={_value(frame[c].iat[p])}" for c in columns)) for p in positions[:5]
    )
    more = f" and {len(positions) - 5:,} more" if len(positions) > 5 else ""
    return f"{len(positions):,} row(s): {shown}{more}"


def _integers(frame: pd.DataFrame, column: str, low: int, high: int, problems: list[str]) -> np.ndarray | None:
    """The column as int64 if every value is an integer in [low, high]; else None and a problem."""
    values = frame[column]
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        problems.append(f"column {column!r} must hold integers, not {values.dtype}")
        return None
    numbers = values.to_numpy(dtype="float64" if pd.api.types.is_float_dtype(values) else "int64")
    if numbers.dtype.kind == "f":
        bad = np.flatnonzero(numbers != np.round(numbers))
        if len(bad):
            problems.append(f"column {column!r} must hold integers: {_rows(bad, frame, [column])}")
            return None
    bad = np.flatnonzero((numbers < low) | (numbers > high))
    if len(bad):
        problems.append(f"column {column!r} must be between {low} and {high}: {_rows(bad, frame, [column])}")
        return None
    return numbers.astype("int64")


def _check(recommendations: pd.DataFrame) -> pyarrow_lib.Table:
    """The recommendations as an Arrow table in COPY order and PostgreSQL's types; PublishError if invalid.

    Rows are named by position (0-based) in the frame given.
    """
    frame = recommendations.reset_index(drop=True)
    missing = [c for c in COLUMNS if c not in frame.columns]
    extra = [c for c in frame.columns if c not in COLUMNS]
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(map(repr, missing))}")
    if extra:
        problems.append(f"unexpected column(s) {', '.join(map(repr, extra))} (select the columns {list(COLUMNS)})")
    if not problems and frame.empty:
        problems.append("no rows: a run must recommend something (the current run stays current)")
    if problems:
        raise _refused(problems)
    with_nulls = set()
    for column in COLUMNS:
        nulls = np.flatnonzero(frame[column].isna().to_numpy())
        if len(nulls):
            problems.append(f"column {column!r} has nulls: {_rows(nulls, frame, ['user_id', 'rank'])}")
            with_nulls.add(column)
    user_id = None if "user_id" in with_nulls else _integers(frame, "user_id", -(2**63), 2**63 - 1, problems)
    rank = None if "rank" in with_nulls else _integers(frame, "rank", 1, MAX_RANK, problems)
    score = None if "score" in with_nulls else _scores(frame, problems)
    strings = {c: None if c in with_nulls else _strings(frame, c, problems) for c in ("content_id", "reason")}
    if user_id is not None and rank is not None:
        duplicated = _duplicated(user_id, rank)
        if len(duplicated):
            problems.append(
                f"(user_id, rank) must be unique: {_rows(duplicated, frame, ['user_id', 'rank', 'content_id'])}"
            )
    if problems:
        raise _refused(problems)
    return pyarrow_lib.table(
        {
            "user_id": user_id,
            "content_id": strings["content_id"],
            "score": score,
            "rank": rank.astype("int16"),
            "reason": strings["reason"],
        }
    )


def _scores(frame: pd.DataFrame, problems: list[str]) -> np.ndarray | None:
    """The scores as float32 (PostgreSQL's real) if all are finite numbers; else None and a problem."""
    if not pd.api.types.is_numeric_dtype(frame["score"]) or pd.api.types.is_bool_dtype(frame["score"]):
        problems.append(f"column 'score' must hold numbers, not {frame['score'].dtype}")
        return None
    with np.errstate(over="ignore"):
        score = frame["score"].to_numpy(dtype="float32")
    bad = np.flatnonzero(~np.isfinite(score))
    if len(bad):
        problems.append(f"column 'score' must be finite (a real): {_rows(bad, frame, ['score'])}")
        return None
    return score


def _strings(frame: pd.DataFrame, column: str, problems: list[str]) -> pyarrow_lib.Array | None:
    try:
        values = pyarrow_lib.array(frame[column], from_pandas=True)
        if not pyarrow_lib.types.is_string(values.type) and not pyarrow_lib.types.is_large_string(values.type):
            raise TypeError(values.type)
    except (pyarrow_lib.ArrowException, TypeError):
        bad = np.flatnonzero(~frame[column].map(lambda v: isinstance(v, str)).to_numpy(dtype=bool))
        problems.append(f"column {column!r} must hold text: {_rows(bad, frame, [column])}")
        return None
    if column == "content_id":
        empty = np.flatnonzero(pyarrow_compute.equal(values, "").to_numpy(zero_copy_only=False))
        if len(empty):
            problems.append(f"column 'content_id' must not be empty: {_rows(empty, frame, ['user_id', 'rank'])}")
    return values


def _duplicated(user_id: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Positions of rows whose (user_id, rank) occurs more than once; fast when sorted by user, then rank."""
    if len(user_id) and user_id.min() >= 0 and user_id.max() < 2**47:
        key = (user_id << 16) | rank
        if np.all(key[1:] > key[:-1]):  # strictly increasing: no duplicates (the usual order)
            return np.array([], dtype="int64")
        return np.flatnonzero(pd.Series(key).duplicated(keep=False).to_numpy())
    pairs = pd.DataFrame({"user_id": user_id, "rank": rank})
    return np.flatnonzero(pairs.duplicated(keep=False).to_numpy())


def _count_distinct(values: np.ndarray) -> int:
    """Distinct values; fast when sorted."""
    if len(values) and np.all(values[1:] >= values[:-1]):
        return 1 + int(np.count_nonzero(values[1:] != values[:-1]))
    return len(pd.unique(values))


def _refused(problems: list[str]) -> PublishError:
    lines = "\n  ".join(problems)
    return PublishError(f"recommendations refused, nothing published: {len(problems)} problem(s)\n  {lines}", problems)


# ---------------------------------------------------------------------------------------------------------------------
# writing a run's partition


class _CsvStream:
    """A file-like object for ``copy_expert``: CSV rendered one batch at a time, as COPY asks for it.

    The server parses one batch while the next is rendered, so rendering costs little extra time.
    """

    def __init__(self, table: pyarrow_lib.Table, batch_rows: int = COPY_BATCH_ROWS) -> None:
        self._batches: Iterator[pyarrow_lib.RecordBatch] = iter(table.to_batches(max_chunksize=batch_rows))
        self._options = pyarrow_csv.WriteOptions(include_header=False, batch_size=batch_rows)

    def read(self, size: int = -1) -> bytes:
        batch = next(self._batches, None)
        if batch is None:
            return b""
        sink = pyarrow_lib.BufferOutputStream()
        pyarrow_csv.write_csv(batch, sink, self._options)
        return sink.getvalue().to_pybytes()


def _partition(run_id: str) -> sql.Composed:
    return sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(partition_name(run_id)))


def _write_partition(conn: connection, run_id: str, table: pyarrow_lib.Table, steps: dict[str, float]) -> None:
    """Create the run's table, COPY its rows, build its key and attach it, in one transaction (committed)."""
    part, run = _partition(run_id), sql.Literal(run_id)
    with conn, conn.cursor() as cur:
        started = time.perf_counter()
        cur.execute(sql.SQL("set local maintenance_work_mem = {}").format(sql.Literal(INDEX_MEMORY)))
        cur.execute(
            sql.SQL(
                "create table {} (like predictions.recommendations including defaults including constraints)"
            ).format(part)
        )
        # run_id is not in the COPY stream: the default fills it; the check lets ATTACH skip its scan
        cur.execute(
            sql.SQL("alter table {} alter column run_id set default {}, add constraint {} check (run_id = {})").format(
                part, run, sql.Identifier(f"{partition_name(run_id)}_run"), run
            )
        )
        columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        # FREEZE: the table is new in this transaction, so its rows can be written frozen and all-visible
        # (no hint bits for readers to set later, index-only scans at once)
        copy = sql.SQL("copy {} ({}) from stdin with (format csv, freeze)").format(part, columns)
        _copy(cur, copy.as_string(conn), table)
        steps["copy"] = time.perf_counter() - started
        started = time.perf_counter()
        cur.execute(sql.SQL("alter table {} add primary key (user_id, rank, run_id)").format(part))
        steps["index"] = time.perf_counter() - started
        started = time.perf_counter()
        _attach(cur, part, run)
    steps["attach"] = time.perf_counter() - started


def _copy(cur: cursor, statement: str, table: pyarrow_lib.Table) -> None:
    cur.copy_expert(statement, _CsvStream(table))


def _attach(cur: cursor, part: sql.Composed, run: sql.Literal) -> None:
    cur.execute(
        sql.SQL("alter table predictions.recommendations attach partition {} for values in ({})").format(part, run)
    )


def _wait_for_older_readers(conn: connection, timeout: float) -> None:
    """Wait until every transaction holding a lock on predictions.recommendations now has ended.

    Those may have planned a query without the partition just attached; after they end,
    every query knows it. PublishError after ``timeout`` seconds, naming the sessions.
    """
    holders = """
        select distinct virtualtransaction, pid from pg_locks
        where locktype = 'relation' and pid is not null and pid <> pg_backend_pid()
          and database = (select oid from pg_database where datname = current_database())
          and relation = 'predictions.recommendations'::regclass
    """
    started, pause, warned = time.monotonic(), 0.001, False
    with conn, conn.cursor() as cur:
        cur.execute(holders)
        waiting = {vxid for vxid, _ in cur.fetchall()}
    while waiting:
        time.sleep(pause)
        pause = min(pause * 2, 0.05)
        with conn, conn.cursor() as cur:
            cur.execute(holders)
            found = cur.fetchall()
            waiting &= {vxid for vxid, _ in found}
            waited = time.monotonic() - started
            if waiting and (waited > timeout or (waited > WARN_AFTER_S and not warned)):
                sessions = _sessions(cur, sorted({pid for vxid, pid in found if vxid in waiting}))
                if waited > timeout:
                    raise PublishError(
                        f"gave up after {timeout:g} s waiting for transactions that read predictions.recommendations"
                        f" before the new run was attached to end: {sessions}. Making the run current while they"
                        " run could show them no recommendations; end them (or raise reader_wait_s) and publish again"
                    )
                log.warning("publish waits for transactions reading predictions.recommendations: %s", sessions)
                warned = True


def _sessions(cur: cursor, pids: list[int]) -> str:
    """The sessions ``pids`` in words: pid, user, state and the start of their query."""
    cur.execute("select pid, usename, state, left(query, 60) from pg_stat_activity where pid = any(%s)", (pids,))
    return "; ".join(f"pid {pid} ({user}, {state}): {query!r}" for pid, user, state, query in cur.fetchall())


def _record(cur: cursor, run_id: str, rows: int, users: int, metrics: str, timings: str) -> None:
    """Store what a running run published (``metrics`` and ``timings`` are JSON text)."""
    cur.execute(
        "update predictions.model_runs set row_count = %s, user_count = %s, metrics = %s, timings = %s"
        " where run_id = %s and status = 'running' returning run_id",
        (rows, users, metrics, timings, run_id),
    )
    if cur.fetchone() is None:
        raise PublishError(f"run {run_id} stopped running while it was published ({_status(cur, run_id)})")


def make_current(cur: cursor, run_id: str) -> str | None:
    """Make the running run ``run_id`` published and current in the caller's transaction; the run current before.

    Its rows must be attached (``publish(..., make_current=False)`` stages a run so), and the
    caller commits: a warehouse refresh switches its generation and its run in one transaction.
    """
    cur.execute("select pg_advisory_xact_lock(%s)", (SWITCH_LOCK,))
    cur.execute("update predictions.model_runs set is_current = false where is_current returning run_id")
    previous = cur.fetchone()
    cur.execute(
        "update predictions.model_runs set status = 'published', is_current = true, published_at = now(),"
        " finished_at = now(), error = null where run_id = %s and status = 'running' returning run_id",
        (run_id,),
    )
    if cur.fetchone() is None:
        raise PublishError(f"run {run_id} stopped running while it was published ({_status(cur, run_id)})")
    return previous[0] if previous else None


def publish(
    conn: connection,
    run_id: str,
    recommendations: pd.DataFrame,
    *,
    metrics: dict[str, Any],
    timings: dict[str, Any],
    keep: int = 5,
    reader_wait_s: float = 300.0,
    current: bool = True,
) -> PublishResult:
    """Publish a running run's recommendations and make them current, atomically for every reader.

    ``recommendations`` has columns user_id (int), content_id (str), score (float, stored as
    a real), rank (int, 1 is best, at most 32767) and reason (str), one row per user and rank.
    ``metrics`` and ``timings`` (seconds per step) are stored with the run as JSON. Partitions
    of the newest ``keep`` published or rolled-back runs are kept (the current one always),
    older ones dropped. ``reader_wait_s``: how long to wait for transactions that were reading
    predictions.recommendations before the new rows were attached (see the module docstring).

    With ``current=False`` the run is staged: its rows are attached and recorded, it stays
    'running' and nothing is pruned; ``make_current`` later makes it current in the caller's
    transaction (a failure before that is the caller's to mark with ``fail_run``).

    Any failure marks the run 'failed' with its error and re-raises; the previous run stays
    current with its rows untouched. Bad recommendations raise PublishError naming the
    columns and rows (0-based positions).
    """
    started = time.perf_counter()
    steps: dict[str, float] = {}
    if keep < 1:
        raise PublishError(f"keep must be at least 1 (the current run), not {keep}")
    with conn, conn.cursor() as cur:
        status = _status(cur, run_id)
    if status != "running":
        raise PublishError(
            f"run {run_id!r} is {status}; publish a run that start_run registered"
            if status
            else f"there is no run {run_id!r} in predictions.model_runs; register it with start_run"
        )
    attached = False
    try:
        run_metrics, run_timings = _json(metrics), _json(timings)
        table = _check(recommendations)
        users = _count_distinct(table.column("user_id").to_numpy())
        steps["check"] = time.perf_counter() - started
        _write_partition(conn, run_id, table, steps)
        attached = True
        waited = time.perf_counter()
        _wait_for_older_readers(conn, reader_wait_s)
        steps["wait_for_readers"] = time.perf_counter() - waited
        switched = time.perf_counter()
        with conn, conn.cursor() as cur:
            _record(cur, run_id, table.num_rows, users, run_metrics, run_timings)
            previous = make_current(cur, run_id) if current else None
        steps["switch"] = time.perf_counter() - switched
    except BaseException as exc:
        if conn.closed:
            raise
        conn.rollback()
        try:
            fail_run(conn, run_id, f"{type(exc).__name__}: {exc}")
        except Exception as also:
            exc.add_note(f"and run {run_id} could not be marked failed: {also}")
        if attached and _partition_exists(conn, run_id):
            exc.add_note(f"its partition {partition_name(run_id)} stays until the next publish prunes it")
        raise
    seconds = time.perf_counter() - started
    if not current:
        return PublishResult(run_id, table.num_rows, users, None, seconds, steps)
    pruning = time.perf_counter()
    pruned: list[str] = []
    prune_error = None
    try:
        pruned = prune(conn, keep)
    except Exception as exc:
        prune_error = f"{type(exc).__name__}: {exc}".strip()
        log.warning("published run %s, but pruning old runs stopped: %s", run_id, prune_error)
        if not conn.closed and conn.get_transaction_status() != TRANSACTION_STATUS_IDLE:
            conn.rollback()
    steps["prune"] = time.perf_counter() - pruning
    return PublishResult(run_id, table.num_rows, users, previous, seconds, steps, pruned, prune_error)


# ---------------------------------------------------------------------------------------------------------------------
# partitions: which exist, dropping them, pruning


def _partitions(cur: cursor) -> dict[str, bool]:
    """Partitions of predictions.recommendations by name -> True if a detach of it is pending."""
    cur.execute(
        "select child.relname, inherits.inhdetachpending from pg_inherits as inherits"
        " join pg_class as child on child.oid = inherits.inhrelid"
        " where inherits.inhparent = 'predictions.recommendations'::regclass"
    )
    return dict(cur.fetchall())


def _partition_exists(conn: connection, run_id: str) -> bool:
    with conn, conn.cursor() as cur:
        cur.execute("select to_regclass(%s) is not null", (f"predictions.{partition_name(run_id)}",))
        return cur.fetchone()[0]


def _drop_tables(conn: connection, names: list[str], lock_timeout: str = "5s") -> list[str]:
    """Detach each named table from predictions.recommendations (concurrently) and drop it; the names dropped.

    The partitions of the current run and of running runs are never dropped, whatever the caller asked.

    DETACH CONCURRENTLY takes no lock that blocks readers; it waits for the transactions
    that may still use the partition, up to ``lock_timeout`` (then it stays pending, and
    the next call finishes it). Runs outside a transaction, with autocommit.
    """
    if not names:
        return []
    if conn.get_transaction_status() != TRANSACTION_STATUS_IDLE:
        conn.rollback()
    autocommit = conn.autocommit
    conn.autocommit = True
    dropped = []
    try:
        with conn.cursor() as cur:
            cur.execute("select pg_advisory_lock(%s)", (SWITCH_LOCK,))
            try:
                cur.execute("select current_setting('lock_timeout')")
                before = cur.fetchone()[0]
                cur.execute("select set_config('lock_timeout', %s, false)", (lock_timeout,))
                try:
                    partitions = _partitions(cur)
                    # re-read under the lock: a rollback since the caller chose may have made one current
                    cur.execute("select run_id from predictions.model_runs where is_current or status = 'running'")
                    protected = {partition_name(run_id) for (run_id,) in cur.fetchall()}
                    for name in (name for name in names if name not in protected):
                        table = sql.SQL("{}.{}").format(sql.Identifier(SCHEMA), sql.Identifier(name))
                        if name in partitions:
                            how = "finalize" if partitions[name] else "concurrently"
                            cur.execute(
                                sql.SQL("alter table predictions.recommendations detach partition {} {}").format(
                                    table, sql.SQL(how)
                                )
                            )
                        cur.execute(sql.SQL("drop table if exists {}").format(table))
                        dropped.append(name)
                finally:
                    cur.execute("select set_config('lock_timeout', %s, false)", (before,))
            finally:
                cur.execute("select pg_advisory_unlock(%s)", (SWITCH_LOCK,))
    finally:
        conn.autocommit = autocommit
    return dropped


def prune(conn: connection, keep: int = 5, lock_timeout: str = "5s") -> list[str]:
    """Drop the partitions of all but the newest ``keep`` published or rolled-back runs; the runs dropped.

    Running runs whose session has ended are marked failed first (``reap_orphans``). The
    current run and running runs (being published) always keep theirs; failed runs
    and tables of no known run lose theirs. ``lock_timeout`` bounds each wait for readers.
    """
    if keep < 1:
        raise PublishError(f"keep must be at least 1 (the current run), not {keep}")
    reap_orphans(conn)
    with conn, conn.cursor() as cur:
        cur.execute(
            "select run_id from predictions.model_runs where status = 'running' or is_current"
            " union (select run_id from predictions.model_runs where status in ('published', 'rolled_back')"
            " order by published_at desc nulls last, run_id desc limit %s)",
            (keep,),
        )
        kept = {partition_name(run_id) for (run_id,) in cur.fetchall()}
        cur.execute("select run_id from predictions.model_runs")
        runs = {partition_name(run_id): run_id for (run_id,) in cur.fetchall()}
        partitions = _partitions(cur)
        # and the tables of known runs left detached by an interrupted prune
        cur.execute(
            "select relname from pg_class where relnamespace = 'predictions'::regnamespace and relkind = 'r'"
            " and relname = any(%s)",
            (list(runs),),
        )
        tables = sorted(set(partitions) | {name for (name,) in cur.fetchall()})
    victims = [name for name in tables if name not in kept]
    return [runs.get(name, name) for name in _drop_tables(conn, victims, lock_timeout)]


def restore(cur: cursor, run_id: str) -> None:
    """Make the earlier run ``run_id`` current again in the caller's transaction (a generation's rollback).

    The current run becomes 'rolled_back'. PublishError if ``run_id`` was never published
    or its recommendations were pruned.
    """
    cur.execute("select pg_advisory_xact_lock(%s)", (SWITCH_LOCK,))
    status = _status(cur, run_id)
    if status not in ("published", "rolled_back") or _partitions(cur).get(partition_name(run_id)) is not False:
        raise PublishError(f"run {run_id} ({status or 'unknown'}) no longer has its recommendations to return to")
    cur.execute(
        "update predictions.model_runs set is_current = false, status = 'rolled_back'"
        " where is_current and run_id <> %s",
        (run_id,),
    )
    cur.execute(
        "update predictions.model_runs set is_current = true, status = 'published' where run_id = %s", (run_id,)
    )


def rollback(conn: connection) -> str:
    """Make the run published before the current one current again; the current one becomes 'rolled_back'.

    Returns the run_id now current. PublishError when no run is current, or when no earlier
    published run still has its recommendations (pruning keeps the newest few).
    """
    with conn, conn.cursor() as cur:
        cur.execute("select pg_advisory_xact_lock(%s)", (SWITCH_LOCK,))
        cur.execute("select run_id, published_at from predictions.model_runs where is_current")
        current = cur.fetchone()
        if current is None:
            raise PublishError("no run is current, so there is nothing to roll back")
        cur.execute(
            "select run_id from predictions.model_runs where status = 'published' and not is_current"
            " and published_at < %s order by published_at desc, run_id desc",
            (current[1],),
        )
        earlier = [run_id for (run_id,) in cur.fetchall()]
        partitions = _partitions(cur)
        kept = [run_id for run_id in earlier if partitions.get(partition_name(run_id)) is False]
        if not kept:
            dropped = f" ({len(earlier)} earlier run(s) had their recommendations pruned)" if earlier else ""
            raise PublishError(
                f"cannot roll back run {current[0]}: there is no earlier published run to return to{dropped}"
            )
        cur.execute(
            "update predictions.model_runs set is_current = false, status = 'rolled_back' where run_id = %s",
            (current[0],),
        )
        cur.execute("update predictions.model_runs set is_current = true where run_id = %s", (kept[0],))
    return kept[0]
