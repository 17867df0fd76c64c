"""A refresh killed (SIGKILL) at any stage changes nothing readers see, and the next refresh clears its leftovers."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing, suppress
from pathlib import Path

import pytest
from conftest import Live
from live_warehouse import COHORT, checksums, rescored
from psycopg2.extensions import cursor
from queries import query

from recommender.warehouse.targets import PROJECT_ROOT


def _sql(statement: str) -> Callable[[cursor], bool]:
    def found(cur: cursor) -> bool:
        cur.execute(statement)
        return bool(cur.fetchone()[0])

    return found


STAGES = {
    # stage: (the line the refresh prints before it, the evidence that it is under way)
    "seed": ("refresh: catalogue", _sql("select exists (select from pg_tables where schemaname = 'raw__next')")),
    "staging": ("refresh: catalogue", _sql("select to_regclass('staging__next.stg_netflix__titles') is not null")),
    "core": ("refresh: catalogue", _sql("select to_regclass('core__next.titles') is not null")),
    "marts": ("refresh: catalogue", _sql("select to_regclass('marts__next.catalogue') is not null")),
    "simulate": ("refresh: simulate", _sql("select to_regclass('app__cohort.users') is not null")),
    "activity": ("refresh: activity", _sql("select to_regclass('core__next.viewing_events') is not null")),
    "train": ("refresh: train", _sql("select exists (select from predictions.model_runs where status = 'running')")),
    "publish": (
        "refresh: train",
        _sql(
            "select exists (select from predictions.model_runs where status = 'running'"
            " and to_regclass('predictions.' || predictions.partition_name(run_id)) is not null)"
        ),
    ),
    "quality": ("refresh: quality", _sql("select true")),
    "audit": ("refresh: audit", _sql("select true")),
    "switch": ("refresh: switch", _sql("select true")),
}

RUNNER = """
import sys
from pathlib import Path
from recommender.refresh import pipeline
from recommender.activity.simulate import SimulationConfig
from recommender.warehouse.targets import target_from_env
pipeline.run(target_from_env(), Path(sys.argv[1]), work_dir=Path(sys.argv[2]),
             simulation=SimulationConfig(users={users}, days={days}), exports_dir=Path(sys.argv[3]))
"""


def _kill_at(live: Live, folder: Path, stage: str) -> str:
    """Run a refresh in a process of its own and SIGKILL it once ``stage`` is under way; its output."""
    marker, evidence = STAGES[stage]
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            RUNNER.format(users=COHORT.users, days=COHORT.days),
            str(folder),
            str(live.work / "dbt"),  # the live warehouse's own, as a killed make run leaves it for the next
            str(live.work / "exports"),
        ],
        cwd=PROJECT_ROOT,
        env={**os.environ, **live.target.env()},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    output: list[str] = []
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    deadline = time.monotonic() + 300
    try:
        while not any(line.startswith(marker) for line in output):
            assert process.poll() is None, f"the refresh ended before {stage}:\n{''.join(output)}"
            assert time.monotonic() < deadline, f"no {marker!r} in:\n{''.join(output)}"
            with suppress(queue.Empty):
                output.append(lines.get(timeout=0.05))
        with closing(live.target.connect()) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                while not evidence(cur):
                    assert process.poll() is None, f"the refresh ended before {stage} was seen:\n{''.join(output)}"
                    assert time.monotonic() < deadline
                    time.sleep(0.005)
        process.kill()
    finally:
        process.kill()
        process.wait()
    return "".join(output)


@pytest.mark.parametrize("stage", list(STAGES))
@pytest.mark.one_server
def test_a_kill_at_any_stage_changes_nothing_readers_see(live: Live, tmp_path: Path, stage: str) -> None:
    before = checksums(live.target)
    folder = live.copy(tmp_path)
    rescored(folder)  # so that the cohort is simulated again, and app would change if the kill leaked
    _kill_at(live, folder, stage)
    assert checksums(live.target) == before
    live.assert_serving()


@pytest.mark.one_server
def test_the_refresh_after_kills_clears_their_leftovers(live: Live) -> None:
    live.refresh()
    assert (
        query(
            live.target,
            "select nspname from pg_namespace"
            " where nspname like any(array['%\\_\\_next', '%\\_\\_refused', 'app\\_\\_%'])",
        )
        == []
    )
    assert query(live.target, "select count(*) from predictions.model_runs where status = 'running'") == [(0,)]
    failed = query(
        live.target, "select predictions.partition_name(run_id) from predictions.model_runs where status = 'failed'"
    )
    partitions = {
        name
        for (name,) in query(
            live.target,
            "select c.relname from pg_inherits as i join pg_class as c on c.oid = i.inhrelid"
            " where i.inhparent = 'predictions.recommendations'::regclass",
        )
    }
    assert not {name for (name,) in failed} & partitions
    orphaned = query(live.target, "select error from predictions.model_runs where error like 'the process publishing%'")
    assert orphaned, "a run killed while training is recognised as orphaned"
    live.assert_serving()
