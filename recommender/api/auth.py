"""Who is calling: the ``X-API-Key`` header, checked against ``api.keys``; what each endpoint needs.

Every route declares its roles with ``needs(...)`` (or ``public()``): the dependency that
enforces them, and an ``x-roles`` entry in the OpenAPI document that lists them. ``admin``
may do everything. No key where one is needed: 401; a key of another role: 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import APIKeyHeader

from recommender.api import keys
from recommender.api.database import Reader

api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="`python -m recommender keys create --role ROLE --name NAME`"
)
UNAUTHORIZED = {"description": "no valid API key (header X-API-Key)"}
FORBIDDEN = {"description": "the key's role may not use this endpoint"}


@dataclass(frozen=True)
class Caller:
    key_id: str
    role: str


async def caller(request: Request, db: Reader, key: Annotated[str | None, Security(api_key_header)]) -> Caller | None:
    """The caller of a valid, unrevoked key; None without a key; 401 for any other key.

    The lookup uses the request's own read connection (one pool checkout per request), and
    is never cached: a revoked key stops working at once.
    """
    if key is None:
        return None
    key_id = keys.parse_key_id(key)
    row = None
    if key_id is not None:
        row = await db.fetchrow("select role, key_hash from api.keys where key_id = $1 and revoked_at is null", key_id)
    if row is None or not keys.matches(key, row["key_hash"]):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid or revoked API key", headers={"WWW-Authenticate": "APIKey"}
        )
    request.state.caller = found = Caller(key_id, row["role"])
    return found


@cache
def require(*roles: str) -> Any:
    """A dependency that returns the caller if their role is one of ``roles`` (or admin)."""

    async def check(found: Annotated[Caller | None, Depends(caller)]) -> Caller:
        if found is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                f"this endpoint needs an API key of role {' or '.join(roles)} (header X-API-Key)",
                headers={"WWW-Authenticate": "APIKey"},
            )
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
        "responses": {**(responses or {}), 401: UNAUTHORIZED, 403: FORBIDDEN},
    }


def public() -> dict[str, Any]:
    """Route arguments for an endpoint anyone may read."""
    return {"openapi_extra": {"x-roles": ["anonymous"]}}
