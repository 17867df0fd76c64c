"""The core model and marts on real servers: counts, mappings, the data dictionary, the analyses."""

from __future__ import annotations

import re
from contextlib import closing
from pathlib import Path

import pytest
from queries import query

from recommender.refresh import pipeline
from recommender.warehouse.dbt import run_dbt

REAL_CORE_COUNTS = {
    "core.titles": 5806,
    "core.genres": 19,
    "core.title_genres": 14558,
    "core.people": 53956,
    "core.credits": 77122,
    "core.title_rankings": 713,
    "marts.catalogue": 5806,
    "marts.ml_title_features": 5806,
    "marts.person_filmography": 77122,
}


@pytest.mark.real_export
@pytest.mark.one_server
def test_real_export_core_counts_and_links(real_warehouse: pipeline.Summary) -> None:
    target = real_warehouse.target
    assert {name: real_warehouse.row_counts[name] for name in REAL_CORE_COUNTS} == REAL_CORE_COUNTS
    assert real_warehouse.unmatched_rankings == 0
    assert query(target, "select count(content_id) from core.title_rankings") == [(713,)]
    codes = [code for (code,) in query(target, "select country_code from core.countries")]
    assert codes and all(re.fullmatch("[A-Z]{2}", code) for code in codes)
    lebanon = query(
        target,
        "select pc.country_code from raw.raw_titles as r"
        " join core.title_production_countries as pc on pc.content_id = r.id"
        " where r.production_countries like '%Lebanon%'",
    )
    assert lebanon == [("LB",)]
    assert query(target, "select count(*) from core.title_production_countries where country_code = 'NA'") == [(1,)]
    assert real_warehouse.dbt_counts.get(("test", "warn"), 0) == 0
    assert not real_warehouse.quality.failures


def test_sample_keeps_and_counts_its_unmatched_best_of_row(sample_warehouse: pipeline.Summary) -> None:
    assert sample_warehouse.unmatched_rankings == 1
    assert sample_warehouse.dbt_counts[("test", "warn")] == 1  # warn_unmatched_title_rankings, a real finding
    assert ("test", "fail") not in sample_warehouse.dbt_counts
    assert sample_warehouse.dbt_counts[("unit_test", "pass")] >= 5
    rows = query(
        sample_warehouse.target,
        "select listed_title, content_id from core.title_rankings where content_id is null",
    )
    assert rows == [("The Uncatalogued Serial", None)]
    staged = sum(
        sample_warehouse.row_counts[f"staging.stg_netflix__best_{name}"]
        for name in ("movies", "shows", "movie_by_year", "show_by_year")
    )
    assert sample_warehouse.row_counts["core.title_rankings"] == staged


def test_contracts_put_keys_and_checks_in_the_database(sample_warehouse: pipeline.Summary) -> None:
    target = sample_warehouse.target
    without_key = query(
        target,
        "select c.relname from pg_class as c where c.relnamespace = 'core'::regnamespace and c.relkind = 'r'"
        " and not exists (select from pg_constraint as k where k.conrelid = c.oid and k.contype = 'p')",
    )
    assert without_key == []  # every core table has its primary key in the database
    constraints = dict(
        query(
            target, "select contype, count(*) from pg_constraint where connamespace = 'core'::regnamespace group by 1"
        )
    )
    assert constraints["p"] == 16  # one per core table
    assert constraints["f"] >= 9
    assert constraints["c"] >= 15
    with closing(target.connect()) as conn, conn.cursor() as cur:
        with pytest.raises(Exception, match="titles_seasons_only_for_shows"):
            cur.execute("update core.titles set seasons = 3 where content_type = 'movie'")
        conn.rollback()


def test_analyses_compile_and_answer(sample_warehouse: pipeline.Summary, work_dir: Path) -> None:
    result = run_dbt(
        ["compile", "--select", "resource_type:analysis"], sample_warehouse.target, target_path=work_dir, capture=True
    )
    assert result.returncode == 0, result.stdout
    compiled = sorted((work_dir / "compiled" / "netflix_warehouse" / "analyses").glob("*.sql"))
    assert {path.stem for path in compiled} >= {
        "top_genres_per_decade",
        "most_prolific_directors",
        "country_coproduction_network",
        "best_of_by_score_and_votes",
    }
    for path in compiled:
        assert query(sample_warehouse.target, path.read_text()), f"{path.stem} returned no rows"
