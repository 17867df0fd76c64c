"""The SQL macros that parse the export, checked by PostgreSQL against Python on generated input."""

from __future__ import annotations

from collections.abc import Iterator

import jinja2
import psycopg2.extensions
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.warehouse.targets import PROJECT_ROOT, Target

MACROS = PROJECT_ROOT / "macros"


def _render(macro: str, argument: str) -> str:
    source = (MACROS / f"{macro}.sql").read_text()
    return jinja2.Environment().from_string(source + f"{{{{ {macro}('{argument}') }}}}").render()


@pytest.fixture(scope="module")
def cursor(server: Target) -> Iterator[psycopg2.extensions.cursor]:
    conn = server.connect()
    conn.autocommit = True  # one failed example must not abort the others' transaction
    with conn, conn.cursor() as cur:
        yield cur
    conn.close()


# Items as the export has them: printable text; Python's repr quotes with ' or, if an item holds one, with ".
items = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=12).filter(
    lambda s: s.isprintable() and not ("'" in s and '"' in s) and "\\" not in s
)


@settings(max_examples=150, deadline=None)
@given(st.lists(items, max_size=6))
def test_python_list_to_array_reads_what_python_writes(cursor, values: list[str]) -> None:
    cursor.execute(
        f"select {_render('python_list_to_array', 'value')} from (select %s::text as value) as t", (repr(values),)
    )
    assert cursor.fetchone()[0] == values


def test_python_list_to_array_keeps_null(cursor) -> None:
    cursor.execute(f"select {_render('python_list_to_array', 'value')} from (select null::text as value) as t")
    assert cursor.fetchone()[0] is None


@settings(max_examples=100, deadline=None)
@given(st.text(st.sampled_from(" \t\u00a0ab é"), max_size=8))
def test_clean_text_trims_spaces_and_blanks_to_null(cursor, value: str) -> None:
    cursor.execute(f"select {_render('clean_text', 'value')} from (select %s::text as value) as t", (value,))
    expected = value.strip(" \t\u00a0") or None
    assert cursor.fetchone()[0] == expected
