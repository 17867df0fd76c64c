"""The API's documentation pages, ``/docs`` (Swagger UI) and ``/redoc``, complete offline.

FastAPI's own pages load their scripts from a CDN (and ReDoc Google's fonts): without
the internet they are blank. These load the copies packaged with ``fastapi-offline``,
served under ``ASSETS_URL``, and no web fonts. Like ``/openapi.json`` they need no key.
Each operation's description also says who may call it, from the ``x-roles`` that
``auth.needs`` (or ``auth.public``) gives the route with the dependency that checks them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/static/docs"
# the pages may load only from this server: ReDoc's sidebar shows Redocly's logo from their CDN, unasked,
# which the browser then never requests (ReDoc hides an image that fails); inline code is the pages' own setup
ONLY_THIS_SERVER = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline';"
    " img-src 'self' data:; worker-src 'self' blob:"
)


def who_may_call(roles: list[str]) -> str:
    """The sentence a description starts with, for an operation open to ``roles`` (its ``x-roles``)."""
    if roles == ["anonymous"]:
        return "**Roles:** anyone; no key needed."
    return f"**Roles:** {', '.join(f'`{role}`' for role in roles)}: a key of one of them in the header `X-API-Key`."


def describe_roles(app: FastAPI) -> None:
    """Start each operation's description in ``app``'s OpenAPI document with who may call it."""
    generate = app.openapi
    described: dict[str, Any] | None = None

    def openapi() -> dict[str, Any]:
        nonlocal described
        document = generate()  # FastAPI's, made anew when routes were added since
        if document is not described:
            for operations in document["paths"].values():
                for operation in operations.values():
                    text = f"{who_may_call(operation['x-roles'])}\n\n{operation.get('description', '')}"
                    operation["description"] = text.strip()
            described = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def add_pages(app: FastAPI) -> None:
    """``/docs`` and ``/redoc`` on ``app`` (made with ``docs_url=None, redoc_url=None``), and their assets."""
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="docs assets")

    def _root(request: Request) -> str:
        # behind a proxy that serves the API under a prefix, as FastAPI's own pages do
        return request.scope.get("root_path", "").rstrip("/")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request)
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
        )
        page.headers["Content-Security-Policy"] = ONLY_THIS_SERVER
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = _root(request)
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = ONLY_THIS_SERVER
        return page
