"""Answers that stay right while one version of the data is current.

A published run's rows never change, nor does a table dbt built (a rebuild is a new table,
with a new oid). So an answer drawn from the current run and ``marts.catalogue`` is kept
under that version, ``(run_id, catalogue oid)``, and found again only while both are
current: every request reads the version first (one indexed lookup), so a publish, a
rollback or a ``dbt build`` needs no invalidation; the old answers are simply not asked
for any more, and the oldest leave once ``max_entries`` are kept.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

Answer = TypeVar("Answer")

CURRENT_RUN = "select run_id from predictions.model_runs where is_current"
VERSION = f"select ({CURRENT_RUN}) as run_id, to_regclass('marts.catalogue')::oid as catalogue"


class RunCache(Generic[Answer]):
    """Answers (JSON, or rows) by (version, request key), at most ``max_entries`` (0 keeps none), oldest dropped first.

    A version with no current run (``None`` first) is never kept.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._answers: dict[tuple[tuple, Hashable], Answer] = {}

    def get(self, version: tuple, key: Hashable) -> Answer | None:
        return None if version[0] is None else self._answers.get((version, key))

    def put(self, version: tuple, key: Hashable, answer: Answer) -> None:
        if self.max_entries == 0 or version[0] is None:
            return
        if len(self._answers) >= self.max_entries:
            del self._answers[next(iter(self._answers))]
        self._answers[version, key] = answer
