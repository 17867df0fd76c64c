"""The API's documentation: the OpenAPI document says who may call each operation, with schemas and
examples; ``/docs`` and ``/redoc`` render it in a real browser (``browser.render``) with no internet."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import pytest
from browser import render
from conftest import Api, serving

from recommender.api import schemas
from recommender.api.examples import example

FASTAPI_OWN = {"HTTPValidationError", "ValidationError"}  # FastAPI's 422, not ours to exemplify
# ReDoc's sidebar shows Redocly's logo from their CDN whatever its options: the page's policy refuses it
REDOCLY_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def _resolved(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """``schema``, or the component it refers to (through an array's items)."""
    reference = schema.get("$ref") or schema.get("items", {}).get("$ref")
    return document["components"]["schemas"][reference.rsplit("/", 1)[1]] if reference else schema


def _operations(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{m.upper()} {p}": op for p, ops in document["paths"].items() for m, op in ops.items()}


def test_every_operation_names_its_roles_schemas_and_an_example(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    for name, operation in _operations(document).items():
        roles = operation["x-roles"]  # what auth.needs declared with the dependency that checks them
        first_line = operation["description"].split("\n", 1)[0]
        named = ["anyone"] if roles == ["anonymous"] else [f"`{role}`" for role in roles]
        assert first_line.startswith("**Roles:**") and all(role in first_line for role in named), name
        success = next(code for code in ("200", "201", "204") if code in operation["responses"])
        if success != "204":
            for media_type, content in operation["responses"][success]["content"].items():
                assert content.get("schema"), f"{name} answers {media_type} without a schema"
        for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
            if content["schema"].get("format") == "binary":
                continue  # Parquet: bytes, no example to show
            shown = content.get("example") or _resolved(document, content["schema"]).get("examples")
            assert shown, f"{name}'s {media_type} body has no example"
    for name, schema in document["components"]["schemas"].items():
        if "properties" in schema and name not in FASTAPI_OWN:
            assert schema.get("examples"), f"schema {name} has no example"


def test_every_schema_accepts_its_own_example() -> None:
    models = [
        model
        for model in vars(schemas).values()
        if inspect.isclass(model) and issubclass(model, schemas.Schema) and model not in (schemas.Schema, schemas.Page)
    ]
    models += [schemas.Page[schemas.ModelRun], schemas.Page[schemas.Event]]
    assert len(models) > 30
    for model in models:
        shown = example(model)
        assert shown is not None, f"{model.__name__} has no example"
        model.model_validate(shown)


def test_the_docs_pages_need_no_key_and_name_only_this_server(api: Api) -> None:
    for page in ("/docs", "/redoc"):
        response = api.client.get(page)
        assert response.status_code == 200 and "default-src 'self'" in response.headers["Content-Security-Policy"]
        assert "https://" not in response.text, f"{page} names another host"
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"):
        response = api.client.get(f"/static/docs/{asset}")
        assert response.status_code == 200 and len(response.content) > 1000, asset
    assert api.client.get("/docs/oauth2-redirect").status_code == 404  # no OAuth2 here: no redirect page


# --- in a real browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(api: Api) -> Iterator[str]:
    with serving(api.target) as url:
        yield url


@pytest.fixture(scope="module")
def operations(api: Api) -> dict[str, dict[str, Any]]:
    return _operations(api.client.get("/openapi.json").json())


def test_swagger_ui_renders_every_operation_offline(served: str, operations: dict[str, dict[str, Any]]) -> None:
    page = render(f"{served}/docs", wait_for=".opblock", count=[".opblock"])
    assert page.blocked == [] and page.errors == []  # e.g. "SwaggerUIBundle is not defined", had a script not loaded
    assert all(url.startswith(served) for url in page.requested)
    assert page.counts[".opblock"] == len(operations) == 31
    text = page.text.replace("\u200b", "")  # Swagger UI breaks paths after each slash with zero-width spaces
    for name, operation in operations.items():
        assert name.replace(" ", "\n") in text and operation["summary"] in text, name


def test_redoc_renders_every_operation_with_its_roles_offline(
    served: str, operations: dict[str, dict[str, Any]]
) -> None:
    page = render(f"{served}/redoc", wait_for="[data-section-id]")
    assert page.blocked == [] and all(url.startswith(served) for url in page.requested)
    assert all(REDOCLY_LOGO in error for error in page.errors), page.errors  # refused before any request
    assert page.text.count("Roles:") == len(operations)
    for name, operation in operations.items():
        assert operation["summary"] in page.text, name


def test_the_favicon_loads_as_an_image(served: str) -> None:
    page = render(f"{served}/static/docs/favicon.png")
    assert list(page.images.values()) == [144]
