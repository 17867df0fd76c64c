"""The activity lake: the app's rows as date-partitioned Parquet, copied from PostgreSQL by ``written_at``.

Layout under ``lake_dir`` (default ``target/spark/lake``)::

    app/viewing_events/started_date=2026-01-31/part-<batch>.parquet rows of each export, by the day they happened
    app/ratings/rated_date=.../                                      likewise
    app/users/, marts/catalogue/                                     snapshots, rewritten whole each export

``export`` appends only the rows written after the newest one already in the lake (the watermark
dbt's incremental models use too), so repeated exports move each row once; a writer that deletes
activity (``simulate --replace``) needs ``export(..., full=True)``.

At scale the activity skips PostgreSQL: ``LakeWriter`` (``python -m recommender simulate --lake``)
writes users and events into the lake directly, validated as the warehouse validates them. Such
a lake owns its ``app`` tables (``DIRECT``; its ``_batches`` folder records the batches written):
``export`` then refreshes only what PostgreSQL owns, the catalogue. ``register`` makes
the folders tables of a SparkSession under the names dbt's sources use (``app.viewing_events``,
``marts.catalogue``).
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import psycopg2
import pyarrow as pa
import pyarrow.parquet as pq
from psycopg2 import sql
from psycopg2.extensions import connection

from recommender import activity
from recommender.errors import InvalidArgumentError
from recommender.spark.session import SPARK_DIR
from recommender.warehouse import sql_files
from recommender.warehouse.targets import NUMERIC_AS_FLOAT, read_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LAKE_DIR = SPARK_DIR / "lake"
CHUNK_ROWS = 500_000  # rows read from PostgreSQL and written as one Parquet file per partition at a time
# PostgreSQL's type oids as the lake stores them; numbers as psycopg2 reads them (numeric and real as float64,
# whose shortest text is PostgreSQL's: Spark's casts to decimal then round as PostgreSQL's do); else text
ARROW_TYPES = {
    16: pa.bool_(),
    20: pa.int64(),
    21: pa.int16(),
    23: pa.int32(),
    700: pa.float64(),
    701: pa.float64(),
    1700: pa.float64(),
    1082: pa.date32(),
    1184: pa.timestamp("us", tz="UTC"),
}


@dataclass(frozen=True)
class LakeTable:
    """One table of the lake: ``name`` (schema.table) and, for an appended one, its day column and partition."""

    name: str
    day_of: str | None = None  # the timestamp whose UTC day partitions the rows; None: a snapshot
    columns: tuple[str, ...] | None = None  # None: every column

    @property
    def partition(self) -> str | None:
        return f"{self.day_of.removesuffix('_at')}_date" if self.day_of else None


TABLES = (
    LakeTable("app.viewing_events", day_of="started_at"),
    LakeTable("app.ratings", day_of="rated_at"),
    LakeTable("app.users"),
    # what user_activity_summary reads of the catalogue, which Spark does not build
    LakeTable("marts.catalogue", columns=("content_id", "content_type", "main_genre_id")),
)


TABLE = {table.name: table for table in TABLES}
DIRECT = ("app.users", "app.viewing_events", "app.ratings")  # what a lake written directly owns
BATCHES = "_batches"  # in a lake written directly: a file per batch written (its id; its rows inside)


def folder(lake_dir: Path, table: LakeTable) -> Path:
    return lake_dir.joinpath(*table.name.split("."))


def is_direct(lake_dir: Path) -> bool:
    """Whether the lake is written directly (``LakeWriter``) rather than fed by ``export``."""
    return (lake_dir / BATCHES).is_dir()


def written_directly(lake_dir: Path) -> dict[str, int] | None:
    """The batches written into the lake directly (batch id -> rows); None for a lake fed by ``export``."""
    if not is_direct(lake_dir):
        return None
    return {path.name: int(path.read_text()) for path in (lake_dir / BATCHES).iterdir()}


def export(conn: connection, lake_dir: Path = LAKE_DIR, *, full: bool = False) -> dict[str, int]:
    """Copy what is new in PostgreSQL into the lake; the rows moved per table (a snapshot counts all its rows).

    A lake written directly keeps its own ``DIRECT`` tables: only the others are copied.
    """
    moved = {}
    direct = is_direct(lake_dir)
    for table in TABLES:
        if direct and table.name in DIRECT:
            continue
        path = folder(lake_dir, table)
        if full or table.partition is None:
            shutil.rmtree(path, ignore_errors=True)
        watermark = _watermark(path)
        where = sql.SQL("written_at > %s") if watermark else sql.SQL("true")
        moved[table.name] = 0
        for chunk, schema in _read(conn, table, where, [watermark] if watermark else []):
            write_partitioned(chunk, lake_dir, table, schema)
            moved[table.name] += len(chunk)
    return moved


class LakeWriter:
    """A simulation's destination at scale: users and events written into the lake, not PostgreSQL.

    Each batch is validated as ``recommender.activity`` validates it for PostgreSQL (columns,
    types, ranges; titles and countries against the warehouse), except that events' users
    must be in the lake (only the batch's are looked up), and is written once: its files
    and its record under ``_batches`` are named by its digest, as ``app.batches`` names it,
    so writing the same batch again writes nothing, and a write killed half-way is replaced,
    not doubled, by the next. A new lake gets the tables with their columns and the
    catalogue, copied from the warehouse (``export`` refreshes it), so Spark has every source.
    """

    def __init__(self, conn: connection, lake_dir: Path = LAKE_DIR) -> None:
        self.conn, self.lake_dir = conn, lake_dir
        if not is_direct(lake_dir):
            if any(folder(lake_dir, TABLE[name]).is_dir() for name in DIRECT):
                raise InvalidArgumentError(
                    f"{lake_dir} holds activity exported from PostgreSQL; write directly into another folder"
                )
            # first: from here on the lake is written directly (export leaves app alone), even if made half
            (lake_dir / BATCHES).mkdir(parents=True, exist_ok=True)
        for name in DIRECT:  # the tables, no rows yet: each has its columns for Spark
            if not folder(lake_dir, TABLE[name]).is_dir():
                columns, schema = _no_rows(conn, TABLE[name])
                write_partitioned(columns, lake_dir, TABLE[name], schema)
        if not folder(lake_dir, TABLE["marts.catalogue"]).is_dir():
            export(conn, lake_dir)  # the catalogue

    def read_table(self, name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        return read_table(self.conn, name, columns=columns)

    def write_users(self, users: pd.DataFrame) -> list[activity.WriteResult]:
        return [self.write("users", users)]

    def write_events(self, events: pd.DataFrame) -> list[activity.WriteResult]:
        return [self.write("viewing_events", events)]

    def write(self, kind: str, frame: pd.DataFrame) -> activity.WriteResult:
        """Validate and write one batch of ``kind`` (users, viewing_events or ratings), as ``activity.write_*``."""
        if kind == "users":
            batch = activity.prepare_users(self.conn, frame)
        elif kind in ("viewing_events", "ratings"):
            prepare = activity.prepare_events if kind == "viewing_events" else activity.prepare_ratings
            batch = prepare(self.conn, frame, users=self._known_users(frame))
        else:
            raise InvalidArgumentError(f"a lake takes users, viewing_events or ratings, not {kind!r}")
        return self._append(batch, f"app.{kind}")

    def _known_users(self, frame: pd.DataFrame) -> activity.KnownUsers:
        """Which of the batch's users the lake holds: only those are read, so a write holds what it sent."""
        asked = pd.to_numeric(frame.get("user_id", pd.Series(dtype="int64")), errors="coerce").dropna()
        users = pq.read_table(
            folder(self.lake_dir, TABLE["app.users"]),
            columns=["user_id"],
            filters=[("user_id", "in", pd.unique(asked.astype("int64")).tolist())],
        ).column("user_id")
        return activity.KnownUsers(set(users.to_pylist()), f"the lake's app.users ({self.lake_dir})")

    def _append(self, batch: activity.PreparedBatch, name: str) -> activity.WriteResult:
        batch_id, rows = batch.batch_id, batch.table.num_rows
        record = self.lake_dir / BATCHES / batch_id
        if record.is_file():
            return activity.WriteResult(batch.kind, batch_id, rows, written=False)
        _, schema = _no_rows(self.conn, TABLE[name])
        frame = batch.table.to_pandas().assign(batch_id=batch_id, written_at=pd.Timestamp.now(tz="UTC"))
        frame = frame.reindex(columns=schema.names)  # the table's columns in its order (impression_id: null)
        write_partitioned(frame, self.lake_dir, TABLE[name], schema, name=batch_id)
        record.write_text(str(rows))  # after the files: until then the batch counts as not written
        return activity.WriteResult(batch.kind, batch_id, rows, written=True)


def _no_rows(conn: connection, table: LakeTable) -> tuple[pd.DataFrame, pa.Schema]:
    """``table``'s columns with no rows, and their Arrow schema, as PostgreSQL types them."""
    return next(_read(conn, table, sql.SQL("false"), []))


def _read(
    conn: connection, table: LakeTable, where: sql.Composable, params: list[object]
) -> Iterator[tuple[pd.DataFrame, pa.Schema]]:
    """The rows of ``table`` that ``where`` keeps, in chunks of ``CHUNK_ROWS`` (one empty chunk when none is left),
    each with the Arrow schema of the table's columns."""
    schema, name = table.name.split(".")
    columns = sql.SQL(", ").join(map(sql.Identifier, table.columns)) if table.columns else sql.SQL("*")
    query = sql.SQL("select {} from {}.{} where {}").format(
        columns, sql.Identifier(schema), sql.Identifier(name), where
    )
    with conn.cursor(name=f"lake_{name}") as cur:
        psycopg2.extensions.register_type(NUMERIC_AS_FLOAT, cur)
        cur.itersize = CHUNK_ROWS
        cur.execute(query, params)
        rows = cur.fetchmany(CHUNK_ROWS)
        arrow = pa.schema([(column.name, ARROW_TYPES.get(column.type_code, pa.string())) for column in cur.description])
        names = arrow.names
        while True:
            yield pd.DataFrame.from_records(rows, columns=names), arrow
            rows = cur.fetchmany(CHUNK_ROWS)
            if not rows:
                return


def write_partitioned(
    frame: pd.DataFrame, lake_dir: Path, table: LakeTable, schema: pa.Schema | None = None, name: str | None = None
) -> None:
    """Append ``frame`` (rows of ``table``, of Arrow ``schema`` when given) to the lake: a file per day, and the
    watermark moved to its newest row. An empty frame leaves a file with the columns only, so the table exists.
    Files are named by ``name`` where given (writing it again replaces them), else uniquely."""
    frame = frame.copy()
    for column in frame.columns:  # jsonb arrives as dicts; the lake keeps JSON text
        if (
            pd.api.types.is_object_dtype(frame[column])
            and frame[column].map(lambda value: isinstance(value, dict)).any()
        ):
            frame[column] = frame[column].map(json.dumps)
    path = folder(lake_dir, table)
    if table.partition is not None:
        frame[table.partition] = pd.to_datetime(frame[table.day_of], utc=True).dt.date
        schema = schema.append(pa.field(table.partition, pa.date32())) if schema is not None else None
    rows = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    name = f"part-{name or uuid.uuid4().hex}-{{i}}.parquet"
    if not len(frame) and not path.is_dir():
        # no rows (pyarrow would write no file): one empty file gives the table its columns, under the null
        # day (Spark's name for it) where the table has days
        empty = path / f"{table.partition}=__HIVE_DEFAULT_PARTITION__" if table.partition else path
        empty.mkdir(parents=True, exist_ok=True)  # another writer may be making it too
        pq.write_table(rows.drop_columns([table.partition]) if table.partition else rows, empty / name.format(i=0))
        return
    partitions = [table.partition] if table.partition else None
    pq.write_to_dataset(rows, path, partition_cols=partitions, basename_template=name)
    if table.partition is not None and len(frame):
        newest = pd.to_datetime(frame["written_at"], utc=True).max()
        old = _watermark(path)
        (path / "_watermark.json").write_text(json.dumps({"written_at": max(newest, old or newest).isoformat()}))


def _watermark(path: Path) -> pd.Timestamp | None:
    """The newest ``written_at`` in the lake folder ``path``, or None when it holds no rows yet."""
    state = path / "_watermark.json"
    return pd.Timestamp(json.loads(state.read_text())["written_at"]) if state.is_file() else None


def register(spark: SparkSession, lake_dir: Path = LAKE_DIR) -> list[str]:
    """Make the lake's folders tables of ``spark`` (named as in PostgreSQL); the names registered."""
    names = []
    for table in TABLES:
        path = folder(lake_dir, table)
        if not path.is_dir():
            continue
        schema = table.name.split(".")[0]
        spark.sql(sql_files.read("recommender.spark", "create_schema.sql", schema=schema))
        # registered again each time: a session may have read another lake under the same names
        spark.sql(sql_files.read("recommender.spark", "drop_table.sql", table=table.name))
        spark.catalog.createTable(table.name, path=str(path.resolve()), source="parquet")
        if table.partition:
            spark.catalog.recoverPartitions(table.name)  # the days in the folder
        names.append(table.name)
    return names
