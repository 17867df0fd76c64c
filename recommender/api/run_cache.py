"""Answers that stay right while one model run is current: a published run's rows never change.

An answer is kept under the run it was read from, and found again only while that run is
current (the reader checks the current run on every request, one indexed lookup), so a
publish or a rollback needs no invalidation: the old run's answers are simply not asked
for any more, and the oldest answers leave once ``max_entries`` are kept.
"""

from __future__ import annotations

from collections.abc import Hashable

CURRENT_RUN = "select run_id from predictions.model_runs where is_current"


class RunCache:
    """JSON answers by (run_id, request key), at most ``max_entries`` (0 keeps none), oldest dropped first."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._answers: dict[tuple[str, Hashable], bytes] = {}

    def get(self, run_id: str | None, key: Hashable) -> bytes | None:
        return None if run_id is None else self._answers.get((run_id, key))

    def put(self, run_id: str, key: Hashable, answer: bytes) -> None:
        if self.max_entries == 0:
            return
        if len(self._answers) >= self.max_entries:
            del self._answers[next(iter(self._answers))]
        self._answers[run_id, key] = answer
