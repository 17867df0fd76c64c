"""A run's life: registered, staged, made current (or failed), rolled back."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from psycopg2.extensions import TRANSACTION_STATUS_IDLE, connection, cursor

from recommender.ml.publish.checks import check_rows, count_distinct
from recommender.ml.publish.door import (
    LOCK_TIMEOUT,
    READER_WAIT_S,
    REFUSALS,
    PublishError,
    door_refusals,
    ensure_schema,
    transaction,
)
from recommender.ml.publish.partitions import Readers, drop_tables, prune, write_partition
from recommender.warehouse import jsonable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Staged:
    """A run's rows attached (``stage``): how many, for how many users, seconds per step."""

    rows: int
    users: int
    steps: dict[str, float]


@dataclass(frozen=True)
class Finished:
    """A staged run made current (``finish``), or only its results recorded (``current=False``)."""

    previous_run: str | None  # the run that was current before, None for the first publish (or not current)
    steps: dict[str, float]  # seconds per step, pruning included
    pruned: list[str] = field(default_factory=list)  # runs whose partitions were dropped
    prune_error: str | None = None  # why pruning stopped, if it did (the publish stands)


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


def start_run(
    conn: connection,
    model: str,
    parameters: dict[str, Any],
    data_snapshot: dict[str, Any],
    *,
    session_bound: bool = True,
) -> str:
    """Register a new run of ``model`` as 'running' (committed) and return its run_id.

    ``parameters`` (the model's) and ``data_snapshot`` (what it trained on) are stored as JSON.
    With ``session_bound`` the run records this connection's session: should it end while the
    run is running (the process was killed), ``reap_orphans`` marks the run failed. A run
    started for a client of the HTTP API, whose connections come and go, is not bound.
    """
    ensure_schema(conn)
    with transaction(conn, LOCK_TIMEOUT) as cur:
        cur.execute(
            "select predictions.start_run(%s, %s::jsonb, %s::jsonb, %s)",
            (model, jsonable.dumps(parameters or {}), jsonable.dumps(data_snapshot or {}), session_bound),
        )
        return cur.fetchone()[0]


def reap_orphans(conn: connection) -> list[str]:
    """Mark 'failed' every running run whose registering session has ended; the runs marked.

    A process killed while it trained or published leaves its run 'running'; its database
    session ends with it. Their partitions go at the next prune.
    """
    with transaction(conn, LOCK_TIMEOUT) as cur:
        cur.execute("select run_id from predictions.reap_orphans() as run_id")
        return sorted(run_id for (run_id,) in cur.fetchall())


def current_run(conn: connection) -> str | None:
    """The run_id whose recommendations are current, or None if none is."""
    with conn, conn.cursor() as cur:
        cur.execute("select run_id from predictions.model_runs where is_current")
        row = cur.fetchone()
    return row[0] if row else None


def fail_run(conn: connection, run_id: str, error: str, lock_timeout: str = LOCK_TIMEOUT) -> None:
    """Mark a running run 'failed' with ``error`` (its own transaction) and drop its partition if any.

    An open transaction on ``conn`` is rolled back first. A run already failed keeps its
    first error. A run published or rolled back cannot fail: PublishError. Only the owner
    drops partitions; a data scientist's failed run leaves its partition (if it got that
    far) to the owner's next prune.
    """
    if conn.get_transaction_status() != TRANSACTION_STATUS_IDLE:
        conn.rollback()
    with transaction(conn, lock_timeout) as cur:
        cur.execute("select predictions.fail_run(%s, %s)", (run_id, error))
        cur.execute(
            "select predictions.is_owner(), predictions.partition_name(%s),"
            " to_regclass(format('predictions.%%I', predictions.partition_name(%s))) is not null",
            (run_id, run_id),
        )
        owner, name, exists = cur.fetchone()
    if owner and exists:
        try:
            drop_tables(conn, [name], lock_timeout)
        except Exception as exc:  # pruning drops it later
            log.warning("the partition of failed run %s stays until the next prune drops it: %s", run_id, exc)


