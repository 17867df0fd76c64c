"""``POST /sql``: analysts' ad-hoc SQL, made safe by the database rather than by parsing.

The statement runs on a connection that logged in as the role ``analyst`` (read-only
grants; ``SET ROLE`` or ``RESET ROLE`` cannot reach more), inside a READ ONLY
transaction that is always rolled back, after ``SET LOCAL ROLE analyst`` and a
``statement_timeout``. It goes through the extended query protocol, which takes exactly
one statement. At most ``sql_max_rows`` rows are fetched, from a cursor, so an endless
result costs no more than its first rows. The connection is reset with DISCARD ALL
(settings, advisory locks, LISTEN, cursors, prepared statements, temporary tables)
before it serves the next request.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import time
from decimal import Decimal
from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, HTTPException, Response
from fastapi.responses import JSONResponse

from recommender.api.auth import needs
from recommender.api.database import Database, database
from recommender.api.schemas import SqlColumn, SqlQuery, SqlResult

router = APIRouter(tags=["ad-hoc SQL"])
ACQUIRE_TIMEOUT_S = 5.0  # a request waits this long for one of the analyst connections, then hears 503


def _plain(value: Any) -> Any:
    """A value JSON (and CSV) can carry: exact decimals as numbers, NaN and infinities as text, bytes as hex."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal):
        return float(value) if value.is_finite() else str(value)
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


async def _run(pool: asyncpg.Pool, statement: str, max_rows: int, time_limit_ms: int) -> tuple[list, list, bool]:
    try:
        conn = await pool.acquire(timeout=ACQUIRE_TIMEOUT_S)
    except TimeoutError:
        raise HTTPException(
            503, "every analyst connection is busy; retry shortly", headers={"Retry-After": "1"}
        ) from None
    try:
        return await _run_on(conn, statement, max_rows, time_limit_ms)
    finally:
        await pool.release(conn)


async def _run_on(
    conn: asyncpg.Connection, statement: str, max_rows: int, time_limit_ms: int
) -> tuple[list, list, bool]:
    """Columns, at most ``max_rows + 1`` rows, and whether there were more, in a rolled-back READ ONLY transaction."""
    transaction = conn.transaction(readonly=True)
    await transaction.start()
    try:
        await conn.execute(f"set local role analyst; set local statement_timeout = {int(time_limit_ms)}")
        # past the server's own timeout by a second: a backstop that cancels the query
        timeout = time_limit_ms / 1000 + 1
        prepared = await conn.prepare(statement, timeout=timeout)
        columns = [SqlColumn(name=a.name, type=a.type.name) for a in prepared.get_attributes()]
        if columns:
            rows = await (await prepared.cursor()).fetch(max_rows + 1, timeout=timeout)
        else:
            await prepared.fetch(timeout=timeout)
            rows = []
    finally:
        # never commit; a statement that ended its own session leaves nothing to roll back, and its error stands
        with contextlib.suppress(asyncpg.InterfaceError, asyncpg.PostgresError, OSError):
            await transaction.rollback()
    return columns, rows, len(rows) > max_rows


@router.post(
    "/sql",
    response_model=SqlResult,
    summary="Run one read-only SQL statement as the analyst role",
    description="Limits: a statement timeout (NETFLIX_SQL_TIME_LIMIT_MS, default 1000 ms) and a row cap"
    " (NETFLIX_SQL_MAX_ROWS, default 1,000; `truncated` says there were more). A database error is a 400"
    " with the database's message and SQLSTATE. `format: csv` answers text/csv (header `X-Truncated`).",
    **needs(
        "analyst",
        responses={
            200: {"content": {"text/csv": {}}},
            400: {"description": "the database refused or stopped the statement: `detail` and `sqlstate`"},
            503: {"description": "the analyst role cannot log in"},
        },
    ),
)
async def run_sql(query: SqlQuery, db: Annotated[Database, Depends(database)]) -> Response:
    settings = db.settings
    started = time.perf_counter()
    try:
        columns, rows, truncated = await _run(db.analyst, query.sql, settings.sql_max_rows, settings.sql_time_limit_ms)
    except asyncpg.InvalidAuthorizationSpecificationError as exc:
        raise HTTPException(503, f"the API cannot log in as analyst ({exc}); run `make run` to set its login") from None
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
    rows = [[_plain(value) for value in row] for row in rows[: settings.sql_max_rows]]
    if query.format == "csv":
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow([column.name for column in columns])
        # arrays and json as JSON text, as a spreadsheet or pandas.read_csv can take them back
        writer.writerows([[json.dumps(v) if isinstance(v, list | dict) else v for v in row] for row in rows])
        return Response(text.getvalue(), media_type="text/csv", headers={"X-Truncated": str(truncated).lower()})
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    result = SqlResult(columns=columns, rows=rows, row_count=len(rows), truncated=truncated, elapsed_ms=elapsed)
    return JSONResponse(result.model_dump())
