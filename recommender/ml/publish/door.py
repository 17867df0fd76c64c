"""The door of schema ``predictions``: its SQL, the refusals it raises, bounded transactions through it."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg2
from psycopg2.extensions import connection, cursor

from recommender.errors import BadInputError
from recommender.warehouse import access, sql_files

# the schema's tables and helpers, then the door's functions; run in this order
SQL_FILES = ("predictions.sql", "predictions_door.sql")
COLUMNS = ("user_id", "content_id", "score", "rank", "reason")  # what ``publish`` takes, in COPY order
LOCK_TIMEOUT = "5s"  # the longest any one lock wait of the publisher may take (switches wait for switches)
READER_WAIT_S = 300.0  # the longest a publish waits for readers that planned before its attach
WARN_AFTER_S = 5.0  # log the sessions a publish waits for after this many seconds
# SQLSTATEs of the door's refusals: a bad argument, no such run, another login's run, a run in the wrong state
REFUSALS = frozenset({"22023", "P0002", "42501", "55000"})


class PublishError(BadInputError, ValueError):
    """Recommendations refused, or a publish or rollback that cannot be done; the message says why.

    ``problems`` holds one line per bad column or row group when the recommendations were refused;
    ``code`` the SQLSTATE when the door refused (22023, P0002, 42501 or 55000) or a wait for readers ran out
    (55P03), None otherwise.
    """

    def __init__(self, message: str, problems: list[str] | None = None, code: str | None = None) -> None:
        self.problems = problems or []
        self.code = code
        super().__init__(message)


@contextmanager
def door_refusals() -> Iterator[None]:
    """The door's refusals as PublishError (its message and hint); other errors, lock timeouts included, as they are."""
    try:
        yield
    except psycopg2.Error as exc:
        if exc.pgcode not in REFUSALS:
            raise
        hint = f" ({exc.diag.message_hint})" if exc.diag.message_hint else ""
        raise PublishError(f"{exc.diag.message_primary}{hint}", code=exc.pgcode) from exc


@contextmanager
def transaction(conn: connection, lock_timeout: str) -> Iterator[cursor]:
    """A transaction on ``conn`` (committed at the end) whose every lock wait ends after ``lock_timeout``."""
    with door_refusals(), conn, conn.cursor() as cur:
        cur.execute("select set_config('lock_timeout', %s, true)", (lock_timeout,))
        yield cur


def ensure_schema(conn: connection) -> None:
    """Create or update schema ``predictions``: its tables, view and door (idempotent).

    The SQL runs only when it differs from what the warehouse has (its digest is the schema's
    comment), as the owner; then the access roles get their rights on it, if they exist (so a
    warehouse built before loses rights it no longer should have). When it is up to date it
    only looks, so a data scientist may call it, and readers are never locked out.
    """
    text = "\n".join(sql_files.read(__package__, name) for name in SQL_FILES)
    version = f"netflix_warehouse predictions {hashlib.sha256(text.encode()).hexdigest()[:16]}"
    with conn, conn.cursor() as cur:
        cur.execute("select obj_description(to_regnamespace('predictions'), 'pg_namespace')")
        if cur.fetchone()[0] == version:
            return
    try:
        with transaction(conn, LOCK_TIMEOUT) as cur:
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
