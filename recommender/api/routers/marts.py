"""Whole model-facing tables as Apache Parquet, for the data scientists' pipelines (``recommender.api.client``).

``GET /marts/{name}`` sends every row of one table of ``MARTS`` (the marts the models read,
and the users and genres training needs), with the database's types: integers of their
width, numerics as float64, text, text[] and bigint[] as lists, dates, timestamps in UTC,
json as its text (the field's metadata says ``pg_type: jsonb``). Rows come in the table's
own order, as ``recommender.warehouse.read_table`` reads them; ``columns`` picks some.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import asyncpg
import pyarrow as pa
import pyarrow.parquet as pq
from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from recommender.api.auth import needs
from recommender.api.database import Reader

router = APIRouter(prefix="/marts", tags=["marts"])

PARQUET = "application/vnd.apache.parquet"
# what a client may ask for by name (or by the table's own schema.table name)
MARTS = {
    "ml_interactions": "marts.ml_interactions",
    "ml_title_features": "marts.ml_title_features",
    "catalogue": "marts.catalogue",
    "users": "core.users",
    "genres": "core.genres",
}
CHUNK_ROWS = 50_000  # rows fetched, converted and written to the Parquet file at a time
# PostgreSQL type names (as asyncpg names them) to Arrow types; anything else travels as text
ARROW_TYPES: dict[str, pa.DataType] = {
    "int2": pa.int16(),
    "int4": pa.int32(),
    "int8": pa.int64(),
    "float4": pa.float32(),
    "float8": pa.float64(),
    "numeric": pa.float64(),  # the reader pool decodes numeric as float, as read_table does
    "bool": pa.bool_(),
    "date": pa.date32(),
    "timestamptz": pa.timestamp("us", tz="UTC"),
    "timestamp": pa.timestamp("us"),
}
JSON_TYPES = ("json", "jsonb")


def _field(attribute: asyncpg.Attribute) -> pa.Field:
    """The Arrow field of a result column; ``pg_type`` in its metadata names the database type."""
    name, kind = attribute.type.name, attribute.type.kind
    if kind == "array":
        element = ARROW_TYPES.get(name.removesuffix("[]").lstrip("_"), pa.string())
        arrow: pa.DataType = pa.list_(element)
    else:
        arrow = ARROW_TYPES.get(name, pa.string())
    return pa.field(attribute.name, arrow, metadata={"pg_type": name})


def _converter(field: pa.Field) -> Callable[[Any], Any]:
    """A value as asyncpg decodes it, as Arrow takes it for ``field`` (json back to text, others as they are)."""
    pg_type = field.metadata[b"pg_type"].decode()
    if pg_type in JSON_TYPES:
        return lambda value: None if value is None else json.dumps(value)
    if field.type == pa.string() and pg_type not in ("text", "varchar", "bpchar", "name"):
        return lambda value: None if value is None else str(value)
    return lambda value: value


def _write_rows(writer: pq.ParquetWriter, rows: list[asyncpg.Record]) -> None:
    """Append ``rows`` to the file as one row group (CPU work: run it off the event loop)."""
    arrays = []
    for position, field in enumerate(writer.schema):
        convert = _converter(field)
        arrays.append(pa.array([convert(row[position]) for row in rows], type=field.type))
    writer.write_batch(pa.RecordBatch.from_arrays(arrays, schema=writer.schema))


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _relation(name: str) -> str:
    relation = MARTS.get(name) or (name if name in MARTS.values() else None)
    if relation is None:
        choices = ", ".join(f"{short} ({table})" for short, table in MARTS.items())
        raise HTTPException(404, f"no mart {name!r}; the marts served are: {choices}")
    return relation


def _picked(relation: str, available: Sequence[str], columns: list[str] | None) -> list[str]:
    """The columns asked for (each query value may list several, comma separated), all when none; 422 otherwise."""
    picked = [c.strip() for value in columns or () for c in value.split(",") if c.strip()]
    problems = [
        {
            "loc": ["query", "columns"],
            "msg": f"{relation} has no column {column!r}; it has: {', '.join(available)}",
            "type": "value_error",
            "input": column,
        }
        for column in picked
        if column not in available
    ]
    problems += [
        {"loc": ["query", "columns"], "msg": f"column {column!r} is asked for twice", "type": "value_error"}
        for position, column in enumerate(picked)
        if column in picked[:position] and column in available
    ]
    if problems:
        raise HTTPException(422, problems)
    return picked or list(available)


@router.get(
    "/{name}",
    response_class=Response,
    summary="A whole model-facing table as Apache Parquet",
    **needs(
        "data_scientist",
        responses={
            200: {
                "content": {PARQUET: {"schema": {"type": "string", "format": "binary"}}},
                "description": "the table's rows as one Parquet file",
            },
            404: {"description": "no such mart; the message lists those served"},
        },
    ),
)
async def get_mart(
    db: Reader,
    name: Annotated[str, Path(description=f"one of {', '.join(MARTS)} (or its schema.table name)")],
    columns: Annotated[
        list[str] | None,
        Query(
            description="columns to send, in this order (repeat the parameter, or separate with commas); all if none"
        ),
    ] = None,
) -> Response:
    relation = _relation(name)
    schema_name, table_name = relation.split(".")
    source = f"{_quoted(schema_name)}.{_quoted(table_name)}"
    buffer = io.BytesIO()
    async with db.transaction(readonly=True):  # a cursor needs one; its rows are of one snapshot
        everything = await db.prepare(f"select * from {source}")
        available = [attribute.name for attribute in everything.get_attributes()]
        picked = _picked(relation, available, columns)
        statement = await db.prepare(f"select {', '.join(map(_quoted, picked))} from {source}")
        schema = pa.schema([_field(attribute) for attribute in statement.get_attributes()])
        with pq.ParquetWriter(buffer, schema) as writer:
            cursor = await statement.cursor()
            while rows := await cursor.fetch(CHUNK_ROWS):
                await run_in_threadpool(_write_rows, writer, rows)
    return Response(
        buffer.getvalue(),
        media_type=PARQUET,
        headers={"Content-Disposition": f'attachment; filename="{table_name}.parquet"'},
    )
