"""Where the warehouse is and how to connect to it.

The standard libpq variables choose an existing server: with ``PGHOST`` set,
``PGPORT``, ``PGUSER``, ``PGPASSWORD`` and ``PGDATABASE`` apply as libpq reads
them. Without ``PGHOST`` the warehouse is the embedded server (``.pgdata/``,
127.0.0.1, port ``NETFLIX_PGPORT``). ``profiles/profiles.yml`` applies the same rule for dbt.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection

from recommender.embedded import HOST, SUPERUSER, EmbeddedServer

PROJECT_ROOT = Path(__file__).resolve().parent.parent
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


def embedded_server(environ: Mapping[str, str] = os.environ) -> EmbeddedServer:
    pgdata = Path(environ.get("NETFLIX_PGDATA", PROJECT_ROOT / ".pgdata"))
    return EmbeddedServer(pgdata=pgdata, port=int(environ.get("NETFLIX_PGPORT", DEFAULT_EMBEDDED_PORT)))


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
    port = embedded_server(environ).port
    return Target(HOST, port, SUPERUSER, "", database, embedded=True)


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


def drop_database(target: Target) -> None:
    conn = target.connect(database="postgres")
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(target.database)))
    finally:
        conn.close()
