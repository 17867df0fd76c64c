"""Publishing a model run's recommendations to schema ``predictions``, atomically, with rollback.

Runs change only through the security definer functions of ``sql/predictions_door.sql``
(the door): the owner's code and a data scientist's go through the same functions, each
checking the run's state and who started it, and nobody but the owner may write
predictions' tables directly. A run is registered by ``start_run`` ('running') and
published by ``publish`` (``stage``, then ``finish``):

1. the recommendations are checked whole (``PublishError`` names each bad column and row);
2. in one transaction, ``open_rows`` creates a new table of the run's own,
   ``predictions.recommendations_<run>`` (a CHECK ``run_id = '<run>'`` lets the ATTACH skip
   its validation scan), its rows go into it by one streamed COPY, and ``attach_rows``
   builds its primary key and attaches it as a partition of ``predictions.recommendations``.
   ATTACH takes only SHARE UPDATE EXCLUSIVE on the parent, so readers are never blocked;
   the new rows belong to a run that is not current;
3. it waits until every transaction that held a lock on ``predictions.recommendations``
   has ended (as CREATE INDEX CONCURRENTLY does): once before the attach, so that a reader
   that never ends fails the publish with nothing attached, and once after its commit,
   which ``make_current`` insists on. A query planned before the attach does not know the
   new partition; were the run made current while such a query takes its snapshot, it
   would see no rows at all. Measured: without this wait, about 1 % of the reads made
   during rapid publishes saw an empty set;
4. in one transaction, the previous run stops being current and this one becomes current.
   Readers of ``predictions.current_recommendations`` see the old run's rows, then the new
   run's, never an empty, partial or mixed set;
5. partitions beyond the newest ``keep`` published or rolled-back runs are given up (they
   can never be current again), then detached concurrently and dropped; failing to drop
   them is reported and never fails the publish. Detaching is the owner's: a data
   scientist's publish leaves the dropping to the owner's next prune (every ``make run``).

Every lock wait is bounded (``lock_timeout``; the waits of step 3 by ``reader_wait_s``) and
its error names the sessions waited for. The switch of the current run is serialised by a
row lock that only the owner's functions can take, so no reader can stall it.

A failure at any step marks the run 'failed' with its error and leaves no partition
behind (a failure before the attach commits leaves none; one attached is dropped by the
owner, or by the next prune if a reader blocks that); the previous run stays current, its
rows untouched. ``rollback`` makes the previous published run current again.

The rows are written with COPY FREEZE (the table is new in the transaction): readers never
set hint bits on them and index-only scans work at once. As PostgreSQL documents for FREEZE,
a REPEATABLE READ transaction older than the publish that reads the parent table directly
can see the new run's rows (never through ``current_recommendations``, which joins the
current run as of its snapshot).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg2
import pyarrow as pyarrow_lib
import pyarrow.compute as pyarrow_compute
import pyarrow.csv as pyarrow_csv
from psycopg2 import errors, sql
from psycopg2.extensions import TRANSACTION_STATUS_IDLE, connection, cursor

from recommender import access

log = logging.getLogger(__name__)

# the schema's tables and helpers, then the door's functions; run in this order
SQL_FILES = tuple(Path(__file__).with_name("sql") / name for name in ("predictions.sql", "predictions_door.sql"))
COLUMNS = ("user_id", "content_id", "score", "rank", "reason")  # what ``publish`` takes, in COPY order
MAX_RANK = 32767  # rank is a smallint
COPY_BATCH_ROWS = 65_536  # rows rendered to CSV at a time while the server parses the previous batch
LOCK_TIMEOUT = "5s"  # the longest any one lock wait of the publisher may take (switches wait for switches)
READER_WAIT_S = 300.0  # the longest a publish waits for readers that planned before its attach
WARN_AFTER_S = 5.0  # log the sessions a publish waits for after this many seconds
# SQLSTATEs of the door's refusals: a bad argument, no such run, another login's run, a run in the wrong state
REFUSALS = frozenset({"22023", "P0002", "42501", "55000"})


class PublishError(ValueError):
    """Recommendations refused, or a publish or rollback that cannot be done; the message says why.

    ``problems`` holds one line per bad column or row group when the recommendations were refused;
    ``code`` the SQLSTATE when the door refused (22023, P0002, 42501 or 55000) or a wait for readers ran out
    (55P03), None otherwise.
    """

    def __init__(self, message: str, problems: list[str] | None = None, code: str | None = None) -> None:
        self.problems = problems or []
        self.code = code
        super().__init__(message)


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


@contextmanager
def _door() -> Iterator[None]:
    """The door's refusals as PublishError (its message and hint); other errors, lock timeouts included, as they are."""
    try:
        yield
    except psycopg2.Error as exc:
        if exc.pgcode not in REFUSALS:
            raise
        hint = f" ({exc.diag.message_hint})" if exc.diag.message_hint else ""
        raise PublishError(f"{exc.diag.message_primary}{hint}", code=exc.pgcode) from exc


