"""The FastAPI application: ``create_app(settings)``; ``python -m recommender serve`` runs it with uvicorn."""

from __future__ import annotations

import gc
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from typing import Any

import asyncpg
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recommender import activity
from recommender.api import docs, keys
from recommender.api.auth import public
from recommender.api.database import Database, Reader, Settings
from recommender.api.errors import HANDLERS
from recommender.api.limits import RequestLimits
from recommender.api.rate_limit import RateLimiter
from recommender.api.routers import experiments, marts, people, reference, runs, sql, titles, users
from recommender.api.routers import keys as key_routes
from recommender.api.run_cache import CURRENT_RUN
from recommender.api.schemas import Health
from recommender.warehouse import access

access_log = logging.getLogger("recommender.api.access")
# uvicorn applies this in every worker: the access log's JSON lines on stdout, uvicorn's own warnings on stderr
LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(message)s"}},
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stdout"},
        "stderr": {"class": "logging.StreamHandler", "formatter": "plain", "stream": "ext://sys.stderr"},
    },
    "loggers": {
        "recommender.api.access": {"handlers": ["stdout"], "level": "INFO", "propagate": False},
        "uvicorn": {"handlers": ["stderr"], "level": "WARNING"},
    },
}

DESCRIPTION = """The netflix_warehouse catalogue, users' activity and recommendations over HTTP.

Reading the catalogue needs no key. Everything else needs an API key in the header
`X-API-Key`, of a role the endpoint lists under `x-roles` (admin may use every endpoint).
Keys are created on the command line: `python -m recommender keys create --role analyst --name alice`.

Limits: a request with a body needs a key, checked before the body is read (401); a body
has at most NETFLIX_API_MAX_BODY_BYTES (default 16 MiB; 413); each key may make
NETFLIX_API_RATE_PER_S requests a second, in bursts of NETFLIX_API_RATE_BURST (default
100 and 200; 429 with `Retry-After`); a 422 echoes only the start of a bad input.
"""


class AccessLog:
    """One JSON line per request: method, path, status, milliseconds, and the key that called."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            if access_log.isEnabledFor(logging.INFO):
                caller = scope.get("state", {}).get("caller")
                entry = {
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "ms": round((time.perf_counter() - started) * 1000, 2),
                    "key_id": caller.key_id if caller else None,
                    "role": caller.role if caller else None,
                }
                access_log.info(json.dumps(entry))


async def _codecs(conn: asyncpg.Connection) -> None:
    """JSON as Python objects and numerics as floats, as pandas and the schemas want them."""
    for name in ("json", "jsonb"):
        await conn.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
    await conn.set_type_codec("numeric", encoder=str, decoder=float, schema="pg_catalog", format="text")


SETUP_LOCK = 4_714_269_001  # an advisory lock: workers starting together set the schemas up one at a time


def _prepare(settings: Settings) -> None:
    """The schemas the API writes to and the session protection, created if missing, by one worker at a time."""
    with closing(settings.target.connect()) as conn:
        with conn, conn.cursor() as cur:
            cur.execute("select pg_advisory_lock(%s)", (SETUP_LOCK,))  # released when the connection closes
        keys.ensure_schema(conn)
        activity.ensure_schema(conn)
        access.protect_sessions(conn)  # also on warehouses built before it existed


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API on the warehouse of ``settings`` (default: the one the environment selects)."""
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        _prepare(settings)
        database = Database(settings)
        await database.open(init=_codecs)
        app.state.database = database
        gc.freeze()  # what start-up made lives for good: full collections skip it (pauses of 100+ ms under load)
        try:
            yield
        finally:
            gc.unfreeze()
            await database.close()

    app = FastAPI(
        title="netflix_warehouse API",
        version="1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        exception_handlers=HANDLERS,
        docs_url=None,  # docs.add_pages serves them, offline
        redoc_url=None,
    )
    app.state.rate_limiter = RateLimiter(settings.rate_per_s, settings.rate_burst)
    # AccessLog outermost: it logs the answers RequestLimits gives before the app runs
    app.add_middleware(
        RequestLimits, max_body_bytes=settings.max_body_bytes, max_upload_bytes=settings.max_upload_bytes
    )
    app.add_middleware(AccessLog)
    for module in (titles, people, reference, users, experiments, runs, sql, marts, key_routes):
        app.include_router(module.router)

    @app.get("/health", response_model=Health, tags=["health"], summary="Is the database there?", **public())
    async def health(db: Reader) -> Any:
        # a warehouse that has not published yet is healthy: it has no current run
        published = await db.fetchval("select to_regclass('predictions.model_runs') is not null")
        current = await db.fetchval(CURRENT_RUN) if published else None
        return Health(status="ok", database="ok", current_run=current)

    docs.describe_roles(app)
    docs.add_pages(app)
    return app
