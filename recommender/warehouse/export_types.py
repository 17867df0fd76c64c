"""Checking an export's values against the types the loader gives them, by PostgreSQL's own casts."""

from __future__ import annotations

import io

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from recommender.warehouse import sql_files
from recommender.warehouse.export_csv import EXCERPT_CHARS, LOADER_NULLS, FileReport, SeedSpec, excerpt


def _as_loaded(value: str) -> str | None:
    return None if value.strip().lower() in LOADER_NULLS else value


def check_types(
    conn: connection,
    spec: SeedSpec,
    report: FileReport,
    columns: list[tuple[str, int]],
    lines: list[int],
    values: list[tuple[str, ...]],
) -> None:
    """Copy the typed values, as dbt seed reads them, into a temporary table of their declared types.

    If COPY refuses one, cast every value as dbt seed does to name each one refused.
    """
    table = sql.Identifier(spec.name)
    definition = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(spec.column_types[name])) for name, _ in columns
    )
    escape = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})
    nulls = LOADER_NULLS
    copied = "".join(
        "\t".join("\\N" if value.strip().lower() in nulls else value.translate(escape) for value in row) + "\n"
        for row in values
    )
    with conn.cursor() as cur:
        cur.execute(sql.SQL("create temporary table {} ({}) on commit drop").format(table, definition))
        cur.execute("savepoint typed_values")
        copy = sql.SQL("copy {} from stdin with (format text, encoding 'UTF8')").format(table)
        try:
            cur.copy_expert(copy.as_string(conn), io.BytesIO(copied.encode("utf-8")))
            return
        except psycopg2.DataError as exc:
            cur.execute("rollback to savepoint typed_values")
            failure = exc.diag.message_primary or str(exc)
        before = report.total
        for index, (name, position) in enumerate(columns):
            column = [_as_loaded(row[index]) for row in values]
            for cell, message in _refused_values(cur, spec.column_types[name], index, column):
                value = column[cell] or ""
                report.add(
                    lines[cell], position, name, lambda v=value, m=message: _cut(m.replace(f'"{v}"', excerpt(v)))
                )
        if report.total == before:  # COPY refused a value that a cast accepts: name the file at least
            report.add(0, 0, None, lambda: _cut(failure))


def _refused_values(cur: cursor, kind: str, index: int, values: list[str | None]) -> list[tuple[int, str]]:
    """(0-based position, message) of each value that the cast dbt seed applies (``cell::kind``) refuses."""
    function = sql.Identifier("pg_temp", f"netflix_export_refused_{index}")
    cur.execute(sql_files.read(__package__, "refused_values.sql", function=function.as_string(cur), kind=kind))
    cur.execute(sql.SQL("select cell, message from {}(%s::text[])").format(function), (values,))
    return cur.fetchall()


def _cut(message: str, limit: int = 3 * EXCERPT_CHARS) -> str:
    return message if len(message) <= limit else f"{message[:limit]}… ({len(message):,} characters)"