@contextmanager
def _transaction(conn: connection, lock_timeout: str) -> Iterator[cursor]:
    """A transaction on ``conn`` (committed at the end) whose every lock wait ends after ``lock_timeout``."""
    with _door(), conn, conn.cursor() as cur:
        cur.execute("select set_config('lock_timeout', %s, true)", (lock_timeout,))
        yield cur


def ensure_schema(conn: connection) -> None:
    """Create or update schema ``predictions``: its tables, view and door (idempotent).

    The SQL runs only when it differs from what the warehouse has (its digest is the schema's
    comment), as the owner; then the access roles get their rights on it, if they exist (so a
    warehouse built before loses rights it no longer should have). When it is up to date it
    only looks, so a data scientist may call it, and readers are never locked out.
    """
    text = "\n".join(path.read_text() for path in SQL_FILES)
    version = f"netflix_warehouse predictions {hashlib.sha256(text.encode()).hexdigest()[:16]}"
    with conn, conn.cursor() as cur:
        cur.execute("select obj_description(to_regnamespace('predictions'), 'pg_namespace')")
        if cur.fetchone()[0] == version:
            return
    try:
        with _transaction(conn, LOCK_TIMEOUT) as cur:
            cur.execute(text)
            cur.execute("comment on schema predictions is %s", (version,))
            cur.execute(
                "select bool_and(to_regrole(name) is not null) from unnest(%s::text[]) as name", (list(access.GROUPS),)
            )
            groups = cur.fetchone()[0]
    except PublishError as exc:
        if exc.code != "42501":
            raise
        raise PublishError(
            "schema predictions is missing or older than this code, and only the warehouse owner may update it:"
            " ask them to run make run",
            code=exc.code,
        ) from exc
    if groups:
        access.prepare_python_schemas(conn)


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
    with _transaction(conn, LOCK_TIMEOUT) as cur:
        cur.execute(
            "select predictions.start_run(%s, %s::jsonb, %s::jsonb, %s)",
            (model, _json(parameters), _json(data_snapshot), session_bound),
        )
        return cur.fetchone()[0]


def reap_orphans(conn: connection) -> list[str]:
    """Mark 'failed' every running run whose registering session has ended; the runs marked.

    A process killed while it trained or published leaves its run 'running'; its database
    session ends with it. Their partitions go at the next prune.
    """
    with _transaction(conn, LOCK_TIMEOUT) as cur:
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
    with _transaction(conn, lock_timeout) as cur:
        cur.execute("select predictions.fail_run(%s, %s)", (run_id, error))
        cur.execute(
            "select predictions.is_owner(), predictions.partition_name(%s),"
            " to_regclass(format('predictions.%%I', predictions.partition_name(%s))) is not null",
            (run_id, run_id),
        )
        owner, name, exists = cur.fetchone()
    if owner and exists:
        try:
            _drop_tables(conn, [name], lock_timeout)
        except Exception as exc:  # pruning drops it later
            log.warning("the partition of failed run %s stays until the next prune drops it: %s", run_id, exc)


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


