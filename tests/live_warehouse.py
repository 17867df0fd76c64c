"""What a warehouse lived on by refreshes shows readers, and exports to refresh it from (tests/test_refresh*.py).

Each refresh test judges what readers see: checksums of every relation of every schema
(and the current run) before and after, and the API answering recommendations. The
warehouse itself is conftest's ``live`` fixture, one per test module.
"""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

from export_copies import edit_file, edit_rows

from recommender.activity.simulate import SimulationConfig
from recommender.warehouse.targets import Target

COHORT = SimulationConfig(users=100, days=7)
SCHEMAS = ("raw", "staging", "core", "marts", "app", "predictions")
# a refused or killed refresh records its attempt: its run stays in model_runs, 'failed' (or 'running'
# until the next refresh finds its process gone); the published runs are what readers rely on
# (and a staged run's rows are attached to predictions.recommendations before its switch, as the publisher
# documents: readers of the current recommendations never see them)
PUBLISHED = "status in ('published', 'rolled_back')"
HISTORY = {
    "predictions.model_runs": f" where {PUBLISHED}",
    "staging.stg_predictions__model_runs": f" where {PUBLISHED}",
    "predictions.recommendations": f" where run_id in (select run_id from predictions.model_runs where {PUBLISHED})",
}


def checksums(target: Target) -> dict[str, str]:
    """A digest of every table and view readers can reach, and the current run."""
    with closing(target.connect()) as conn, conn.cursor() as cur:
        cur.execute(
            "select n.nspname, c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
            " where n.nspname = any(%s) and c.relkind in ('r', 'p', 'v', 'm') and not c.relispartition"
            " order by 1, 2",
            (list(SCHEMAS),),
        )
        sums = {}
        for schema, name in cur.fetchall():
            relation = f"{schema}.{name}"
            where = HISTORY.get(relation, "")
            cur.execute(
                f'select count(*), md5(string_agg(t::text, chr(10) order by t::text)) from "{schema}"."{name}" as t'
                + where
            )
            sums[relation] = "{}:{}".format(*cur.fetchone())
        cur.execute("select run_id from predictions.model_runs where is_current")
        sums["current run"] = str(cur.fetchone())
    return sums


def rows_of(sums: dict[str, str], relation: str) -> int:
    return int(sums[relation].split(":")[0])


def without_titles(folder: Path, count: int) -> list[str]:
    """Remove the last ``count`` titles of the export in ``folder`` and their credits; their ids."""
    removed: list[str] = []

    def titles(rows: list[list[str]]) -> list[list[str]]:
        at = rows[0].index("id")
        removed.extend(row[at] for row in rows[-count:])
        return rows[:-count]

    edit_file(folder, "raw_titles", edit_rows(titles))
    edit_file(folder, "raw_credits", edit_rows(lambda rows: [r for r in rows if r[rows[0].index("id")] not in removed]))
    return removed


def rescored(folder: Path) -> None:
    """Change one title's IMDb score: the catalogue changes, so a refresh simulates its cohort again."""

    def rescore(rows: list[list[str]]) -> list[list[str]]:
        at = rows[0].index("imdb_score")
        last = rows[-1]
        return [*rows[:-1], [*last[:at], "9.9" if last[at] != "9.9" else "1.1", *last[at + 1 :]]]

    edit_file(folder, "raw_titles", edit_rows(rescore))
