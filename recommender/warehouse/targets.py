"""Where the warehouse is and how to connect to it.

The standard libpq variables choose an existing server: with ``PGHOST`` set,
``PGPORT``, ``PGUSER``, ``PGPASSWORD`` and ``PGDATABASE`` apply as libpq reads
them. Without ``PGHOST`` the warehouse is the embedded server (``.pgdata/``,
127.0.0.1, port ``NETFLIX_PGPORT``), whose owner's password is ``NETFLIX_OWNER_PASSWORD``
or generated into ``.secrets/owner_password`` (and ``.secrets/pgpass``, for plain psql and
dbt). ``profiles/profiles.yml`` applies the same rule for dbt.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import psycopg2
from psycopg2 import sql
from psycopg2.extensions import Column, connection, cursor

from recommender.errors import MissingError
from recommender.warehouse import passwords
from recommender.warehouse.embedded import HOST, SUPERUSER, EmbeddedServer, free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_EMBEDDED_PORT = 54329
DEFAULT_DATABASE = "netflix"


@dataclass(frozen=True)
class Target:
    """Connection parameters of one warehouse database."""

    host: str
    port: int
    user: str
    password: str
    database: str
    embedded: bool

    def env(self) -> dict[str, str]:
        """libpq variables that point dbt, psql or a child process at this database."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": self.database,
        }

    def uri(self, *, with_password: bool = True) -> str:
        auth = quote(self.user, safe="")
        if self.password and with_password:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(self.database, safe='')}"

    def connect(self, database: str | None = None) -> connection:
        return psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=database or self.database,
            connect_timeout=10,
            application_name="netflix_warehouse",
        )

    def with_database(self, database: str) -> Target:
        return Target(self.host, self.port, self.user, self.password, database, self.embedded)


OWNER_PASSWORD = ("owner_password", "NETFLIX_OWNER_PASSWORD")  # the secret's file and variable


def owner_password(environ: Mapping[str, str] = os.environ) -> str:
    """The embedded server owner's password (never used for a server the libpq variables select)."""
    return passwords.generated(*OWNER_PASSWORD, environ)


def embedded_server(environ: Mapping[str, str] = os.environ) -> EmbeddedServer:
    pgdata = Path(environ.get("NETFLIX_PGDATA", PROJECT_ROOT / ".pgdata"))
    port = int(environ.get("NETFLIX_PGPORT", DEFAULT_EMBEDDED_PORT))
    return EmbeddedServer(pgdata=pgdata, port=port, password=owner_password(environ))


def start_embedded(server: EmbeddedServer) -> bool:
    """Start the project's embedded server unless it runs, and record its owner's password in ``.secrets/pgpass``
    (``.venv/bin/activate`` points PGPASSFILE there, so plain psql and dbt log in). True if it started it."""
    started = server.start()
    passwords.write_pgpass(HOST, server.port, SUPERUSER, server.password)
    return started


def embedded_target(server: EmbeddedServer, database: str) -> Target:
    return Target(HOST, server.port, SUPERUSER, server.password, database, embedded=True)


def target_from_env(environ: Mapping[str, str] = os.environ) -> Target:
    database = environ.get("PGDATABASE", DEFAULT_DATABASE)
    if environ.get("PGHOST"):
        return Target(
            host=environ["PGHOST"],
            port=int(environ.get("PGPORT", 5432)),
            user=environ.get("PGUSER", SUPERUSER),
            password=environ.get("PGPASSWORD", ""),
            database=database,
            embedded=False,
        )
    return embedded_target(embedded_server(environ), database)


