"""The data dictionary's two pictures, drawn at ``make docs`` from what defines the tables.

- ``erd.svg``: the entities. core's tables from their dbt contracts (columns, types,
  primary keys, foreign keys and relationships tests, as dbt parsed them into
  ``manifest.json``); app, predictions and api from the database, whose DDL
  (``recommender/**/sql/*.sql``) is those schemas' contract.
- ``flow.svg``: every relation of every schema and what it is built from, export to
  recommendations, from the manifest's lineage.

Both are regenerated with the site, so they cannot drift from the models.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from contextlib import closing
from pathlib import Path
from typing import Any

from recommender.warehouse import sql_files
from recommender.warehouse.svg import Box, Edge, render
from recommender.warehouse.targets import Target

PYTHON_SCHEMAS = ("app", "predictions", "api")
FLOW_LANES = (("raw", "app", "predictions", "api"), ("staging",), ("core",), ("marts",))
MAX_STACK_ROWS = 40  # a stack taller than this many rows is split into two side by side

SCHEMAS = {
    "raw": "the export as delivered (dbt seeds)",
    "staging": "typed, renamed views",
    "core": "the 3NF model, contracts",
    "marts": "for analysts and models",
    "app": "users' activity (Python, API)",
    "predictions": "recommendation runs",
    "api": "API keys and replays",
}

Columns = list[tuple[str, str, bool, str | None]]  # name, type, primary key, refers to (schema.table)


def _relation_of(reference: str | None) -> str | None:
    """``ref('titles')`` → ``titles``: the model a constraint or a relationships test points at."""
    match = re.search(r"ref\(\s*['\"]([^'\"]+)['\"]\s*\)", reference or "")
    return match.group(1) if match else None


def _schema(node: dict[str, Any]) -> str:
    # the configured schema, not the built one: a refresh builds core under core__next
    return node["config"].get("schema") or node["schema"]


def contracted_tables(manifest: dict[str, Any], schema: str = "core") -> dict[str, Columns]:
    """``schema.table`` → columns, for the contracted models of ``schema``, keys marked."""
    nodes = manifest["nodes"].values()
    models = {
        node["unique_id"]: node
        for node in nodes
        if node["resource_type"] == "model" and _schema(node) == schema and node["config"]["contract"]["enforced"]
    }
    primary: dict[str, set[str]] = defaultdict(set)
    refers: dict[tuple[str, str], str] = {}
    for uid, node in models.items():
        constraints = [*node["constraints"]]
        for name, column in node["columns"].items():
            constraints += [{**c, "columns": [name]} for c in column["constraints"]]
        for constraint in constraints:
            if constraint["type"] == "primary_key":
                primary[uid].update(constraint["columns"])
            target = _relation_of(constraint.get("to")) if constraint["type"] == "foreign_key" else None
            if target:
                refers |= {(uid, column): target for column in constraint["columns"]}
    for test in nodes:
        metadata = test.get("test_metadata") or {}
        if metadata.get("name") == "relationships" and test.get("attached_node") in models:
            target = _relation_of(metadata["kwargs"].get("to"))
            if target:
                refers.setdefault((test["attached_node"], test["column_name"]), target)
    return {
        f"{schema}.{node['name']}": [
            (
                name,
                column["data_type"] or "",
                name in primary[uid],
                f"{schema}.{refers[uid, name]}" if (uid, name) in refers else None,
            )
            for name, column in node["columns"].items()
        ]
        for uid, node in models.items()
    }


def database_tables(target: Target, schemas: tuple[str, ...] = PYTHON_SCHEMAS) -> dict[str, Columns]:
    """``schema.table`` → columns of the relations Python creates, keys marked, read from the database."""
    tables: dict[str, Columns] = defaultdict(list)
    with closing(target.connect()) as connection, connection.cursor() as cursor:
        cursor.execute(sql_files.read("recommender.warehouse", "relations.sql", schemas=sql_files.literal(schemas)))
        for schema, table, column, data_type, is_primary, refers_to in cursor.fetchall():
            tables[f"{schema}.{table}"].append((column, data_type, is_primary, refers_to))
    return dict(tables)


def _stacks(boxes: list[Box]) -> list[list[Box]]:
    """Boxes split into as few side-by-side stacks as keep each under MAX_STACK_ROWS rows."""
    rows = sum(len(box.rows) + 2 for box in boxes)
    count = max(1, math.ceil(rows / MAX_STACK_ROWS))
    share = rows / count
    stacks: list[list[Box]] = [[]]
    filled = 0
    for box in boxes:
        if stacks[-1] and filled >= share * len(stacks) and len(stacks) < count:
            stacks.append([])
        stacks[-1].append(box)
        filled += len(box.rows) + 2
    return stacks


def _neighbours_first(tables: dict[str, Columns]) -> list[str]:
    """Tables in an order that keeps a table near those it refers to: breadth first from the
    most referred-to table, so the arrows stay short."""
    links: dict[str, set[str]] = defaultdict(set)
    for name, columns in tables.items():
        for *_, refers_to in columns:
            if refers_to in tables and refers_to != name:
                links[name].add(refers_to)
                links[refers_to].add(name)
    order: list[str] = []
    for start in sorted(tables, key=lambda name: (-len(links[name]), name)):
        queue = [start]
        while queue:
            name = queue.pop(0)
            if name not in order:
                order.append(name)
                queue += sorted(links[name] - set(order))
    return order


def erd(tables: dict[str, Columns]) -> str:
    """The entity diagram: one lane per schema (app, core, predictions and api), a box per
    table with its columns, types and keys, an arrow per foreign key."""
    boxes: dict[str, Box] = {}
    for name in _neighbours_first(tables):
        columns = tables[name]
        width = max(len(column) for column, *_ in columns)
        rows = [
            f"{column:<{width}}  {data_type:<12} {'PK' if primary else '  '}{' FK' if refers_to else ''}".rstrip()
            for column, data_type, primary, refers_to in columns
        ]
        boxes[name] = Box(name, name.split(".")[0], name, rows)
    lanes = [
        _stacks([box for box in boxes.values() if box.schema in schemas])
        for schemas in (("app",), ("core",), ("predictions", "api"))
    ]
    edges = [
        Edge(name, refers_to, index, None)
        for name, columns in tables.items()
        for index, (*_, refers_to) in enumerate(columns)
        if refers_to
    ]
    legend = {schema: SCHEMAS[schema] for schema in ("app", "core", "predictions", "api")}
    return render("Entities: keys and foreign keys (generated from the contracts)", lanes, edges, legend)


def flow(manifest: dict[str, Any], python_tables: dict[str, Columns]) -> str:
    """Every relation of every schema, in lanes from the export to the marts, an arrow from
    each relation to those built from it (ephemeral steps are looked through)."""
    nodes = {**manifest["nodes"], **manifest["sources"]}
    shown = {
        uid: f"{_schema(node)}.{node.get('alias') or node['name']}"
        for uid, node in nodes.items()
        if node["resource_type"] in ("seed", "model", "source") and node["config"].get("materialized") != "ephemeral"
    }

    def inputs(uid: str) -> set[str]:
        found: set[str] = set()
        for parent in nodes[uid].get("depends_on", {}).get("nodes", []):
            found |= {parent} if parent in shown else inputs(parent) if parent in nodes else set()
        return found

    names = set(shown.values()) | set(python_tables)
    # one column of boxes per lane, schema by schema, so no arrow crosses a box of its own lane
    lanes = [
        _stacks([Box(name, schema, name) for schema in lane for name in sorted(names) if name.split(".")[0] == schema])
        for lane in FLOW_LANES
    ]
    edges = sorted({Edge(shown[parent], shown[uid]) for uid in shown for parent in inputs(uid)}, key=repr)
    return render("Flow: from the export and users' activity to the marts", lanes, edges, SCHEMAS)


def write(manifest: dict[str, Any], target: Target, folder: Path) -> list[Path]:
    """Draw both pictures into ``folder`` (dbt's ``asset-paths``); returns the files written."""
    python_tables = database_tables(target)
    folder.mkdir(parents=True, exist_ok=True)
    pictures = {
        "erd.svg": erd({**contracted_tables(manifest), **python_tables}),
        "flow.svg": flow(manifest, python_tables),
    }
    for name, svg in pictures.items():
        (folder / name).write_text(svg)
    return [folder / name for name in pictures]