def _copy(cur: cursor, statement: str, table: pyarrow_lib.Table) -> None:
    cur.copy_expert(statement, _CsvStream(table))


def _write_partition(
    conn: connection,
    run_id: str,
    table: pyarrow_lib.Table,
    steps: dict[str, float],
    readers: _Readers,
    lock_timeout: str,
) -> None:
    """The door's open_rows, COPY FREEZE of the rows, the wait for readers and attach_rows, in one transaction."""
    with _transaction(conn, lock_timeout) as cur:
        started = time.perf_counter()
        cur.execute("select predictions.open_rows(%s)", (run_id,))
        (name,) = cur.fetchone()  # quoted by the door
        columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        # FREEZE: the table is new in this transaction, so its rows can be written frozen and all-visible
        # (no hint bits for readers to set later, index-only scans at once)
        copy = sql.SQL("copy {} ({}) from stdin with (format csv, freeze)").format(sql.SQL(name), columns)
        _copy(cur, copy.as_string(conn), table)
        steps["copy"] = time.perf_counter() - started
        started = time.perf_counter()
        readers.wait(cur)
        steps["wait_for_readers"] = time.perf_counter() - started
        started = time.perf_counter()
        cur.execute("select predictions.attach_rows(%s)", (run_id,))
    steps["attach"] = time.perf_counter() - started