def ensure_database(target: Target) -> bool:
    """Create the target database if it does not exist. Returns True if it created it."""
    conn = target.connect(database="postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (target.database,))
            if cur.fetchone():
                return False
            cur.execute(sql.SQL("create database {}").format(sql.Identifier(target.database)))
            return True
    finally:
        conn.close()


# The comment on a login role (roles are per server) that names its database: see recommender.warehouse.logins.
LOGIN_COMMENT = "netflix_warehouse {kind} login of database {database}"


def drop_database(target: Target) -> None:
    """Drop the database and the logins of its people and API keys."""
    conn = target.connect(database="postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(target.database)))
            cur.execute(
                "select rolname from pg_roles where shobj_description(oid, 'pg_authid') = any(%s)",
                ([LOGIN_COMMENT.format(kind=kind, database=target.database) for kind in ("person", "key")],),
            )
            for (name,) in cur.fetchall():
                cur.execute("select pg_terminate_backend(pid) from pg_stat_activity where usename = %s", (name,))
                cur.execute(sql.SQL("drop role {}").format(sql.Identifier(name)))
    finally:
        conn.close()


@contextmanager
def throwaway_warehouse(database: str) -> Iterator[Target]:
    """An empty ``database`` on a new embedded server in a temporary folder (for benchmarks); all gone after."""
    with tempfile.TemporaryDirectory(prefix=f"{database}-") as folder:
        server = EmbeddedServer(pgdata=Path(folder) / "pgdata", port=free_port(), password=owner_password())
        server.start()
        try:
            target = embedded_target(server, database)
            ensure_database(target)
            yield target
        finally:
            server.stop()


def count_rows(cur: cursor, relations: Sequence[tuple[str, str]]) -> list[int]:
    """Rows of each (schema, name) relation, in order: exact counts, one query each."""
    counts = []
    for schema, name in relations:
        cur.execute(sql.SQL("select count(*) from {}.{}").format(sql.Identifier(schema), sql.Identifier(name)))
        counts.append(cur.fetchone()[0])
    return counts


def lock_holders(cur: cursor, schemas: Sequence[str]) -> str:
    """The other sessions that hold locks on relations in ``schemas``, in words: who to end after a lock timeout."""
    cur.execute(
        "select distinct session.pid, session.usename, session.application_name, session.state, session.xact_start"
        " from pg_locks as held"
        " join pg_class as relation on relation.oid = held.relation"
        " join pg_stat_activity as session on session.pid = held.pid"
        " where relation.relnamespace::regnamespace::text = any(%s) and held.granted"
        " and held.pid <> pg_backend_pid() order by session.pid",
        (list(schemas),),
    )
    described = [
        f"pid {pid} ({user}, {application or 'no application name'}, {state}"
        + (f", in a transaction since {started:%Y-%m-%d %H:%M:%S %Z}" if started else "")
        + ")"
        for pid, user, application, state, started in cur.fetchall()
    ]
    return "; ".join(described) or "none holds one any more"


# pandas works in floats: numeric columns (scores, confidences) arrive as float, not Decimal
NUMERIC_AS_FLOAT = psycopg2.extensions.new_type(
    psycopg2.extensions.DECIMAL.values, "NUMERIC_AS_FLOAT", lambda value, _: float(value) if value is not None else None
)
# by type oid, the dtype pandas gives a column with values, for one that holds only nulls:
# numbers (smallint, integer, bigint, real, double precision, numeric) and timestamps
DTYPE_OF_NULLS = dict.fromkeys((21, 23, 20, 700, 701, 1700), "float64") | {
    1114: "datetime64[us]",
    1184: "datetime64[us, UTC]",
}


def _relation_columns(conn: connection, name: str) -> list[str]:
    schema, _, table = name.rpartition(".")
    with conn.cursor() as cur:
        cur.execute(
            "select column_name from information_schema.columns"
            " where table_schema = %s and table_name = %s order by ordinal_position",
            (schema or "public", table),
        )
        columns = [column for (column,) in cur.fetchall()]
    if not columns:
        raise MissingError(
            f"no table or view {name!r} in the warehouse (name it as schema.table, e.g. marts.catalogue)"
        )
    return columns


def read_table(
    conn: connection,
    name: str,
    *,
    columns: Sequence[str] | None = None,
    where: Mapping[str, object] | None = None,
    order_by: Sequence[str] | None = None,
    limit: int | None = None,
    chunksize: int | None = None,
) -> pd.DataFrame | Iterator[pd.DataFrame]:
    """Read a warehouse table or view (``schema.table``) into pandas.

    ``columns`` picks columns; ``where`` filters rows: ``{"content_type": "movie"}``
    is equality, a list or tuple means "any of", None means "is null". With
    ``chunksize`` the rows stream from a server-side cursor, ``chunksize`` at a time,
    as an iterator of DataFrames (for tables larger than memory). Numeric columns
    arrive as floats.
    """
    available = _relation_columns(conn, name)
    unknown = [c for c in [*(columns or ()), *(where or {}), *(order_by or ())] if c not in available]
    if unknown:
        raise KeyError(f"{name} has no column {', '.join(map(repr, unknown))}; it has: {', '.join(available)}")
    schema, _, table = name.rpartition(".")
    query = sql.SQL("select {} from {}.{}").format(
        sql.SQL(", ").join(map(sql.Identifier, columns or available)), sql.Identifier(schema), sql.Identifier(table)
    )
    conditions, params = [], []
    for column, value in (where or {}).items():
        if value is None:
            conditions.append(sql.SQL("{} is null").format(sql.Identifier(column)))
        elif isinstance(value, list | tuple | set | frozenset):
            conditions.append(sql.SQL("{} = any(%s)").format(sql.Identifier(column)))
            params.append(list(value))
        else:
            conditions.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
            params.append(value)
    if conditions:
        query += sql.SQL(" where ") + sql.SQL(" and ").join(conditions)
    if order_by:
        query += sql.SQL(" order by ") + sql.SQL(", ").join(map(sql.Identifier, order_by))
    if limit is not None:
        query += sql.SQL(" limit {}").format(sql.Literal(int(limit)))
    if chunksize is None:
        with conn.cursor() as cur:
            psycopg2.extensions.register_type(NUMERIC_AS_FLOAT, cur)
            cur.execute(query, params)
            return _frame(cur.fetchall(), cur.description)
    return _chunks(conn, query, params, chunksize)


def _frame(rows: list[tuple], description: Sequence[Column]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=[d.name for d in description])
    # a column holding only nulls comes out as objects: typed as one with values is, it reads the same
    # from the database and from the API (Parquet)
    for column in description:
        if column.type_code in DTYPE_OF_NULLS and len(frame) and frame[column.name].isna().all():
            frame[column.name] = frame[column.name].astype(DTYPE_OF_NULLS[column.type_code])
    return frame


def _chunks(conn: connection, query: sql.Composable, params: list[object], chunksize: int) -> Iterator[pd.DataFrame]:
    with conn.cursor(name=f"read_{id(query)}") as cur:  # a named cursor streams from the server
        psycopg2.extensions.register_type(NUMERIC_AS_FLOAT, cur)
        cur.itersize = chunksize
        cur.execute(query, params)
        while rows := cur.fetchmany(chunksize):
            yield _frame(rows, cur.description)
