"""Switching exports and rolling back on one warehouse: readers see the old generation or the new, never a mix."""

from __future__ import annotations

import re
import threading
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
import yaml
from conftest import Live
from export_copies import copy_export, resave_without_index
from live_warehouse import checksums, rescored, rows_of, without_titles
from queries import cli, query

from recommender.refresh import generations
from recommender.warehouse.dbt import LIVE_EXPORT, run_dbt
from recommender.warehouse.exports import ORIGINAL_NAMES
from recommender.warehouse.targets import PROJECT_ROOT, Target


@pytest.mark.one_server
def test_readers_see_the_old_generation_or_the_new_never_a_mix_or_an_error(live: Live, tmp_path: Path) -> None:
    live.on_its_export()
    folder = live.copy(tmp_path)
    without_titles(folder, 3)
    probe = (
        "select (select count(*) from marts.catalogue), (select count(*) from core.titles),"
        " (select count(distinct run_id) from marts.user_recommendations),"
        " (select count(*) from marts.user_recommendations as r"
        "  where not exists (select from marts.catalogue as c where c.content_id = r.content_id))"
    )
    ((before,),) = [query(live.target, probe)]
    answers, errors, stop = [], [], threading.Event()

    def poll() -> None:
        with closing(live.target.connect()) as conn:
            conn.autocommit = True
            while not stop.is_set():
                try:
                    with conn.cursor() as cur:
                        cur.execute(probe)
                        answers.append(cur.fetchone())
                except psycopg2.Error as exc:
                    errors.append(str(exc))
                stop.wait(0.005)  # a reader every few ms, not two cores' worth of them slowing the refresh down

    readers = [threading.Thread(target=poll) for _ in range(2)]
    for reader in readers:
        reader.start()
    try:
        live.refresh(folder)
    finally:
        stop.set()
        for reader in readers:
            reader.join()
    ((after,),) = [query(live.target, probe)]
    assert errors == []
    assert after[0] == before[0] - 3
    assert set(answers) <= {before, after}, set(answers) - {before, after}
    assert before[3] == after[3] == 0  # never a recommendation of a title the catalogue lacks


@pytest.mark.one_server
def test_rollback_returns_to_the_previous_generation_with_its_run(live: Live, tmp_path: Path) -> None:
    live.on_its_export()
    before = checksums(live.target)
    previous_run = query(live.target, "select run_id from predictions.model_runs where is_current")
    folder = live.copy(tmp_path)
    without_titles(folder, 1)
    live.refresh(folder)
    assert rows_of(checksums(live.target), "core.titles") == rows_of(before, "core.titles") - 1
    with closing(live.target.connect()) as conn:
        restored = generations.rollback(conn)
    assert restored.run_id == previous_run[0][0]
    assert query(live.target, "select run_id from predictions.model_runs where is_current") == previous_run
    after = checksums(live.target)
    # what dbt owns is as it was, and so are the recommendations readers see; app is never rolled back
    for name, digest in before.items():
        if name.split(".")[0] in ("raw", "core", "marts") or name == "current run":
            assert after[name] == digest, name
    live.assert_serving()


