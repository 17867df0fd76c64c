"""Who is calling: the ``X-API-Key`` header, checked against ``api.keys``; what each endpoint needs.

Every route declares its roles with ``needs(...)`` (or ``public()``): the dependency that
enforces them, and an ``x-roles`` entry in the OpenAPI document that lists them. ``admin``
may do everything. No key where one is needed: 401; a key of another role: 403; a key
past its rate limit (``recommender.api.rate_limit``): 429.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

import asyncpg
from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from recommender.api import keys
from recommender.api.database import Reader
from recommender.api.rate_limit import RateLimiter

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="`python -m recommender keys create --role ROLE --name NAME`"
)
UNAUTHORIZED = {"description": "no valid API key (header X-API-Key)"}
FORBIDDEN = {"description": "the key's role may not use this endpoint"}
RATE_LIMITED = {"description": "the key's rate limit is spent: retry after `Retry-After` seconds"}


@dataclass(frozen=True)
class Caller:
    key_id: str
    role: str


KEY_QUERY = "select role, key_hash from api.keys where key_id = $1 and revoked_at is null"


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "APIKey"})


async def identify(db: asyncpg.Connection | asyncpg.Pool, key: str, limiter: RateLimiter) -> Caller:
    """The caller of a valid, unrevoked ``key``, this request counted against its rate; else 401 (or 429).

    Never cached: a revoked key stops working at once.
    """
    key_id = keys.parse_key_id(key)
    row = None
    if key_id is not None:
        row = await db.fetchrow(KEY_QUERY, key_id)
    if row is None or not keys.matches(key, row["key_hash"]):
        raise unauthorized("invalid or revoked API key")
    limiter.take(key_id)
    return Caller(key_id, row["role"])


async def caller(request: Request, db: Reader, key: Annotated[str | None, Security(api_key_header)]) -> Caller | None:
    """The caller of a valid, unrevoked key; None without a key; 401 for any other key, 429 past its rate.

    A request with a body was identified before it was read (``recommender.api.limits``):
    that caller is reused. Otherwise the lookup uses the request's own read connection
    (one pool checkout per request).
    """
    if key is None:
        return None
    found = request.scope.get("state", {}).get("caller")
    if found is None:
        request.state.caller = found = await identify(db, key, request.app.state.rate_limiter)
    return found


@cache
def require(*roles: str) -> Any:
    """A dependency that returns the caller if their role is one of ``roles`` (or admin)."""

    async def check(found: Annotated[Caller | None, Depends(caller)]) -> Caller:
        if found is None:
            raise unauthorized(f"this endpoint needs an API key of role {' or '.join(roles)} (header X-API-Key)")
        if found.role != "admin" and found.role not in roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {found.role} may not use this endpoint; it needs {' or '.join(roles)}"
            )
        return found

    return check


def needs(*roles: str, responses: dict[int | str, Any] | None = None) -> dict[str, Any]:
    """Route arguments for an endpoint open to ``roles`` (admin included), with its other ``responses``."""
    allowed = [*roles, "admin"] if "admin" not in roles else list(roles)
    return {
        "dependencies": [Depends(require(*roles))],
        "openapi_extra": {"x-roles": allowed},
        "responses": {**(responses or {}), 401: UNAUTHORIZED, 403: FORBIDDEN, 429: RATE_LIMITED},
    }


def public() -> dict[str, Any]:
    """Route arguments for an endpoint anyone may read."""
    return {"openapi_extra": {"x-roles": ["anonymous"]}}
