"""The loop's rows, written day by day through ``recommender.activity`` (validated whole, idempotent)."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import ClassVar

import pandas as pd
from psycopg2.extensions import connection

from recommender import activity


class DailyWriter:
    """Each day's rows, written kind by kind in the order their references need (validated, idempotent)."""

    ORDER: ClassVar = ("assignments", "impressions", "slate_utilities", "viewing_events")
    PREPARE: ClassVar = {
        "assignments": activity.prepare_assignments,
        "impressions": activity.prepare_impressions,
        "slate_utilities": activity.prepare_slate_utilities,
        "viewing_events": activity.prepare_events,
    }

    def __init__(self, conn: connection, seconds: dict[str, float]) -> None:
        self.conn, self.seconds = conn, seconds
        self.pending: dict[str, list[pd.DataFrame]] = defaultdict(list)
        self.counts: dict[str, int] = defaultdict(int)

    def users(self, users: pd.DataFrame) -> None:
        clock = time.perf_counter()
        activity.write_prepared(self.conn, activity.prepare_users(self.conn, users))
        self.seconds["write"] += time.perf_counter() - clock

    def add(self, kind: str, rows: pd.DataFrame) -> None:
        if len(rows):
            self.pending[kind].append(rows)

    def flush(self) -> None:
        clock = time.perf_counter()
        for kind in self.ORDER:
            if self.pending[kind]:
                rows = pd.concat(self.pending.pop(kind), ignore_index=True)
                activity.write_prepared(self.conn, self.PREPARE[kind](self.conn, rows))
                self.counts[kind] += len(rows)
        self.seconds["write"] += time.perf_counter() - clock
