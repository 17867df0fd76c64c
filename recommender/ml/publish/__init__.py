"""Publishing a model run's recommendations to schema ``predictions``, atomically, with rollback.

Runs change only through the security definer functions of ``sql/predictions_door.sql``
(the door): the owner's code and a data scientist's go through the same functions, each
checking the run's state and who started it, and nobody but the owner may write
predictions' tables directly. A run is registered by ``start_run`` ('running') and
published by ``publish`` (``stage``, then ``finish``):

1. the recommendations are checked whole (``PublishError`` names each bad column and row);
2. in one transaction, ``open_rows`` creates a new table of the run's own,
   ``predictions.recommendations_<run>`` (a CHECK ``run_id = '<run>'`` lets the ATTACH skip
   its validation scan), its rows go into it by one streamed COPY, and ``attach_rows``
   builds its primary key and attaches it as a partition of ``predictions.recommendations``.
   ATTACH takes only SHARE UPDATE EXCLUSIVE on the parent, so readers are never blocked;
   the new rows belong to a run that is not current;
3. it waits until every transaction that held a lock on ``predictions.recommendations``
   has ended (as CREATE INDEX CONCURRENTLY does): once before the attach, so that a reader
   that never ends fails the publish with nothing attached, and once after its commit,
   which ``make_current`` insists on. A query planned before the attach does not know the
   new partition; were the run made current while such a query takes its snapshot, it
   would see no rows at all. Measured: without this wait, about 1 % of the reads made
   during rapid publishes saw an empty set;
4. in one transaction, the previous run stops being current and this one becomes current.
   Readers of ``predictions.current_recommendations`` see the old run's rows, then the new
   run's, never an empty, partial or mixed set;
5. partitions beyond the newest ``keep`` published or rolled-back runs are given up (they
   can never be current again), then detached concurrently and dropped; failing to drop
   them is reported and never fails the publish. Detaching is the owner's: a data
   scientist's publish leaves the dropping to the owner's next prune (every ``make run``).

Every lock wait is bounded (``lock_timeout``; the waits of step 3 by ``reader_wait_s``) and
its error names the sessions waited for. The switch of the current run is serialised by a
row lock that only the owner's functions can take, so no reader can stall it.

A failure at any step marks the run 'failed' with its error and leaves no partition
behind (a failure before the attach commits leaves none; one attached is dropped by the
owner, or by the next prune if a reader blocks that); the previous run stays current, its
rows untouched. ``rollback`` makes the previous published run current again.

The rows are written with COPY FREEZE (the table is new in the transaction): readers never
set hint bits on them and index-only scans work at once. As PostgreSQL documents for FREEZE,
a REPEATABLE READ transaction older than the publish that reads the parent table directly
can see the new run's rows (never through ``current_recommendations``, which joins the
current run as of its snapshot).
"""

from recommender.ml.publish.checks import check_rows
from recommender.ml.publish.door import COLUMNS, LOCK_TIMEOUT, REFUSALS, PublishError, ensure_schema
from recommender.ml.publish.partitions import prune
from recommender.ml.publish.runs import (
    Finished,
    PublishResult,
    Staged,
    WarehouseRuns,
    current_run,
    fail_run,
    finish,
    make_current,
    publish,
    reap_orphans,
    restore,
    rollback,
    stage,
    start_run,
)

__all__ = [
    "COLUMNS",
    "LOCK_TIMEOUT",
    "REFUSALS",
    "Finished",
    "PublishError",
    "PublishResult",
    "Staged",
    "WarehouseRuns",
    "check_rows",
    "current_run",
    "ensure_schema",
    "fail_run",
    "finish",
    "make_current",
    "prune",
    "publish",
    "reap_orphans",
    "restore",
    "rollback",
    "stage",
    "start_run",
]
