"""Validated, idempotent, atomic writes (and deletes) of users and their activity in schema ``app``.

Three kinds of rows: users (``app.users``), viewing sessions (``app.viewing_events``)
and explicit ratings, "user U rated title T n stars at time t" (``app.ratings``).
The data scientists' simulations (and the built-in simulator), notebooks and the
HTTP API write here with ``write_users``, ``write_events`` and ``write_ratings``
(or ``prepare_*`` then ``write_prepared``). Every batch is checked whole before
anything is written: pandera checks columns, types and ranges, and the references
to titles (``core.titles``), countries (``core.countries``) and users (``app.users``)
are checked against the warehouse. An invalid batch raises ``BatchError`` listing
each offending row and why; nothing of it is written. A valid batch goes in by one
COPY inside one transaction, and is registered in ``app.batches`` under a digest of
its content, so writing the same batch again changes nothing.

A user may rate the same title several times; every rating is kept, and the one
with the latest ``rated_at`` counts. ``read_users``, ``read_events`` and
``read_ratings`` read the tables back typed as their batch models.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass

import pandas as pd
import pyarrow as pyarrow_lib
import pyarrow.csv as pyarrow_csv
from psycopg2 import errors, sql
from psycopg2.extensions import connection, cursor

from recommender.activity.checks import (
    LIVE,
    BatchError,
    KnownUsers,
    Place,
    _refuse_if_any,
    _unknown_activity_references,
    _unknown_references,
    _validate,
)
from recommender.activity.frames import (
    BATCH_KINDS,
    EVENT_COLUMNS,
    RATING_COLUMNS,
    USER_COLUMNS,
    EventBatch,
    RatingBatch,
    UserBatch,
)


@dataclass(frozen=True)
class WriteResult:
    kind: str
    batch_id: str
    rows: int
    written: bool  # False: this exact batch was already written (in the warehouse, or the lake)

    def __str__(self) -> str:
        state = "written" if self.written else "already written, skipped"
        return f"{self.kind} batch {self.batch_id}: {self.rows:,} rows {state}"


def _batch_id(kind: str, table: pyarrow_lib.Table) -> str:
    """A digest of the batch's content: the same rows give the same id."""
    digest = hashlib.sha256(kind.encode())
    for column in table.columns:
        for chunk in column.chunks:
            for buffer in chunk.buffers():
                if buffer is not None:
                    digest.update(buffer)
    return f"{kind}-{digest.hexdigest()[:24]}"


@dataclass(frozen=True)
class PreparedBatch:
    """A validated batch, ready for COPY; ``batch_id`` is a digest of its content."""

    kind: str
    table: pyarrow_lib.Table

    @property
    def batch_id(self) -> str:
        return _batch_id(self.kind, self.table)


def is_written(conn: connection, batch_id: str, place: Place = LIVE) -> bool:
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("select 1 from {}.batches where batch_id = %s").format(sql.Identifier(place.schema)), (batch_id,)
        )
        return cur.fetchone() is not None


def write_prepared(conn: connection, batch: PreparedBatch, place: Place = LIVE) -> WriteResult:
    """Register the batch and COPY it, in one transaction; a batch already registered is skipped."""
    batch_id, rows = batch.batch_id, batch.table.num_rows
    table = batch.table.append_column("batch_id", pyarrow_lib.array([batch_id] * rows, pyarrow_lib.string()))
    buffer = io.BytesIO()
    pyarrow_csv.write_csv(table, buffer, pyarrow_csv.WriteOptions(include_header=False))
    buffer.seek(0)
    columns = sql.SQL(", ").join(map(sql.Identifier, table.column_names))
    with conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "insert into {}.batches (batch_id, kind, row_count) values (%s, %s, %s)"
                " on conflict (batch_id) do nothing returning batch_id"
            ).format(sql.Identifier(place.schema)),
            (batch_id, batch.kind, rows),
        )
        if cur.fetchone() is None:
            return WriteResult(batch.kind, batch_id, rows, written=False)
        copy = sql.SQL("copy {}.{} ({}) from stdin with (format csv)").format(
            sql.Identifier(place.schema), sql.Identifier(batch.kind), columns
        )
        try:
            cur.copy_expert(copy.as_string(conn), buffer)
        except errors.UniqueViolation as exc:
            problem = {"row": None, "column": "key", "value": exc.diag.message_detail, "reason": "already written"}
            raise BatchError(batch.kind, pd.DataFrame([problem])) from None
    return WriteResult(batch.kind, batch_id, rows, written=True)


