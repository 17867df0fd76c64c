"""Typed reads of schema ``app``: each table back as the batch model that writes it."""

from __future__ import annotations

import pandas as pd
from psycopg2.extensions import connection

from recommender.activity.frames import EVENT_COLUMNS, RATING_COLUMNS, USER_COLUMNS, EventBatch, RatingBatch, UserBatch
from recommender.warehouse.targets import read_table


def read_users(conn: connection) -> pd.DataFrame:
    """All users, typed as ``UserBatch`` (what ``write_users`` takes), ordered by user_id."""
    frame = read_table(conn, "app.users", columns=USER_COLUMNS, order_by=["user_id"])
    return UserBatch.validate(frame)


def read_events(conn: connection, **filters: object) -> pd.DataFrame:
    """Viewing events typed as ``EventBatch``, ordered by event_id; ``filters`` as in ``read_table``."""
    frame = read_table(conn, "app.viewing_events", columns=EVENT_COLUMNS, where=filters, order_by=["event_id"])
    return EventBatch.validate(frame)


def read_ratings(conn: connection, **filters: object) -> pd.DataFrame:
    """Ratings typed as ``RatingBatch``, ordered by rating_id; ``filters`` as in ``read_table``.

    Every rating is returned, a title rated again included; the latest ``rated_at`` counts.
    """
    frame = read_table(conn, "app.ratings", columns=RATING_COLUMNS, where=filters, order_by=["rating_id"])
    return RatingBatch.validate(frame)