@contextmanager
def _failing(conn: connection, run_id: str) -> Iterator[None]:
    """Any failure inside marks the run 'failed' with its error (dropping its partition) and is re-raised; but
    a call the door refused (the run's state, another login's run, a bad argument) changed nothing and fails
    nothing."""
    try:
        yield
    except BaseException as exc:
        if conn.closed or (isinstance(exc, PublishError) and exc.code in REFUSALS):
            raise
        conn.rollback()
        try:
            fail_run(conn, run_id, f"{type(exc).__name__}: {exc}")
        except Exception as also:
            exc.add_note(f"and run {run_id} could not be marked failed: {also}")
        try:
            with conn, conn.cursor() as cur:
                cur.execute(
                    "select to_regclass(format('predictions.%%I', predictions.partition_name(%s)))::text", (run_id,)
                )
                left_behind = cur.fetchone()[0]
        except Exception as also:
            left_behind = f"(not known: {also})"
        if left_behind:
            exc.add_note(f"its partition {left_behind} stays until the owner's next prune drops it")
        raise


def stage(
    conn: connection,
    run_id: str,
    recommendations: pd.DataFrame,
    *,
    reader_wait_s: float = READER_WAIT_S,
    lock_timeout: str = LOCK_TIMEOUT,
) -> Staged:
    """Check a running run's recommendations and attach them as its partition: ready for ``finish``, not current.

    ``recommendations`` has columns user_id (int), content_id (str), score (float, stored as
    a real), rank (int, 1 is best, at most 32767) and reason (str), one row per user and rank.
    ``reader_wait_s``: how long to wait for transactions that were reading
    predictions.recommendations before the new rows were attached (module docstring);
    ``lock_timeout``: the longest any lock wait may take.

    Any failure marks the run 'failed' with its error and re-raises; bad recommendations
    raise PublishError naming the columns and rows (0-based positions). A call the door
    refuses (the run is not running, or another login's) raises PublishError and changes nothing.
    """
    steps: dict[str, float] = {}
    with _failing(conn, run_id):
        started = time.perf_counter()
        table = check_rows(recommendations)
        users = count_distinct(table.column("user_id").to_numpy())
        steps["check"] = time.perf_counter() - started
        readers = Readers(run_id, reader_wait_s)
        write_partition(conn, run_id, table, steps, readers, lock_timeout)
        started = time.perf_counter()
        with transaction(conn, lock_timeout) as cur:
            readers.wait(cur)
        steps["wait_for_readers"] += time.perf_counter() - started
    return Staged(table.num_rows, users, steps)


def make_current(cur: cursor, run_id: str) -> str | None:
    """Make the running run ``run_id`` published and current in the caller's transaction; the run current before.

    Its rows must be attached and their older readers gone (``stage``, or ``publish(...,
    current=False)``, stages a run so), and the caller commits: a warehouse refresh switches
    its generation and its run in one transaction. Its lock waits end after the caller's
    lock_timeout.
    """
    with door_refusals():
        cur.execute("select predictions.make_current(%s)", (run_id,))
        return cur.fetchone()[0]


