"""Running a query or the command line against a test database."""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import closing

from psycopg2 import sql as psql

from recommender.warehouse.logins import GROUPS
from recommender.warehouse.targets import PROJECT_ROOT, Target


def query(target: Target, sql: str, params: tuple = ()) -> list[tuple]:
    """All rows of ``sql`` on ``target``, in a connection of its own."""
    with closing(target.connect()) as conn, conn.cursor() as cur:
        cur.execute(sql, params or None)  # no params: % is a literal, as in LIKE patterns
        return cur.fetchall()


def cli(target: Target, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m recommender ARGS`` with the libpq variables pointing at ``target``."""
    return subprocess.run(
        [sys.executable, "-m", "recommender", *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **target.env()},
        text=True,
        capture_output=True,
    )


def make_groups(target: Target) -> None:
    """The group roles, as dbt's on-run-start makes them (roles are the server's: another session may race us)."""
    with closing(target.connect()) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            for group in GROUPS:
                cur.execute(
                    psql.SQL(
                        "do $$ begin create role {} nologin; exception when duplicate_object then null; end $$"
                    ).format(psql.Identifier(group))
                )


# What no session may leave behind on the server: the attack suites snapshot these before and after
SERVER_STATE = {
    "large objects": "select count(*) from pg_largeobject_metadata",
    "advisory locks": """
        select classid, objid, objsubid, mode, granted from pg_locks
        where locktype = 'advisory' and database = (select oid from pg_database where datname = current_database())
        order by 1, 2, 3""",
    "prepared transactions": "select gid from pg_prepared_xacts where database = current_database() order by 1",
    "postgresql.auto.conf": """
        select name, setting from pg_file_settings where sourcefile like '%postgresql.auto.conf' order by seqno""",
}
