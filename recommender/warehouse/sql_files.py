"""SQL kept in ``.sql`` files beside the code that runs it (``<package>/sql/<name>``), so sqlfluff reads it too.

A file may hold Jinja placeholders for the constants it shares with Python (``{{ plans }}``);
``literal`` renders such a constant as SQL. ``.sqlfluff`` gives each placeholder a stand-in.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from importlib import resources

import jinja2


@functools.cache  # read and rendered once per process: start_run, a column's cast check run it often
def read(package: str, name: str, **constants: str) -> str:
    """The text of ``<package>/sql/<name>``, its ``{{ placeholders }}`` replaced by ``constants``."""
    text = resources.files(package).joinpath("sql").joinpath(name).read_text()
    return jinja2.Template(text, undefined=jinja2.StrictUndefined).render(constants) if constants else text


def literal(value: str | int | Iterable[str | int]) -> str:
    """``value`` as a SQL literal: a string quoted, a number as is, a sequence as a parenthesised list."""
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return "(" + ", ".join(literal(item) for item in value) + ")"
