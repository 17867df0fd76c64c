"""What every command needs: the warehouse the environment selects, the API client of ``--api``, bounded numbers,
the ``--lake`` option of the writers."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from recommender.api.client import ApiClient
from recommender.spark.lake import LAKE_DIR
from recommender.warehouse.targets import (
    PROJECT_ROOT,
    Target,
    embedded_server,
    ensure_database,
    start_embedded,
    target_from_env,
)


def warehouse() -> Target:
    """The target the environment selects, its database created if missing (and the embedded server started)."""
    target = target_from_env()
    if target.embedded:
        start_embedded(embedded_server())
    ensure_database(target)
    return target


def api_client(args: argparse.Namespace) -> ApiClient | None:
    """The API's client of ``--api URL`` (key in NETFLIX_API_KEY), None without ``--api``; LookupError without a key."""
    return ApiClient.from_env(args.api) if args.api else None


def add_lake_option(parser: argparse.ArgumentParser, what: str) -> None:
    """``--lake [DIR]``: write ``what`` into the activity lake (default ``LAKE_DIR``) rather than PostgreSQL."""
    parser.add_argument(
        "--lake",
        type=Path,
        nargs="?",
        const=LAKE_DIR,
        metavar="DIR",
        help=f"write {what} into the activity lake DIR (Parquet), not PostgreSQL: the spark path at scale"
        f" (default: off; a bare --lake: {LAKE_DIR.relative_to(PROJECT_ROOT)})",
    )


def bounded(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` in [low, high], checked before any work is done."""

    def parse(text: str) -> float:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, not {text}")
        return value

    return parse
