"""Schema ``app``: its tables, created idempotently from ``sql/app.sql`` with the vocabularies of ``frames``."""

from __future__ import annotations

from psycopg2.extensions import connection

from recommender.activity.frames import (
    AGE_BANDS,
    ARM_PATTERN,
    BATCH_KINDS,
    DEVICES,
    EXPERIMENT_STATUSES,
    MAX_POSITION,
    PLANS,
)
from recommender.warehouse import sql_files
from recommender.warehouse.identifiers import CONTENT_ID_PATTERN

DDL = sql_files.read(
    __package__,
    "app.sql",
    batch_kinds=sql_files.literal(BATCH_KINDS),
    # what app.batches' kind check must contain to allow every kind (as pg_get_constraintdef writes it)
    kind_patterns=", ".join(sql_files.literal(f"%'{kind}'::text%") for kind in BATCH_KINDS),
    age_bands=sql_files.literal(AGE_BANDS),
    plans=sql_files.literal(PLANS),
    devices=sql_files.literal(DEVICES),
    content_id_pattern=sql_files.literal(CONTENT_ID_PATTERN),
    experiment_statuses=sql_files.literal(EXPERIMENT_STATUSES),
    arm_pattern=sql_files.literal(ARM_PATTERN),
    max_position=MAX_POSITION,
)


def ensure_schema(conn: connection) -> None:
    """Create schema ``app`` and its tables if missing (idempotent)."""
    with conn, conn.cursor() as cur:
        cur.execute(DDL)
