"""All-or-nothing refreshes lived on one warehouse: bad exports, refused generations, shrinking, orphans, one at a time.

Each test judges what readers see (``live_warehouse.checksums``) before and after, and the API still
answering. Kills at every stage are in test_refresh_kills.py; switching exports and rollback in
test_refresh_switch.py: each module lives on a warehouse of its own, so pytest-xdist's workers share them out.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from bad_exports import BAD_EXPORTS
from conftest import Live
from export_copies import edit_file, edit_rows
from live_warehouse import checksums, rows_of
from queries import query

from recommender.refresh import audit, generations, pipeline
from recommender.warehouse import exports

# the exports dbt's tests refuse cost a build each: they judge the pipeline, so on one server
CASES = [pytest.param(*case, id=case[0], marks=[pytest.mark.one_server] * (case[1] == "wrong")) for case in BAD_EXPORTS]


@pytest.mark.parametrize(("name", "kind", "apply"), CASES)
def test_a_bad_export_changes_nothing_readers_see(
    live: Live, tmp_path: Path, name: str, kind: str, apply: Callable[[Path], None]
) -> None:
    before = checksums(live.target)
    folder = live.copy(tmp_path)
    apply(folder)
    refusal = exports.ExportError if kind == "malformed" else pipeline.PipelineError
    with pytest.raises(refusal) as refused:
        live.refresh(folder)
    assert "Traceback" not in str(refused.value)
    assert checksums(live.target) == before
    live.assert_serving()


@pytest.mark.one_server
def test_a_refused_generation_is_kept_for_inspection_and_lists_every_reason(live: Live, tmp_path: Path) -> None:
    folder = live.copy(tmp_path)
    edit_file(folder, "raw_credits", edit_rows(lambda rows: rows[:1]))
    with pytest.raises(pipeline.RefusedError) as refused:
        live.refresh(folder)
    message = str(refused.value) + "\n".join(refused.value.__notes__)
    assert "core.credits would become empty" in message
    assert "Great Expectations: raw.raw_credits" in message
    assert "raw__refused, staging__refused, core__refused, marts__refused" in message
    assert query(live.target, "select count(*) from core__refused.credits") == [(0,)]
    assert query(live.target, "select count(*) > 0 from core.credits") == [(True,)]
    # the refused attempt's run is failed and its recommendations gone
    failed = query(
        live.target,
        "select run_id, error from predictions.model_runs where status = 'failed' order by started_at desc limit 1",
    )
    assert "its warehouse generation was refused" in failed[0][1]
    assert query(
        live.target, "select to_regclass('predictions.' || predictions.partition_name(%s)) is null", (failed[0][0],)
    ) == [(True,)]


@pytest.mark.one_server
def test_a_shrink_of_the_same_export_is_refused_unless_accepted(live: Live) -> None:
    live.on_its_export()
    before = checksums(live.target)
    saved = live.folder.with_name("saved")
    shutil.copytree(live.folder, saved)
    try:
        edit_file(live.folder, "raw_credits", edit_rows(lambda rows: rows[: len(rows) // 2]))
        with pytest.raises(pipeline.RefusedError, match=r"core\.credits would shrink by \d+% .* more than the 10%"):
            live.refresh()
        assert checksums(live.target) == before
        summary = live.refresh(allow_shrink=True)
        assert (
            summary.row_counts["raw.raw_credits"] == (rows_of(before, "raw.raw_credits") + 1) // 2 - 1
        )  # the header kept
        live.assert_serving()
    finally:
        shutil.rmtree(live.folder)
        saved.rename(live.folder)


def test_shrinkage_counts_only_past_the_share_and_only_against_the_same_export() -> None:
    now = {"core.credits": 1000, "core.titles": 100, "app.users": 0}
    half = {"core.credits": 500, "core.titles": 100, "app.users": 0}
    assert audit.shrinkage(now, half, max_shrink=0.6, same_export=True) == []
    (reason,) = audit.shrinkage(now, half, max_shrink=0.3, same_export=True)
    assert reason.startswith("core.credits would shrink by 50% (1,000 -> 500 rows), more than the 30% allowed")
    assert audit.shrinkage(now, half, max_shrink=0.3, same_export=False) == []  # another export may be smaller
    emptied = audit.shrinkage(now, {**half, "core.titles": 0}, max_shrink=0.9, same_export=False)
    assert emptied == ["core.titles would become empty (it holds 100 rows now)"]


def test_activity_the_new_catalogue_would_orphan_is_refused(live: Live, tmp_path: Path) -> None:
    ((user_id, content_id),) = query(
        live.target, "select user_id, min(content_id) from app.viewing_events group by 1 order by 1 limit 1"
    )
    with closing(live.target.connect()) as conn, conn, conn.cursor() as cur:
        # a user of the API's own (not the simulated cohort) watched a title
        cur.execute(
            "insert into app.users select 990001, age_band, country_code, signup_date, plan, device, language,"
            " attributes, 'pytest', now() from app.users where user_id = %s",
            (user_id,),
        )
        cur.execute(
            "insert into app.viewing_events"
            " values (99000100001, 990001, %s, now(), 60, 0.5, null, 'tv', 'pytest', now())",
            (content_id,),
        )
    try:
        before = checksums(live.target)
        folder = live.copy(tmp_path)
        edit_file(folder, "raw_titles", edit_rows(lambda rows: [row for row in rows if content_id not in row]))
        edit_file(folder, "raw_credits", edit_rows(lambda rows: [row for row in rows if content_id not in row]))
        with pytest.raises(pipeline.RefusedError, match=rf"orphans 1 row\(s\) of app.viewing_events .*'{content_id}'"):
            live.refresh(folder)
        assert checksums(live.target) == before
    finally:
        with closing(live.target.connect()) as conn, conn, conn.cursor() as cur:
            cur.execute("delete from app.viewing_events where user_id = 990001")
            cur.execute("delete from app.users where user_id = 990001")


def test_one_refresh_at_a_time(live: Live) -> None:
    before = checksums(live.target)
    with closing(live.target.connect()) as other:
        generations.hold_refresh_lock(other)
        with pytest.raises(generations.GenerationError, match=rf"another refresh .*pid {other.get_backend_pid()} "):
            live.refresh()
    assert checksums(live.target) == before