def finish(
    conn: connection,
    run_id: str,
    *,
    metrics: dict[str, Any],
    timings: dict[str, Any],
    current: bool = True,
    keep: int = 5,
    lock_timeout: str = LOCK_TIMEOUT,
) -> Finished:
    """Record a staged run's ``metrics`` and ``timings`` (stored as JSON) and, with ``current``, make it current,
    then prune all but the newest ``keep`` published or rolled-back runs (the current one always).

    With ``current=False`` the run stays 'running' and nothing is pruned; ``make_current``
    later makes it current in the caller's transaction. Any failure before the switch has
    committed marks the run 'failed' and re-raises; a failure to prune is reported in the
    result and never fails the publish.
    """
    steps: dict[str, float] = {}
    with _failing(conn, run_id):
        started = time.perf_counter()
        with transaction(conn, lock_timeout) as cur:
            cur.execute(
                "select predictions.record_results(%s, %s::jsonb, %s::jsonb)",
                (run_id, jsonable.dumps(metrics or {}), jsonable.dumps(timings or {})),
            )
            previous = make_current(cur, run_id) if current else None
        steps["switch"] = time.perf_counter() - started
    if not current:
        return Finished(None, steps)
    started = time.perf_counter()
    pruned: list[str] = []
    prune_error = None
    try:
        pruned = prune(conn, keep, lock_timeout)
    except Exception as exc:
        prune_error = f"{type(exc).__name__}: {exc}".strip()
        log.warning("published run %s, but pruning old runs stopped: %s", run_id, prune_error)
        if not conn.closed and conn.get_transaction_status() != TRANSACTION_STATUS_IDLE:
            conn.rollback()
    steps["prune"] = time.perf_counter() - started
    return Finished(previous, steps, pruned, prune_error)


def publish(
    conn: connection,
    run_id: str,
    recommendations: pd.DataFrame,
    *,
    metrics: dict[str, Any],
    timings: dict[str, Any],
    keep: int = 5,
    reader_wait_s: float = READER_WAIT_S,
    current: bool = True,
    lock_timeout: str = LOCK_TIMEOUT,
) -> PublishResult:
    """Publish a running run's recommendations and make them current, atomically for every reader:
    ``stage``, then ``finish`` (their docstrings say what the arguments are).

    Any failure marks the run 'failed' with its error and re-raises (but for a call the door
    refuses, which changes nothing); the previous run stays current with its rows untouched.
    Bad recommendations raise PublishError naming the columns and rows (0-based positions).
    """
    started = time.perf_counter()
    staged = stage(conn, run_id, recommendations, reader_wait_s=reader_wait_s, lock_timeout=lock_timeout)
    done = finish(conn, run_id, metrics=metrics, timings=timings, current=current, keep=keep, lock_timeout=lock_timeout)
    steps = {**staged.steps, **done.steps}
    seconds = time.perf_counter() - started - steps.get("prune", 0.0)
    return PublishResult(
        run_id, staged.rows, staged.users, done.previous_run, seconds, steps, done.pruned, done.prune_error
    )


class WarehouseRuns:
    """A run's steps on a database connection, as ``recommender.api.client.ApiClient`` offers them over HTTP."""

    def __init__(self, conn: connection) -> None:
        self.conn = conn

    def start_run(self, model: str, parameters: dict[str, Any], data_snapshot: dict[str, Any]) -> str:
        return start_run(self.conn, model, parameters, data_snapshot)

    def upload_recommendations(self, run_id: str, recommendations: pd.DataFrame) -> Staged:
        return stage(self.conn, run_id, recommendations)

    def publish_run(self, run_id: str, *, metrics: dict[str, Any], timings: dict[str, Any], current: bool) -> Finished:
        return finish(self.conn, run_id, metrics=metrics, timings=timings, current=current)

    def fail_run(self, run_id: str, error: str) -> None:
        fail_run(self.conn, run_id, error)


def restore(cur: cursor, run_id: str) -> None:
    """Make the earlier run ``run_id`` current again in the caller's transaction (a generation's rollback).

    The current run becomes 'rolled_back'. PublishError if ``run_id`` was never published
    or its recommendations were pruned. Its lock waits end after the caller's lock_timeout.
    """
    with door_refusals():
        cur.execute("select predictions.restore(%s)", (run_id,))


def rollback(conn: connection, lock_timeout: str = LOCK_TIMEOUT) -> str:
    """Make the run published before the current one current again; the current one becomes 'rolled_back'.

    Returns the run_id now current. PublishError when no run is current, or when no earlier
    published run still has its recommendations (pruning keeps the newest few).
    """
    with transaction(conn, lock_timeout) as cur:
        cur.execute("select predictions.rollback()")
        return cur.fetchone()[0]
