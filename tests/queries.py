"""Running a query against a test database."""

from __future__ import annotations

from contextlib import closing

from recommender.warehouse import Target


def query(target: Target, sql: str, params: tuple = ()) -> list[tuple]:
    """All rows of ``sql`` on ``target``, in a connection of its own."""
    with closing(target.connect()) as conn, conn.cursor() as cur:
        cur.execute(sql, params or None)  # no params: % is a literal, as in LIKE patterns
        return cur.fetchall()
