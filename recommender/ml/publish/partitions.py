"""A run's own table of recommendations: written by a streamed COPY, attached as a partition, pruned."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pyarrow as pyarrow_lib
import pyarrow.csv as pyarrow_csv
from psycopg2 import errors, sql
from psycopg2.extensions import TRANSACTION_STATUS_IDLE, connection, cursor

from recommender.ml.publish.door import COLUMNS, LOCK_TIMEOUT, WARN_AFTER_S, PublishError, transaction

log = logging.getLogger(__name__)
COPY_BATCH_ROWS = 65_536  # rows rendered to CSV at a time while the server parses the previous batch


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


def write_partition(
    conn: connection,
    run_id: str,
    table: pyarrow_lib.Table,
    steps: dict[str, float],
    readers: Readers,
    lock_timeout: str,
) -> None:
    """The door's open_rows, COPY FREEZE of the rows, the wait for readers and attach_rows, in one transaction."""
    with transaction(conn, lock_timeout) as cur:
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


def drop_tables(conn: connection, names: list[str], lock_timeout: str) -> list[str]:
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
    with transaction(conn, lock_timeout) as cur:
        cur.execute("select table_name, run_id from predictions.prune(%s)", (keep,))
        victims = cur.fetchall()
        cur.execute("select predictions.is_owner()")
        owner = cur.fetchone()[0]
    if not owner or not victims:
        return []
    dropped = set(drop_tables(conn, [name for name, _ in victims], lock_timeout))
    return [run_id or name for name, run_id in victims if name in dropped]


class Readers:
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
