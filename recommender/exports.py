"""The catalogue export: find its six files, check them, hand them to ``dbt seed``.

A folder may hold the files under their original Kaggle names
(``Best Movies Netflix.csv``) or under their seed names (``raw_best_movies.csv``).
Before anything is loaded, every file is copied into a temporary table of its
declared column types inside a transaction that is rolled back: PostgreSQL's
COPY parser then reports the exact line and column of a bad value, a truncated
row or an unbalanced quote, and the warehouse is not touched.
"""

from __future__ import annotations

import codecs
import csv
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import psycopg2
import yaml
from psycopg2 import sql
from psycopg2.extensions import connection

from recommender.warehouse import PROJECT_ROOT

SEEDS_YAML = PROJECT_ROOT / "models" / "staging" / "netflix" / "_netflix__seeds.yml"
SAMPLE_DIR = PROJECT_ROOT / "seeds" / "netflix"
PREPARED_DIR = PROJECT_ROOT / "target" / "raw_export"
ORIGINAL_NAMES = {
    "raw_titles": "raw_titles.csv",
    "raw_credits": "raw_credits.csv",
    "raw_best_movies": "Best Movies Netflix.csv",
    "raw_best_shows": "Best Shows Netflix.csv",
    "raw_best_movie_by_year": "Best Movie by Year Netflix.csv",
    "raw_best_show_by_year": "Best Show by Year Netflix.csv",
}


class ExportError(ValueError):
    """The export cannot be loaded; the message names each file and what to fix."""


@dataclass(frozen=True)
class SeedSpec:
    """A raw table as declared to dbt: its column types and which columns may be absent."""

    name: str
    column_types: dict[str, str]
    optional_columns: tuple[str, ...]


def seed_specs(path: Path = SEEDS_YAML) -> dict[str, SeedSpec]:
    seeds = yaml.safe_load(path.read_text(encoding="utf-8"))["seeds"]
    return {
        seed["name"]: SeedSpec(
            name=seed["name"],
            column_types=seed["config"]["column_types"],
            optional_columns=tuple(seed["config"].get("meta", {}).get("optional_columns", ())),
        )
        for seed in seeds
    }


def locate(folder: Path) -> dict[str, Path]:
    """Map each raw table to its file in ``folder``; original names win over seed names."""
    if not folder.is_dir():
        raise ExportError(f"{folder}: not a folder")
    found: dict[str, Path] = {}
    missing: list[str] = []
    for seed, original in ORIGINAL_NAMES.items():
        candidates = [folder / original, folder / f"{seed}.csv"]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            missing.append(f"{original!r} (or {seed}.csv)")
        else:
            found[seed] = path
    if missing:
        raise ExportError(f"{folder}: missing export files: {', '.join(missing)}")
    return found


def _open_without_bom(path: Path) -> BinaryIO:
    fh = path.open("rb")
    if fh.read(len(codecs.BOM_UTF8)) != codecs.BOM_UTF8:
        fh.seek(0)
    return fh


def _header(path: Path) -> list[str]:
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            return next(csv.reader(fh), [])
    except UnicodeDecodeError as exc:
        raise ExportError(f"{path.name}: line 1 is not UTF-8 ({exc.reason})") from exc


def check_file(conn: connection, spec: SeedSpec, path: Path) -> int:
    """COPY ``path`` into a temporary table typed as ``spec`` declares; return its data rows.

    Raises ExportError naming the file, the table, the line and the column of the first problem.
    The caller rolls the transaction back.
    """
    header = _header(path)
    missing = [c for c in spec.column_types if c not in header and c not in spec.optional_columns]
    unexpected = [c for c in header if c not in spec.column_types]
    if missing or unexpected:
        raise ExportError(
            f"{path.name} ({spec.name}): header does not match: "
            f"missing columns {missing or 'none'}, unexpected columns {unexpected or 'none'}"
        )
    table = sql.Identifier(spec.name)
    columns = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(spec.column_types[name])) for name in header
    )
    with conn.cursor() as cur, _open_without_bom(path) as data:
        cur.execute(sql.SQL("create temporary table {} ({}) on commit drop").format(table, columns))
        copy = sql.SQL("copy {} from stdin with (format csv, header true, encoding 'UTF8')").format(table)
        try:
            cur.copy_expert(copy.as_string(conn), data)
        except psycopg2.DataError as exc:
            where = exc.diag.context or ""
            raise ExportError(f"{path.name} ({spec.name}): {exc.diag.message_primary} [{where.strip()}]") from exc
        return cur.rowcount


def check(conn: connection, files: dict[str, Path]) -> dict[str, int]:
    """Check every file of the export; raise one ExportError listing every bad file.

    Nothing is written: the temporary tables live in a transaction that is rolled back.
    """
    specs = seed_specs()
    counts: dict[str, int] = {}
    problems: list[str] = []
    for seed, path in files.items():
        try:
            counts[seed] = check_file(conn, specs[seed], path)
        except ExportError as exc:
            problems.append(str(exc))
        finally:
            conn.rollback()
    if problems:
        raise ExportError("the export cannot be loaded; nothing was changed:\n  " + "\n  ".join(problems))
    return counts


def prepare(files: dict[str, Path], dest: Path = PREPARED_DIR) -> Path:
    """Copy a checked export under its seed names into ``dest``, the folder ``dbt seed`` will read."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    for seed, path in files.items():
        shutil.copyfile(path, dest / f"{seed}.csv")
    return dest
