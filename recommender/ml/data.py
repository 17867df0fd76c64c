"""What the models read: the warehouse's interactions and title features, by a connection or through the HTTP API."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import pandas as pd
from psycopg2.extensions import connection

from recommender.warehouse.targets import read_table

# What describes a title to the content model (marts.ml_title_features): categories, not measurements.
WAREHOUSE_CONTENT_COLUMNS = (
    "genre_ids",
    "country_codes",
    "director_ids",
    "cast_ids",
    "decade",
    "age_certification",
    "is_show",
)


# reads a whole warehouse table, ``read(name, columns)`` (columns None: all) as ``warehouse.read_table`` does:
# a connection's (``table_reader(conn)``) or the HTTP API's (``recommender.api.client.ApiClient.read_table``)
ReadTable = Callable[[str, Sequence[str] | None], pd.DataFrame]


def table_reader(source: connection | ReadTable) -> ReadTable:
    """``source`` as a ``ReadTable``: a connection reads with ``warehouse.read_table``; a reader is itself."""
    if isinstance(source, connection):
        return functools.partial(_read_directly, source)
    return source


def _read_directly(conn: connection, name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    return read_table(conn, name, columns=columns)


def title_features(source: connection | ReadTable) -> pd.DataFrame:
    """``marts.ml_title_features``, all of it (the simulator's and the taste score's input).

    ``source`` is a connection, or a ``ReadTable`` (e.g. the API client's ``read_table``).
    """
    return table_reader(source)("marts.ml_title_features", None)


def content_features(title_features: pd.DataFrame) -> pd.DataFrame:
    """``marts.ml_title_features`` as the content model takes it: indexed by content_id, categorical columns only
    (the release year as its decade)."""
    decades = title_features.assign(decade=title_features["release_year"] // 10 * 10)
    return decades.set_index("content_id")[list(WAREHOUSE_CONTENT_COLUMNS)]


def warehouse_interactions(source: connection | ReadTable) -> pd.DataFrame:
    """``marts.ml_interactions`` as user_id, item_id (content_id), weight (confidence), timestamp
    (last_interaction_at: the latest view or explicit rating).

    ``source`` is a connection, or a ``ReadTable`` (e.g. the API client's ``read_table``). Ordered by user and
    title: a model fitted on it depends on the data, not on the order the table's rows happen to lie in.
    """
    columns = ["user_id", "content_id", "confidence", "last_interaction_at"]
    frame = table_reader(source)("marts.ml_interactions", columns).sort_values(["user_id", "content_id"])
    return frame.reset_index(drop=True).rename(
        columns={"content_id": "item_id", "confidence": "weight", "last_interaction_at": "timestamp"}
    )
