"""Errors as HTTP answers, in one place: the package's kinds (``recommender.errors``) and the database's."""

from __future__ import annotations

import asyncpg
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from recommender.api.limits import invalid_request
from recommender.errors import (
    BadInputError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    UnavailableError,
    WarehouseError,
    kind,
)

STATUS_OF_KIND = {
    BadInputError: 422,
    NotFoundError: 404,
    ForbiddenError: 403,
    ConflictError: 409,
    UnavailableError: 503,
}
RETRY_AFTER_S = "5"  # what a 503 of a lock or a server that did not answer suggests


def warehouse_error(request: Request, exc: WarehouseError) -> JSONResponse:
    status = STATUS_OF_KIND.get(kind(exc), 500)
    headers = {"Retry-After": RETRY_AFTER_S} if status == 503 else None
    return JSONResponse({"detail": str(exc).strip()}, status, headers=headers)


def _missing_relation(request: Request, exc: asyncpg.UndefinedTableError) -> JSONResponse:
    return JSONResponse(
        {"detail": f"the warehouse is not built yet ({exc}): run `make run` (or python -m recommender run) first"}, 503
    )


def _too_slow(request: Request, exc: asyncpg.QueryCanceledError) -> JSONResponse:
    return JSONResponse({"detail": f"the warehouse took too long to answer ({exc}); retry later"}, 503)


def _database_down(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"the warehouse does not answer: {exc}"}, 503)


HANDLERS = {
    WarehouseError: warehouse_error,
    asyncpg.UndefinedTableError: _missing_relation,
    asyncpg.QueryCanceledError: _too_slow,
    asyncpg.PostgresConnectionError: _database_down,
    ConnectionError: _database_down,
    RequestValidationError: invalid_request,
}