def write_users(conn: connection, users: pd.DataFrame) -> WriteResult:
    """Validate and write a batch of users (columns of ``UserBatch``; ``attributes`` optional)."""
    return write_prepared(conn, prepare_users(conn, users))


def prepare_users(conn: connection, users: pd.DataFrame, place: Place = LIVE) -> PreparedBatch:
    """Validate a batch of users against the schema and the warehouse; raise BatchError if invalid."""
    frame = users.reset_index(drop=True)
    if "attributes" not in frame.columns:
        frame = frame.assign(attributes=None)
    frame, problems = _validate(UserBatch, frame)
    _refuse_if_any("users", [problems, _unknown_references(conn, frame, "country_code", place.countries)])
    attributes = [json.dumps(value if value is not None else {}, sort_keys=True) for value in frame.attributes]
    table = pyarrow_lib.Table.from_pandas(frame[USER_COLUMNS].assign(attributes=attributes), preserve_index=False)
    table = table.set_column(
        table.column_names.index("signup_date"), "signup_date", table.column("signup_date").cast(pyarrow_lib.date32())
    )
    return PreparedBatch("users", table)


def derive_ids(frame: pd.DataFrame, columns: list[str]) -> pd.Series:
    """Deterministic non-negative bigint ids: a hash of each row's ``columns``."""
    hashed = pd.util.hash_pandas_object(frame[columns], index=False)
    return pd.Series((hashed.to_numpy() >> 1).astype("int64"), index=frame.index)


def derive_event_ids(events: pd.DataFrame) -> pd.Series:
    """Deterministic ids for events that come without one: a hash of user, title and start time."""
    return derive_ids(events, ["user_id", "content_id", "started_at"])


def derive_rating_ids(ratings: pd.DataFrame) -> pd.Series:
    """Deterministic ids for ratings that come without one: a hash of user, title and ``rated_at``.

    Hash the columns as ``RatingBatch`` types them (``prepare_ratings`` does), so that
    the same rating gives the same id however its writer spelled the time.
    """
    return derive_ids(ratings, ["user_id", "content_id", "rated_at"])


def write_events(conn: connection, events: pd.DataFrame) -> WriteResult:
    """Validate and write a batch of viewing events (columns of ``EventBatch``; ``event_id`` optional).

    Users must already be in ``app.users`` and titles in ``core.titles``.
    """
    return write_prepared(conn, prepare_events(conn, events))


def prepare_events(
    conn: connection, events: pd.DataFrame, place: Place = LIVE, users: KnownUsers | None = None
) -> PreparedBatch:
    """Validate a batch of events against the schema and the warehouse (its users against ``users`` where given,
    rather than ``place``'s table); raise BatchError if invalid."""
    frame = _without_impressions_where_missing(events.reset_index(drop=True))
    if "event_id" not in frame.columns:
        frame = frame.assign(event_id=derive_event_ids(frame))
    frame, problems = _validate(EventBatch, frame)
    _refuse_if_any("viewing_events", [problems, *_unknown_activity_references(conn, EventBatch, frame, place, users)])
    return PreparedBatch("viewing_events", _activity_table(frame, EVENT_COLUMNS))


def _without_impressions_where_missing(frame: pd.DataFrame) -> pd.DataFrame:
    return frame if "impression_id" in frame.columns else frame.assign(impression_id=None)