def test_a_reader_holding_the_previous_generation_bounds_the_wait_and_is_named(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    with closing(live.target.connect()) as conn:
        if generations.previous(conn) is None:
            live.refresh()
    monkeypatch.setattr(generations, "SWITCH_LOCK_TIMEOUT", "200ms")
    with closing(live.target.connect()) as reader, closing(live.target.connect()) as conn:
        with reader.cursor() as cur:  # a transaction left open on the previous generation
            cur.execute("select count(*), pg_backend_pid() from marts__prev.catalogue")
            reader_pid = cur.fetchone()[1]
        with pytest.raises(generations.GenerationError, match=rf"gave up after waiting 200ms .*pid {reader_pid} "):
            generations.drop_previous(conn)
        assert generations.previous(conn) is not None  # nothing dropped
        reader.rollback()
    live.assert_serving()


@pytest.mark.one_server
def test_rollback_refuses_a_catalogue_the_activity_outgrew(live: Live, tmp_path: Path) -> None:
    folder = live.copy(tmp_path)
    removed = without_titles(folder, 5)
    live.refresh(folder)
    live.refresh()  # the five titles are back
    ((user_id,),) = query(live.target, "select min(user_id) from app.users")
    with closing(live.target.connect()) as conn, conn, conn.cursor() as cur:
        cur.execute(
            "insert into app.viewing_events values (99000200001, %s, %s, now(), 60, 0.5, null, 'tv', 'pytest', now())",
            (user_id, removed[0]),
        )
    try:
        before = checksums(live.target)
        with closing(live.target.connect()) as conn, pytest.raises(generations.GenerationError) as refused:
            generations.rollback(conn)
        # the user's event names removed[0]; the cohort, simulated on the full catalogue, may watch others
        assert re.search(
            rf"lacks \d+ title\(s\) that app's activity names, e\.g\. .*'{removed[0]}'", str(refused.value)
        )
        assert checksums(live.target) == before
    finally:
        with closing(live.target.connect()) as conn, conn, conn.cursor() as cur:
            cur.execute("delete from app.viewing_events where event_id = 99000200001")


@pytest.mark.real_export
@pytest.mark.one_server
def test_switching_exports_in_any_order_works_every_time(live: Live, real_export: Path, tmp_path: Path) -> None:
    live.on_its_export()
    ((sample_titles,),) = query(live.target, "select count(*) from core.titles")
    real = live.refresh(real_export)
    assert (real.row_counts["core.titles"], real.row_counts["core.credits"]) == (5806, 77122)
    assert any("catalogue changed" in line for line in real.changes)
    assert any("simulated again on the new catalogue" in line for line in real.changes)
    live.assert_serving()
    back = live.refresh()
    assert back.row_counts["core.titles"] == sample_titles
    assert any("catalogue changed" in line for line in back.changes)
    # the same catalogue re-saved (no index column, a byte order mark, LF endings) is another copy of it
    resaved = copy_export(
        live.folder, tmp_path / "resaved", dict.fromkeys(ORIGINAL_NAMES, resave_without_index), bom=True
    )
    copy = live.refresh(resaved)
    assert copy.row_counts["core.titles"] == sample_titles
    assert any("another copy of the same catalogue" in line for line in copy.changes)
    assert any("cohort: unchanged" in line for line in copy.changes)
    assert query(
        live.target,
        "select count(*) from marts.user_recommendations as r where not exists"
        " (select from core.titles as t where t.content_id = r.content_id)",
    ) == [(0,)]
    live.assert_serving()


@pytest.mark.one_server
def test_plain_dbt_seed_reloads_the_export_of_the_live_generation(live: Live, tmp_path: Path) -> None:
    project = yaml.safe_load((PROJECT_ROOT / "dbt_project.yml").read_text())
    assert "'.exports/live'" in project["seed-paths"][0]  # plain dbt's default: the link the refresh keeps
    assert LIVE_EXPORT == PROJECT_ROOT / ".exports" / "live"
    folder = live.copy(tmp_path)
    rescored(folder)  # an export that is not the sample
    live.refresh(folder)
    link = live.work / "exports" / "live"
    assert (link / "raw_titles.csv").read_bytes() == (folder / "raw_titles.csv").read_bytes()
    before = checksums(live.target)
    seeded = run_dbt(["seed"], live.target, raw_dir=link, target_path=live.work / "plain", capture=True)
    assert seeded.returncode == 0, seeded.stdout
    assert checksums(live.target) == before


def test_the_command_line_shows_the_generations_and_refuses_a_rollback_to_nothing(live: Live, database: Target) -> None:
    with closing(live.target.connect()) as conn:
        current = generations.live(conn)
    status = cli(live.target, "warehouse", "status")
    assert status.returncode == 0, status.stderr
    assert f'"id": "{current.id}"' in status.stdout and f'"run_id": "{current.run_id}"' in status.stdout
    nothing = cli(database, "warehouse", "rollback")
    assert nothing.returncode == 2
    assert "error: there is no previous generation to return to" in nothing.stderr
