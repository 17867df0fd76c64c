"""The API's connections: a pool for reads, a connection per analyst's SQL statement, connections for writes.

Reads go through asyncpg (the API's hot path: one round trip, statements prepared once
per connection). An analyst's SQL logs in as the calling key's own database login (a
member of analyst), on a connection of its own that is closed afterwards: neither
``SET ROLE`` nor ``RESET ROLE`` inside a statement can reach a role with more rights,
no session state outlives the request, one caller cannot see another's statements,
and the database's logs name the key. Writes reuse ``recommender.activity`` (validation, batch digests, COPY),
which works on psycopg2 connections, in FastAPI's thread pool.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import asyncpg
from fastapi import Depends, HTTPException, Request
from psycopg2.extensions import connection
from psycopg2.pool import ThreadedConnectionPool

from recommender.api.run_cache import RunCache
from recommender.errors import InvalidArgumentError
from recommender.warehouse import logins
from recommender.warehouse.targets import Target, target_from_env


def _int(environ: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    value = int(environ.get(name, default))
    if not low <= value <= high:
        raise InvalidArgumentError(f"{name} must be between {low} and {high}, not {value}")
    return value


@dataclass(frozen=True)
class Settings:
    """What the API connects to and its limits; ``from_env`` reads them from ``NETFLIX_*`` variables."""

    target: Target
    sql_time_limit_ms: int = 1000  # as Datasette's sql_time_limit_ms
    sql_max_rows: int = 1000  # as Datasette's max_returned_rows
    cache_entries: int = 20_000  # recommendations answers kept per worker (about 3 kB each)
    pool_size: int = 50  # a request waiting for a connection waits behind newer ones: size it for the concurrency
    sql_max_bytes: int = 10 * 2**20  # a /sql answer stops after the row that reaches this many bytes
    max_body_bytes: int = 16 * 2**20  # a request body; 50,000 events (a write's most) take 12 MiB as JSON
    max_upload_bytes: int = 512 * 2**20  # a body of limits.UPLOAD_PATHS (uploaded recommendation rows)
    rate_per_s: float = 100  # requests a second per API key (token bucket, per worker process); 0: no limit
    rate_burst: int = 200  # requests a key may make at once before the rate applies; 0: no limit
    lake_dir: Path | None = None  # users, events and ratings go into this activity lake, not app.* (serve --lake)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ, target: Target | None = None) -> Settings:
        return cls(
            target=target or target_from_env(environ),
            sql_time_limit_ms=_int(environ, "NETFLIX_SQL_TIME_LIMIT_MS", 1000, 1, 600_000),
            sql_max_rows=_int(environ, "NETFLIX_SQL_MAX_ROWS", 1000, 1, 1_000_000),
            cache_entries=_int(environ, "NETFLIX_API_CACHE_ENTRIES", 20_000, 0, 10_000_000),
            pool_size=_int(environ, "NETFLIX_API_POOL_SIZE", 50, 1, 1000),
            sql_max_bytes=_int(environ, "NETFLIX_SQL_MAX_BYTES", 10 * 2**20, 1, 2**31),
            max_body_bytes=_int(environ, "NETFLIX_API_MAX_BODY_BYTES", 16 * 2**20, 0, 2**40),
            max_upload_bytes=_int(environ, "NETFLIX_API_MAX_UPLOAD_BYTES", 512 * 2**20, 0, 2**40),
            rate_per_s=_int(environ, "NETFLIX_API_RATE_PER_S", 100, 0, 10_000_000),
            rate_burst=_int(environ, "NETFLIX_API_RATE_BURST", 200, 0, 10_000_000),
            lake_dir=Path(environ["NETFLIX_LAKE_DIR"]) if environ.get("NETFLIX_LAKE_DIR") else None,
        )


async def _end_transaction(conn: asyncpg.Connection) -> None:
    """Ready a read connection for the next request: our own queries leave no session state, only, if a
    request was cancelled, an open transaction (asyncpg's default reset costs a round trip per request)."""
    if conn.is_in_transaction():
        await conn.execute("rollback")


WRITERS = 4  # connections for writes (each a COPY of one batch)
WRITER_WAIT_S = 30.0
SQL_CONNECTIONS = 5  # analysts' statements at once, per API process
SQL_CONNECT_WAIT_S = 5.0  # a statement waits this long for its turn, then hears 503


class Database:
    """The pools of one API process; ``open`` in the app's lifespan, ``close`` at shutdown."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.reader: asyncpg.Pool | None = None
        self._sql_slots = asyncio.Semaphore(SQL_CONNECTIONS)
        self._writers: ThreadedConnectionPool | None = None
        self._writer_slots = threading.BoundedSemaphore(WRITERS)
        # GET /users/{id}/recommendations answers of the current run
        self.recommendations: RunCache[bytes] = RunCache(settings.cache_entries)
        # the current run's popular titles, for users it does not know (api.popular); the previous run's too
        self.popular: RunCache[list[asyncpg.Record]] = RunCache(min(settings.cache_entries, 2))

    async def open(self, init: Callable[[asyncpg.Connection], Awaitable[None]] | None = None) -> None:
        """Start the pools; ``init`` prepares each new read connection (type codecs)."""
        target = self.settings.target
        common = {"host": target.host, "port": target.port, "database": target.database, "command_timeout": 60}
        self.reader = await asyncpg.create_pool(
            user=target.user,
            password=target.password or None,
            min_size=1,
            max_size=self.settings.pool_size,
            # no request of the API's own should take long; one that does is stopped (57014: a 503)
            server_settings={"application_name": "netflix_warehouse api", "statement_timeout": "10s"},
            init=init,
            reset=_end_transaction,
            **common,
        )
        self._writers = ThreadedConnectionPool(
            0,
            WRITERS,
            host=target.host,
            port=target.port,
            user=target.user,
            password=target.password or None,
            dbname=target.database,
            application_name="netflix_warehouse api writes",
        )

    async def close(self) -> None:
        if self.reader is not None:
            await self.reader.close()
        if self._writers is not None:
            self._writers.closeall()

    @asynccontextmanager
    async def key_connection(self, key_id: str) -> AsyncIterator[asyncpg.Connection]:
        """A new connection logged in as the key's own database login, closed (or, if busy, cut) afterwards."""
        try:
            await asyncio.wait_for(self._sql_slots.acquire(), SQL_CONNECT_WAIT_S)
        except TimeoutError:
            raise HTTPException(
                503, "every SQL connection is busy; retry shortly", headers={"Retry-After": "1"}
            ) from None
        try:
            login = logins.key_target(self.settings.target, key_id)
            conn = await asyncpg.connect(
                host=login.host,
                port=login.port,
                database=login.database,
                user=login.user,
                password=login.password,
                timeout=SQL_CONNECT_WAIT_S,
                statement_cache_size=0,  # an analyst's statement is prepared once, never kept
                server_settings={"application_name": "netflix_warehouse api /sql"},
            )
            try:
                yield conn
            finally:
                try:
                    await conn.close(timeout=1)
                except (asyncpg.InterfaceError, asyncpg.PostgresError, OSError, TimeoutError):
                    conn.terminate()  # a statement still running (a timeout) is cut, not waited for
        finally:
            self._sql_slots.release()

    @contextmanager
    def writer(self) -> Iterator[connection]:
        """A psycopg2 connection of the owner, for ``recommender.activity``; broken ones are discarded."""
        assert self._writers is not None, "Database.open() first"
        # psycopg2's pool raises when all are taken: more writers wait here, then hear 503
        if not self._writer_slots.acquire(timeout=WRITER_WAIT_S):
            raise HTTPException(503, "all write connections are busy; retry shortly", headers={"Retry-After": "1"})
        try:
            conn = self._writers.getconn()
        except BaseException:
            self._writer_slots.release()
            raise
        try:
            yield conn
        finally:
            if not conn.closed:
                conn.rollback()
            self._writers.putconn(conn, close=bool(conn.closed))
            self._writer_slots.release()


async def database(request: Request) -> Database:  # async: no trip through the thread pool
    return request.app.state.database


async def _read_connection(db: Annotated[Database, Depends(database)]) -> AsyncIterator[asyncpg.Connection]:
    assert db.reader is not None
    async with db.reader.acquire() as conn:
        yield conn


# a pooled connection of the warehouse owner for one request's reads
Reader = Annotated[asyncpg.Connection, Depends(_read_connection)]