class _Readers:
    """The waits of one publish for transactions that may have planned without its partition (module docstring),
    ``timeout`` seconds for all of them together."""

    def __init__(self, run_id: str, timeout: float) -> None:
        self.run_id, self.timeout = run_id, timeout
        self.deadline = time.monotonic() + timeout

    def _open(self, cur: cursor, seconds: float) -> str | None:
        cur.execute("select predictions.wait_for_readers(%s, %s)", (self.run_id, max(0.0, seconds)))
        return cur.fetchone()[0]

    def wait(self, cur: cursor) -> None:
        """Wait until the transactions holding a lock on predictions.recommendations now have ended; after the
        attach has committed, the door records it. PublishError naming them once ``timeout`` has passed."""
        still_open = self._open(cur, min(WARN_AFTER_S, self.deadline - time.monotonic()))
        if still_open and self.deadline > time.monotonic():
            log.warning(
                "publish of %s waits for transactions reading predictions.recommendations: %s", self.run_id, still_open
            )
            still_open = self._open(cur, self.deadline - time.monotonic())
        if still_open:
            raise PublishError(
                f"gave up after {self.timeout:g} s waiting for transactions that read predictions.recommendations"
                f" before run {self.run_id} was attached to end: {still_open}. Making the run current while they"
                " run could show them no recommendations; end them (or raise reader_wait_s) and publish again",
                code="55P03",
            )


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
        table = _check(recommendations)
        users = _count_distinct(table.column("user_id").to_numpy())
        steps["check"] = time.perf_counter() - started
        readers = _Readers(run_id, reader_wait_s)
        _write_partition(conn, run_id, table, steps, readers, lock_timeout)
        started = time.perf_counter()
        with _transaction(conn, lock_timeout) as cur:
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
    with _door():
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
        with _transaction(conn, lock_timeout) as cur:
            cur.execute(
                "select predictions.record_results(%s, %s::jsonb, %s::jsonb)", (run_id, _json(metrics), _json(timings))
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


# ---------------------------------------------------------------------------------------------------------------------
# partitions: dropping them, pruning


def _partitions(cur: cursor) -> dict[str, bool]:
    """Partitions of predictions.recommendations by name -> True if a detach of it is pending."""
    cur.execute(
        "select child.relname, inherits.inhdetachpending from pg_inherits as inherits"
        " join pg_class as child on child.oid = inherits.inhrelid"
        " where inherits.inhparent = 'predictions.recommendations'::regclass"
    )
    return dict(cur.fetchall())


def _drop_table(cur: cursor, name: str, detach_pending: bool | None, lock_timeout: str) -> None:
    """Detach the table ``name`` (if a partition: ``detach_pending`` not None) and drop it; PublishError naming
    the transactions it waited for when ``lock_timeout`` ran out."""
    table = sql.SQL("predictions.{}").format(sql.Identifier(name))
    waited_for = "predictions.recommendations"  # DETACH CONCURRENTLY waits for every transaction using the parent
    try:
        if detach_pending is not None:
            how = sql.SQL("finalize" if detach_pending else "concurrently")
            cur.execute(sql.SQL("alter table predictions.recommendations detach partition {} {}").format(table, how))
        waited_for = f"predictions.{name}"
        cur.execute(sql.SQL("drop table if exists {}").format(table))
    except errors.LockNotAvailable as exc:
        cur.execute("select predictions.lockers(%s::regclass, 'access exclusive')", (waited_for,))
        raise PublishError(
            f"dropping predictions.{name} gave up after lock_timeout ({lock_timeout}) waiting for transactions using"
            f" {waited_for}: {cur.fetchone()[0]}; the next prune drops it"
        ) from exc


def _drop_tables(conn: connection, names: list[str], lock_timeout: str) -> list[str]:
    """Detach each named table from predictions.recommendations (concurrently) and drop it; the names dropped.

    The owner's: the door gives them up first (their runs can never be current again).
    DETACH CONCURRENTLY takes no lock that blocks readers; it waits for the transactions
    that may still use the partition, up to ``lock_timeout`` (then it stays pending, the
    next call finishes it, and PublishError names them). Runs outside a transaction, with
    autocommit.
    """
    if conn.get_transaction_status() != TRANSACTION_STATUS_IDLE:
        conn.rollback()
    autocommit = conn.autocommit
    conn.autocommit = True
    dropped = []
    try:
        with conn.cursor() as cur:
            cur.execute("select current_setting('lock_timeout')")
            (before,) = cur.fetchone()
            cur.execute("select set_config('lock_timeout', %s, false)", (lock_timeout,))
            try:
                partitions = _partitions(cur)
                for name in names:
                    _drop_table(cur, name, partitions.get(name), lock_timeout)
                    dropped.append(name)
            finally:
                cur.execute("select set_config('lock_timeout', %s, false)", (before,))
    finally:
        conn.autocommit = autocommit
    return dropped


def prune(conn: connection, keep: int = 5, lock_timeout: str = LOCK_TIMEOUT) -> list[str]:
    """Give up the rows of all but the newest ``keep`` published or rolled-back runs, and drop them; the runs dropped.

    Running runs whose session has ended are marked failed first (``reap_orphans``). The
    current run and running runs (being published) always keep theirs; failed runs and
    tables of no known run lose theirs. Only the owner drops tables: for anyone else the
    runs are given up (no rollback returns to them) and nothing is dropped. ``lock_timeout``
    bounds each wait.
    """
    with _transaction(conn, lock_timeout) as cur:
        cur.execute("select table_name, run_id from predictions.prune(%s)", (keep,))
        victims = cur.fetchall()
        cur.execute("select predictions.is_owner()")
        owner = cur.fetchone()[0]
    if not owner or not victims:
        return []
    dropped = set(_drop_tables(conn, [name for name, _ in victims], lock_timeout))
    return [run_id or name for name, run_id in victims if name in dropped]


def restore(cur: cursor, run_id: str) -> None:
    """Make the earlier run ``run_id`` current again in the caller's transaction (a generation's rollback).

    The current run becomes 'rolled_back'. PublishError if ``run_id`` was never published
    or its recommendations were pruned. Its lock waits end after the caller's lock_timeout.
    """
    with _door():
        cur.execute("select predictions.restore(%s)", (run_id,))


def rollback(conn: connection, lock_timeout: str = LOCK_TIMEOUT) -> str:
    """Make the run published before the current one current again; the current one becomes 'rolled_back'.

    Returns the run_id now current. PublishError when no run is current, or when no earlier
    published run still has its recommendations (pruning keeps the newest few).
    """
    with _transaction(conn, lock_timeout) as cur:
        cur.execute("select predictions.rollback()")
        return cur.fetchone()[0]
