"""The semantic layer: MetricFlow accepts it, and the README's `mf query` examples answer what plain SQL answers."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from recommender.refresh.pipeline import Summary
from recommender.warehouse.dbt import SAMPLE_SEEDS, dbt_env
from recommender.warehouse.targets import PROJECT_ROOT

BIN = Path(sys.executable).parent
# what a dbt project is made of; `mf` reads <project>/target/semantic_manifest.json, always there
PROJECT_PARTS = ("dbt_project.yml", "models", "macros", "tests", "seeds", "analyses")

# The README's examples, each with the same question in plain SQL: the group-by value first, then mf's columns.
EXAMPLES = {
    "mf query --metrics genre_titles,genre_mean_imdb_score,genre_weighted_imdb_score --group-by genre__genre_name": """
        select
            genres.genre_name,
            count(*) as genre_titles,
            avg(catalogue.imdb_score) as genre_mean_imdb_score,
            sum(catalogue.imdb_score * catalogue.imdb_votes)
            / sum(catalogue.imdb_votes) filter (where catalogue.imdb_score is not null) as genre_weighted_imdb_score
        from core.title_genres
        inner join marts.catalogue on title_genres.content_id = catalogue.content_id
        inner join core.genres on title_genres.genre_id = genres.genre_id
        group by genres.genre_name""",
    "mf query --metrics viewing_hours,completion_rate,active_users --group-by metric_time__week": """
        select
            to_char(date_trunc('week', started_at at time zone 'UTC'), 'YYYY-MM-DD') as week,
            sum(seconds_watched) / 3600.0 as viewing_hours,
            avg(completion_ratio) as completion_rate,
            count(distinct user_id) as active_users
        from core.viewing_events
        group by 1""",
    "mf query --metrics hours_per_active_user --group-by user__plan": """
        select
            users.plan,
            sum(viewing_events.seconds_watched) / 3600.0
            / count(distinct viewing_events.user_id) as hours_per_active_user
        from core.viewing_events
        inner join core.users on viewing_events.user_id = users.user_id
        group by users.plan""",
}
# mf writes a time dimension as a timestamp: its day is the key
TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T]")


def readme_examples() -> list[str]:
    """The `mf query` lines of the README's Metrics section."""
    section = (PROJECT_ROOT / "README.md").read_text().split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^mf query .*$", section, flags=re.MULTILINE)


def test_the_readme_shows_the_tested_examples() -> None:
    assert readme_examples() == list(EXAMPLES)


@pytest.fixture(scope="module")
def mf_project(sample_warehouse: Summary, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A project folder (links to this project's parts) parsed against the sample warehouse, and mf's environment.

    `dbt parse`, not a second build: the semantic manifest names the warehouse's relations, and mf finds it only
    at <project>/target/semantic_manifest.json, so the test parses into a folder of its own.
    """
    project = tmp_path_factory.mktemp("mf-project")
    for part in PROJECT_PARTS:
        (project / part).symlink_to(PROJECT_ROOT / part)
    env = dbt_env(sample_warehouse.target, project / SAMPLE_SEEDS.relative_to(PROJECT_ROOT), project_dir=project)
    parsed = subprocess.run([BIN / "dbt", "parse"], cwd=project, env=env, capture_output=True, text=True, check=False)
    assert parsed.returncode == 0, parsed.stdout + parsed.stderr
    return project, env


def mf(mf_project: tuple[Path, dict[str, str]], *args: str) -> subprocess.CompletedProcess[str]:
    project, env = mf_project
    return subprocess.run([BIN / "mf", *args], cwd=project, env=env, capture_output=True, text=True, check=False)


def test_validate_configs_passes_against_the_warehouse(mf_project: tuple[Path, dict[str, str]]) -> None:
    """Semantics, and every semantic model, dimension, entity, measure and metric queried in the warehouse."""
    validated = mf(mf_project, "validate-configs")
    assert validated.returncode == 0, validated.stdout + validated.stderr
    # the semantics, then semantic models, dimensions, entities, measures and metrics against the warehouse
    assert validated.stdout.count("Successfully validated") == 6, validated.stdout


def test_everything_in_the_semantic_layer_is_described(mf_project: tuple[Path, dict[str, str]]) -> None:
    manifest = json.loads((mf_project[0] / "target" / "semantic_manifest.json").read_text())
    described = [*manifest["metrics"], *manifest["saved_queries"], *manifest["semantic_models"]]
    for model in manifest["semantic_models"]:
        described += model["entities"] + model["dimensions"] + model["measures"]
    assert len(manifest["semantic_models"]) >= 6 and len(manifest["saved_queries"]) >= 5
    assert [item["name"] for item in described if not (item.get("description") or "").strip()] == []


def keyed(rows: list[list[str]]) -> dict[str, dict[str, float]]:
    """{group-by value: {column: value}} of a header row and data rows; a timestamp's key is its day."""
    (_, *columns), *data = rows
    return {
        (day.group(1) if (day := TIMESTAMP.match(key)) else key): dict(zip(columns, map(float, values), strict=True))
        for key, *values in data
    }


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_mf_query_equals_plain_sql(
    example: str, mf_project: tuple[Path, dict[str, str]], sample_warehouse: Summary, tmp_path: Path
) -> None:
    out = tmp_path / "result.csv"
    answered = mf(mf_project, *example.split()[1:], "--csv", str(out), "--quiet")
    assert answered.returncode == 0 and out.exists(), answered.stdout + answered.stderr
    with out.open(newline="") as file:
        found = keyed(list(csv.reader(file)))
    with closing(sample_warehouse.target.connect()) as conn, conn.cursor() as cur:
        cur.execute(EXAMPLES[example])
        expected = keyed([[column.name for column in cur.description], *([str(v) for v in row] for row in cur)])
    assert len(expected) > 1 and all(all(row.values()) for row in expected.values())
    assert found.keys() == expected.keys()
    for key, row in expected.items():
        assert found[key] == pytest.approx(row, rel=1e-9), key
