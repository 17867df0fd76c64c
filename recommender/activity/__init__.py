"""Users and their activity in schema ``app``: what the simulator, notebooks and the HTTP API write and read.

``from recommender import activity`` gives the whole interface a data scientist uses:
``activity.ensure_schema(conn)``, ``activity.write_users / write_events / write_ratings``
(validated, idempotent, atomic), ``activity.read_*``, ``activity.delete_*``, and the batch
models. Modules: ``frames`` (vocabularies, pandera models), ``schema`` (the DDL, ``sql/app.sql``),
``writes``, ``reads``, ``simulate`` (the built-in simulator).
"""

from recommender.activity.frames import (
    AGE_BANDS,
    BATCH_KINDS,
    DEVICES,
    EARLIEST,
    EVENT_COLUMNS,
    PLANS,
    RATING_COLUMNS,
    RATINGS,
    TOO_LATE,
    USER_COLUMNS,
    EventBatch,
    RatingBatch,
    UserBatch,
)
from recommender.activity.reads import read_events, read_ratings, read_users
from recommender.activity.schema import ensure_schema
from recommender.activity.writes import (
    LIVE,
    BatchError,
    Place,
    PreparedBatch,
    WriteResult,
    delete_events,
    delete_users,
    derive_event_ids,
    derive_rating_ids,
    is_written,
    prepare_events,
    prepare_ratings,
    prepare_users,
    write_events,
    write_prepared,
    write_ratings,
    write_users,
)

__all__ = [
    "AGE_BANDS",
    "BATCH_KINDS",
    "DEVICES",
    "EARLIEST",
    "EVENT_COLUMNS",
    "LIVE",
    "PLANS",
    "RATINGS",
    "RATING_COLUMNS",
    "TOO_LATE",
    "USER_COLUMNS",
    "BatchError",
    "EventBatch",
    "Place",
    "PreparedBatch",
    "RatingBatch",
    "UserBatch",
    "WriteResult",
    "delete_events",
    "delete_users",
    "derive_event_ids",
    "derive_rating_ids",
    "ensure_schema",
    "is_written",
    "prepare_events",
    "prepare_ratings",
    "prepare_users",
    "read_events",
    "read_ratings",
    "read_users",
    "write_events",
    "write_prepared",
    "write_ratings",
    "write_users",
]
