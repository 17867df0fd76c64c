"""``POST /sql``: analysts' ad-hoc SQL, made safe by the database rather than by parsing.

The statement runs on a connection of its own that logged in as the calling key's
database login, a member of ``analyst`` (read-only grants; ``SET ROLE`` or ``RESET
ROLE`` cannot reach more), inside a READ ONLY transaction that is always rolled back,
under a ``statement_timeout``. It goes through the extended query protocol, which takes exactly
one statement. Rows are fetched from a cursor in small batches until ``sql_max_rows``
rows, or the row that brings the answer to ``sql_max_bytes``, so an endless or a wide
result costs no more than its first rows. The connection is closed afterwards, with
whatever the statement left in its session.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import time
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi.responses import JSONResponse

from recommender.api.auth import Caller, needs, require
from recommender.api.database import Database, database
from recommender.api.schemas import SqlColumn, SqlQuery, SqlResult
from recommender.warehouse.jsonable import plain

router = APIRouter(tags=["ad-hoc SQL"])


async def _run(
    db: Database, caller: Caller, statement: str, max_rows: int, time_limit_ms: int, max_bytes: int
) -> tuple[list[SqlColumn], list[list[Any]], str | None]:
    async with db.key_connection(caller.key_id) as conn:
        return await _run_on(conn, statement, max_rows, time_limit_ms, max_bytes)


def _size(row: list[Any]) -> int:
    """About the bytes ``row`` takes in a JSON or CSV answer: its values as UTF-8 text, a separator and quotes each."""
    return sum(len(text) if (text := str(value)).isascii() else len(text.encode()) for value in row) + 3 * len(row)


BATCH_ROWS = 100  # rows fetched at once at most: what a cap can make the API hold beyond it


async def _fetch(
    cursor: asyncpg.cursor.Cursor, max_rows: int, max_bytes: int, timeout: float
) -> tuple[list[list[Any]], str | None]:
    """Rows (``plain`` values) up to ``max_rows``, or up to the one that brings them to ``max_bytes``, and the
    cap that cut them (None: the result ended first), within ``timeout`` seconds in all."""
    deadline = time.monotonic() + timeout
    rows: list[list[Any]] = []
    size, batch = 0, 1
    while True:
        # batches grow from 1 row to BATCH_ROWS, but no further than the rows that fit at the size seen so far
        fits = (max_bytes - size) * len(rows) // size + 1 if rows else batch
        wanted = max(1, min(batch, fits, max_rows + 1 - len(rows)))
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        fetched = await cursor.fetch(wanted, timeout=left)
        for record in fetched:
            if len(rows) == max_rows or size >= max_bytes:  # a row past a cap: the answer is cut
                return rows, "rows" if len(rows) == max_rows else "bytes"
            rows.append(row := [plain(value, non_finite="text") for value in record])
            size += _size(row)
        if len(fetched) < wanted:
            return rows, None
        batch = min(2 * batch, BATCH_ROWS)


async def _run_on(
    conn: asyncpg.Connection, statement: str, max_rows: int, time_limit_ms: int, max_bytes: int
) -> tuple[list[SqlColumn], list[list[Any]], str | None]:
    """Columns, the rows the caps let through and the cap that cut them, in a rolled-back READ ONLY transaction."""
    transaction = conn.transaction(readonly=True)
    await transaction.start()
    try:
        await conn.execute(f"set local statement_timeout = {int(time_limit_ms)}")
        # past the server's own timeout by a second: a backstop that cancels the query
        timeout = time_limit_ms / 1000 + 1
        prepared = await conn.prepare(statement, timeout=timeout)
        columns = [SqlColumn(name=a.name, type=a.type.name) for a in prepared.get_attributes()]
        if columns:
            rows, cut_by = await _fetch(await prepared.cursor(), max_rows, max_bytes, timeout)
        else:
            await prepared.fetch(timeout=timeout)
            rows, cut_by = [], None
    finally:
        # never commit; a statement that ended its own session leaves nothing to roll back, and its error stands
        with contextlib.suppress(asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
            await transaction.rollback()
    return columns, rows, cut_by


@router.post(
    "/sql",
    response_model=SqlResult,
    summary="Run one read-only SQL statement as the analyst role",
    description="Limits: a statement timeout (NETFLIX_SQL_TIME_LIMIT_MS, default 1000 ms), a row cap"
    " (NETFLIX_SQL_MAX_ROWS, default 1,000) and a byte cap (NETFLIX_SQL_MAX_BYTES, default 10 MiB: the answer"
    " ends with the row that reaches it). `truncated` says there were more rows, `truncated_by` which cap cut"
    " them. A database error is a 400 with the database's message and SQLSTATE. `format: csv` answers text/csv"
    " (headers `X-Truncated` and, when cut, `X-Truncated-By`).",
    **needs(
        "analyst",
        responses={
            200: {"content": {"text/csv": {"schema": {"type": "string"}}}},
            400: {"description": "the database refused or stopped the statement: `detail` and `sqlstate`"},
            503: {"description": "the analyst role cannot log in"},
        },
    ),
)
async def run_sql(
    query: SqlQuery, db: Annotated[Database, Depends(database)], caller: Annotated[Caller, Depends(require("analyst"))]
) -> Response:
    settings = db.settings
    started = time.perf_counter()
    try:
        columns, rows, cut_by = await _run(
            db, caller, query.sql, settings.sql_max_rows, settings.sql_time_limit_ms, settings.sql_max_bytes
        )
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        raise HTTPException(
            503, f"the API cannot log in as this key's database login ({exc}): create a new key"
        ) from None
    except (asyncpg.InsufficientResourcesError, asyncpg.OperatorInterventionError) as exc:  # classes 53, 57
        if exc.sqlstate != "57014":  # a statement's own timeout is the caller's to fix
            raise HTTPException(503, f"the database cannot serve this now: {exc}") from None
        return JSONResponse({"detail": str(exc).strip(), "sqlstate": exc.sqlstate}, 400)
    except asyncpg.PostgresError as exc:
        return JSONResponse({"detail": str(exc).strip() or type(exc).__name__, "sqlstate": exc.sqlstate}, 400)
    except TimeoutError:
        return JSONResponse({"detail": "canceling statement due to statement timeout", "sqlstate": "57014"}, 400)
    except asyncpg.InterfaceError as exc:  # e.g. a statement asyncpg will not run inside its transaction
        return JSONResponse({"detail": str(exc), "sqlstate": None}, 400)
    truncated = cut_by is not None
    if query.format == "csv":
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow([column.name for column in columns])
        # arrays and json as JSON text, as a spreadsheet or pandas.read_csv can take them back
        writer.writerows([[json.dumps(v) if isinstance(v, list | dict) else v for v in row] for row in rows])
        headers = {"X-Truncated": str(truncated).lower(), **({"X-Truncated-By": cut_by} if cut_by else {})}
        return Response(text.getvalue(), media_type="text/csv", headers=headers)
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    result = SqlResult(
        columns=columns, rows=rows, row_count=len(rows), truncated=truncated, truncated_by=cut_by, elapsed_ms=elapsed
    )
    return JSONResponse(result.model_dump())
