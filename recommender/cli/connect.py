"""What every command needs: the warehouse the environment selects, the API client of ``--api``, bounded numbers."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from recommender.api.client import ApiClient
from recommender.warehouse.targets import Target, embedded_server, ensure_database, start_embedded, target_from_env


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


def bounded(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` in [low, high], checked before any work is done."""

    def parse(text: str) -> float:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, not {text}")
        return value

    return parse
