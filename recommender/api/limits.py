"""Bounds on what one request can make the API hold: who may send a body, how large, what a 422 echoes.

``RequestLimits`` (pure ASGI, around the app) looks at a request with a body before the
app reads any of it (FastAPI would read and parse the whole body before its dependencies
check the key):
- no key, or an invalid or revoked one: 401 (every route that takes a body needs a key;
  the route still checks the key's role, 403);
- a key past its rate (``recommender.api.rate_limit``): 429 with ``Retry-After``;
- a ``Content-Length`` over the limit: 413 at once; a body that grows past the limit
  while it is read (chunked, or longer than declared): 413, and reading stops.
The limit is ``max_body_bytes``, or ``max_upload_bytes`` for paths of ``UPLOAD_PATHS``.
The caller found is kept in ``scope["state"]["caller"]``, where ``auth.caller`` takes it.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fastapi import HTTPException, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from recommender.api.auth import identify, unauthorized

UPLOAD_PATHS = re.compile(r"^/runs/[^/]+/recommendations$")  # bulk uploads: NETFLIX_API_MAX_UPLOAD_BYTES
BODILESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
EXCERPT_CHARS = 200  # of an input a 422 echoes
MAX_ERRORS = 50  # entries of a 422; one more says how many were left out


def _declared_length(headers: Headers) -> int | None:
    try:
        return int(headers["content-length"])
    except (KeyError, ValueError):
        return None


def _has_body(method: str, headers: Headers) -> bool:
    return method not in BODILESS_METHODS or "transfer-encoding" in headers or (_declared_length(headers) or 0) > 0


def _too_large(limit: int, variable: str) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"the request body is larger than the limit of {limit:,} bytes ({variable}): send less in each request",
    )


async def _answered(exc: Exception, scope: Scope, receive: Receive, send: Send) -> bool:
    """Answer ``exc`` as the app's own exception handlers do (FastAPI's for HTTPException; a database
    that does not answer: 503); False if none handles it."""
    handlers = scope["app"].exception_handlers
    handler = next((handlers[kind] for kind in type(exc).__mro__ if kind in handlers), None)
    if handler is None:
        return False
    response = handler(Request(scope, receive), exc)
    if inspect.isawaitable(response):
        response = await response
    await response(scope, receive, send)
    return True


def _bounded(receive: Receive, limit: int, variable: str) -> Receive:
    """``receive`` that counts the body's bytes and raises 413 once they pass ``limit`` (FastAPI answers it)."""
    received = 0

    async def bounded() -> Message:
        nonlocal received
        if received > limit:  # never read on after the limit
            raise _too_large(limit, variable)
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _too_large(limit, variable)
        return message

    return bounded


class RequestLimits:
    """The key, its rate and the body's size of a request with a body, checked before the body is read."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope) if scope["type"] == "http" else None
        if headers is None or not _has_body(scope["method"], headers):
            await self.app(scope, receive, send)
            return
        if UPLOAD_PATHS.match(scope["path"]):
            limit, variable = self.max_upload_bytes, "NETFLIX_API_MAX_UPLOAD_BYTES"
        else:
            limit, variable = self.max_body_bytes, "NETFLIX_API_MAX_BODY_BYTES"
        try:
            key = headers.get("x-api-key")
            if not key:
                raise unauthorized("a request with a body, or of a method but GET, needs an API key (header X-API-Key)")
            state = scope["app"].state
            scope.setdefault("state", {})["caller"] = await identify(state.database.reader, key, state.rate_limiter)
            declared = _declared_length(headers)
            if declared is not None and declared > limit:
                raise _too_large(limit, variable)
        except Exception as exc:
            if not await _answered(exc, scope, receive, send):
                raise
            return
        await self.app(scope, _bounded(receive, limit, variable), send)


# --- what a 422 echoes ---------------------------------------------------------------------------


def _json_pieces(value: Any) -> Iterator[str]:
    """The JSON text of ``value`` piece by piece, long strings cut: its start without encoding all of it."""
    if isinstance(value, Mapping):
        yield "{"
        for n, (key, item) in enumerate(value.items()):
            yield f"{', ' if n else ''}{json.dumps(str(key)[: EXCERPT_CHARS + 1])}: "
            yield from _json_pieces(item)
        yield "}"
    elif isinstance(value, list | tuple):
        yield "["
        for n, item in enumerate(value):
            if n:
                yield ", "
            yield from _json_pieces(item)
        yield "]"
    elif isinstance(value, str):
        yield json.dumps(value[: EXCERPT_CHARS + 1])
    else:
        yield json.dumps(jsonable_encoder(value), default=str)


def excerpt(value: Any) -> Any:
    """``value`` as an error may echo it: itself if its JSON text is short, else the start of that text and "…"."""
    if isinstance(value, str):
        return value if len(value) <= EXCERPT_CHARS else value[:EXCERPT_CHARS] + "…"
    text = ""
    for piece in _json_pieces(value):
        text += piece
        if len(text) > EXCERPT_CHARS:
            return text[:EXCERPT_CHARS] + "…"
    return jsonable_encoder(value)


def _short(error: Mapping[str, Any]) -> dict[str, Any]:
    # a loc may hold a key of the input (an unknown field), as long as the client made it
    short = {**error, "loc": [excerpt(part) for part in error.get("loc", ())], "input": excerpt(error.get("input"))}
    if "ctx" in error:
        short["ctx"] = {str(name): excerpt(value) for name, value in error["ctx"].items()}
    return short


def short_errors(errors: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A 422's ``detail`` (FastAPI's shape: loc, msg, type, input) with excerpts of the input, at most
    ``MAX_ERRORS`` entries and then one that says how many more there were."""
    shown = [_short(error) for error in errors[:MAX_ERRORS]]
    if len(errors) > MAX_ERRORS:
        left = len(errors) - MAX_ERRORS
        shown.append({"loc": [], "msg": f"and {left:,} more errors", "type": "too_many_errors", "input": None})
    return shown


async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, echoing excerpts (it echoed a 10 MB body with one bad field in a 9.5 MB answer)."""
    return JSONResponse({"detail": short_errors(exc.errors())}, status.HTTP_422_UNPROCESSABLE_CONTENT)