def _activity_table(frame: pd.DataFrame, columns: list[str]) -> pyarrow_lib.Table:
    """The rows to COPY; without ``impression_id`` where none cites one, so that a batch digests as it did before
    the column existed (writing an older simulation again skips it rather than clash on its keys)."""
    if frame["impression_id"].isna().all():
        columns = [column for column in columns if column != "impression_id"]
    return pyarrow_lib.Table.from_pandas(frame[columns], preserve_index=False)


def write_ratings(conn: connection, ratings: pd.DataFrame) -> WriteResult:
    """Validate and write a batch of ratings (columns of ``RatingBatch``; ``rating_id`` and ``rated_at`` optional).

    Users must already be in ``app.users`` and titles in ``core.titles``. A user may
    rate a title again (another ``rated_at``): both rows are kept, the latest counts.
    """
    return write_prepared(conn, prepare_ratings(conn, ratings))


def prepare_ratings(conn: connection, ratings: pd.DataFrame, users: KnownUsers | None = None) -> PreparedBatch:
    """Validate a batch of ratings against the schema and the warehouse (its users against ``users`` where given,
    rather than ``app.users``); raise BatchError if invalid.

    A rating without ``rated_at`` (no column, or a null) was given now: the database's ``now()``.
    """
    frame = _without_impressions_where_missing(_rated_now_where_missing(conn, ratings.reset_index(drop=True)))
    if "rating_id" in frame.columns:
        frame, problems = _validate(RatingBatch, frame)
    else:
        # ids are derived from the typed columns, then checked (one rating given twice in a batch is refused)
        frame, problems = _validate(RatingBatch.to_schema().remove_columns(["rating_id"]), frame)
        if not len(problems):
            frame, problems = _validate(RatingBatch, frame.assign(rating_id=derive_rating_ids(frame)))
    _refuse_if_any("ratings", [problems, *_unknown_activity_references(conn, RatingBatch, frame, LIVE, users)])
    return PreparedBatch("ratings", _activity_table(frame, RATING_COLUMNS))


def _rated_now_where_missing(conn: connection, frame: pd.DataFrame) -> pd.DataFrame:
    # the database's clock, as written_at's: the two times of a rating written now agree
    if "rated_at" not in frame.columns:
        frame = frame.assign(rated_at=None)
    missing = frame["rated_at"].isna()
    if not missing.any():
        return frame
    with conn.cursor() as cur:
        cur.execute("select now()")
        (now,) = cur.fetchone()
    return frame.assign(rated_at=frame["rated_at"].astype(object).where(~missing, pd.Timestamp(now).tz_convert("UTC")))


def delete_events(conn: connection, user_ids: list[int]) -> int:
    """Delete every event of these users, in one transaction; returns the events deleted."""
    with conn, conn.cursor() as cur:
        cur.execute("delete from app.viewing_events where user_id = any(%s)", (user_ids,))
        deleted = cur.rowcount
        _forget_empty_batches(cur)
        return deleted


def delete_users(conn: connection, user_ids: list[int]) -> int:
    """Delete users and all their events, ratings and what experiments showed them, in one transaction;
    returns the users deleted."""
    with conn, conn.cursor() as cur:
        for table in ("viewing_events", "ratings", "slate_utilities", "impressions", "assignments", "users"):
            cur.execute(
                sql.SQL("delete from app.{} where user_id = any(%s)").format(sql.Identifier(table)), (user_ids,)
            )
        deleted = cur.rowcount
        _forget_empty_batches(cur)
        return deleted


def _forget_empty_batches(cur: cursor) -> None:
    """Unregister batches with no row left, so writing one of them again writes it."""
    holders = sql.SQL(" and ").join(
        sql.SQL("not exists (select from app.{} as t where t.batch_id = b.batch_id)").format(sql.Identifier(kind))
        for kind in BATCH_KINDS
    )
    cur.execute(sql.SQL("delete from app.batches as b where {}").format(holders))
