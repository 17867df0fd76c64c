"""The package's shape holds: layers import only downwards, modules stay small, SQL stays in .sql files."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from recommender.warehouse.targets import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "recommender"
# each subpackage may import the ones of a lower rank, never one of a higher (api and cli are both on top)
RANKS = {
    "errors": 0,
    "warehouse": 1,
    "activity": 2,
    "spark": 2,
    "ml": 3,
    "refresh": 4,
    "experiments": 4,
    "api": 5,
    "cli": 6,
}
MAX_LINES = 400
# a definition of the schema; statements on objects named at run time (a person's login, a run's partition, a
# generation's schemas) are composed with psycopg2.sql, which quotes the names, and are not definitions
DEFINITION = re.compile(r"\bcreate\s+(or\s+replace\s+)?(unlogged\s+)?(table|schema|index|view|function|type)\b", re.I)


def _modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if path.parent != PACKAGE or path.stem == "errors")


def _layer(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imported_layers(path: Path) -> set[str]:
    layers = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "recommender" and len(parts) > 1 and parts[1] in RANKS:
                layers.add(parts[1])
    return layers


@pytest.mark.parametrize("path", _modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_imports_point_down_the_layers(path: Path) -> None:
    layer = _layer(path)
    upward = {other for other in _imported_layers(path) if RANKS[other] > RANKS[layer]}
    assert not (upward - ({"api"} if layer == "cli" else set())), f"{layer} imports {upward}"


def test_every_module_is_in_a_layer_and_small() -> None:
    packages = [path for path in PACKAGE.rglob("*") if path.is_dir() and path.name not in ("__pycache__", "sql")]
    assert all((package / "__init__.py").is_file() for package in packages)  # no namespace package by accident
    top_level = {path.name for path in PACKAGE.glob("*.py")}
    assert top_level == {"__init__.py", "__main__.py", "errors.py"}
    assert {path.name for path in PACKAGE.iterdir() if path.is_dir() and path.name != "__pycache__"} == set(RANKS) - {
        "errors"
    }
    too_long = {
        str(path.relative_to(PACKAGE)): n
        for path in _modules()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not too_long


def _strings(tree: ast.Module) -> list[ast.Constant]:
    """The string literals of a module, its docstrings left out."""
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
    }
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_no_schema_definition_in_python_strings() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{node.lineno}"
        for path in _modules()
        for node in _strings(ast.parse(path.read_text()))
        if DEFINITION.search(node.value)
    ]
    assert not found


def test_the_old_module_names_still_import() -> None:
    from recommender.models import build_model as old_build_model

    from recommender.ml.algorithms import build_model

    assert old_build_model is build_model
    sys.modules.pop("recommender.simulate", None)  # imported before: the warning comes on the first import
    with pytest.warns(DeprecationWarning, match="recommender.activity.simulate"):
        from recommender.simulate import SimulationConfig  # noqa: F401


def test_an_old_module_still_runs_as_a_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "recommender.watchdog", "--help"], capture_output=True, text=True, cwd=PROJECT_ROOT
    )
    assert result.returncode == 0, result.stderr
    assert "--memory-limit" in result.stdout
