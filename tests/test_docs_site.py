"""The data dictionary: dbt's docs site with its two pictures, built from a warehouse and served."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from recommender.refresh import pipeline
from recommender.warehouse import diagrams, docs_site

SCHEMAS = ("raw", "staging", "core", "marts", "app", "predictions", "api")


@pytest.fixture(scope="module")
def site(sample_warehouse: pipeline.Summary, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The site of the sample warehouse, built as `make docs` builds it (every schema made to exist first)."""
    from recommender import activity
    from recommender.api import keys

    with closing(sample_warehouse.target.connect()) as conn:
        activity.ensure_schema(conn)
        keys.ensure_schema(conn)
    yield docs_site.generate(sample_warehouse.target, tmp_path_factory.mktemp("docs")).parent


def test_every_model_and_column_is_described(site: Path) -> None:
    manifest = json.loads((site / "manifest.json").read_text())
    catalog = json.loads((site / "catalog.json").read_text())
    nodes = {
        uid: node
        for uid, node in manifest["nodes"].items()
        if node["resource_type"] in ("model", "seed") and node["package_name"] == "netflix_warehouse"
    }
    assert len(nodes) >= 27
    undescribed = [uid for uid, node in nodes.items() if not node["description"].strip()]
    missing_columns = [
        f"{uid}.{column}"
        for uid, node in nodes.items()
        # an ephemeral (intermediate) model is no relation, so not in the catalog: its declared columns instead
        for column in (catalog["nodes"][uid]["columns"] if uid in catalog["nodes"] else node["columns"])
        if not node["columns"].get(column, {}).get("description", "").strip()
    ]
    assert {uid for uid, node in nodes.items() if node["config"]["materialized"] == "ephemeral"} >= {
        "model.netflix_warehouse.int_title_people"
    }
    assert undescribed == []
    assert missing_columns == []


def _relations(svg: str) -> set[str]:
    return set(re.findall(r'data-relation="([^"]+)"', svg))


def test_the_erd_draws_every_contracted_core_table_and_the_python_schemas(site: Path) -> None:
    manifest = json.loads((site / "manifest.json").read_text())
    core = {
        f"core.{node['name']}"
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["config"].get("schema") == "core"
    }
    svg = (site / "docs" / "assets" / "erd.svg").read_text()
    drawn = _relations(svg)
    assert core and core <= drawn
    assert {"app.users", "app.viewing_events", "predictions.model_runs", "api.keys"} <= drawn
    # a foreign key is an arrow: credits refers to titles and people, title_genres to titles and genres, ...
    tables = diagrams.contracted_tables(manifest)
    foreign_keys = sum(1 for columns in tables.values() for *_, refers_to in columns if refers_to)
    assert foreign_keys >= 10
    assert svg.count("marker-end=") >= foreign_keys
    assert re.search(r"credit_role +text", svg) and " PK" in svg and " FK" in svg


def test_the_flow_draws_every_relation_of_every_schema(site: Path) -> None:
    drawn = _relations((site / "docs" / "assets" / "flow.svg").read_text())
    assert {name.split(".")[0] for name in drawn} == set(SCHEMAS)
    assert {"raw.raw_titles", "staging.stg_netflix__titles", "core.titles", "marts.catalogue"} <= drawn


def test_the_overview_shows_the_pictures_and_every_schema(site: Path) -> None:
    manifest = json.loads((site / "manifest.json").read_text())
    overview = manifest["docs"]["doc.netflix_warehouse.__overview__"]["block_contents"]
    assert "docs/assets/erd.svg" in overview and "docs/assets/flow.svg" in overview
    assert "mermaid" not in overview
    for schema in SCHEMAS:
        assert f"| `{schema}` |" in overview


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    with docs_site.server(site, 0) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
        httpd.shutdown()


def test_the_overview_renders_the_drawn_pictures_in_a_browser(served: str) -> None:
    from browser import render

    page = render(f"{served}/#!/overview", wait_for='img[src*="erd.svg"]')
    loaded = {url.rsplit("/", 1)[-1]: width for url, width in page.images.items()}
    assert loaded.get("erd.svg", 0) > 1000 and loaded.get("flow.svg", 0) > 1000  # drawn, not a broken image
    assert "erDiagram" not in page.text  # no raw mermaid
    for schema in SCHEMAS:
        assert schema in page.text
    assert page.blocked == []
    # dbt's own index.html asks for three URLs of unrendered templates (`{{ getIcon(...) }}`) before
    # Angular binds them: 404s of dbt's making; any other error is ours
    assert [error for error in page.errors if "status of 404" not in error] == []
