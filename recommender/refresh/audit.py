"""The audit of a generation before it goes live: activity and recommendations it would orphan, tables that shrink."""

from __future__ import annotations

from psycopg2 import sql
from psycopg2.extensions import connection

from recommender.refresh.generations import NEXT, PENDING, schema, shown


def orphaned_activity(conn: connection, pending: bool) -> list[str]:
    """Reasons, one per kind of activity, why the next catalogue cannot take app's activity (titles it lacks)."""
    source = PENDING if pending else "app"
    reasons = []
    with conn, conn.cursor() as cur:
        for table in ("viewing_events", "ratings"):
            cur.execute(
                sql.SQL(
                    "select content_id, count(*) from {}.{} as activity where not exists"
                    " (select from {}.titles as titles where titles.content_id = activity.content_id)"
                    " group by content_id order by count(*) desc, content_id"
                ).format(sql.Identifier(source), sql.Identifier(table), sql.Identifier(schema("core", NEXT)))
            )
            rows = cur.fetchall()
            if rows:
                reasons.append(
                    f"the new catalogue orphans {sum(n for _, n in rows):,} row(s) of app.{table} written by users:"
                    f" {len(rows):,} title(s) it lacks, e.g. {shown([content_id for content_id, _ in rows])}"
                    " (keep those titles in the export, or delete that activity first)"
                )
    return reasons


def orphaned_recommendations(conn: connection, run_id: str | None) -> list[str]:
    """Why the run that would be current with the next generation cannot be (titles or users it lacks)."""
    with conn, conn.cursor() as cur:
        if run_id is None:
            cur.execute("select run_id from predictions.model_runs where is_current")
            row = cur.fetchone()
            if row is None:
                return []
            run_id = row[0]
        reasons = []
        for column, table in (("content_id", "titles"), ("user_id", "users")):
            cur.execute(
                sql.SQL(
                    "select distinct recommendations.{column} from predictions.recommendations where run_id = %s"
                    " and not exists (select from {schema}.{table} as known"
                    " where known.{column} = recommendations.{column}) order by 1"
                ).format(
                    column=sql.Identifier(column),
                    schema=sql.Identifier(schema("core", NEXT)),
                    table=sql.Identifier(table),
                ),
                (run_id,),
            )
            missing = [value for (value,) in cur.fetchall()]
            if missing:
                reasons.append(
                    f"the recommendations of run {run_id} name {len(missing):,} {column}(s) the new generation"
                    f" lacks, e.g. {shown(missing)} (train on the new generation: a refresh with a simulation does)"
                )
    return reasons


def shrinkage(
    live_counts: dict[str, int], next_counts: dict[str, int], *, max_shrink: float, same_export: bool
) -> list[str]:
    """Reasons for tables that become empty, or (same export only) shrink by more than ``max_shrink``."""
    reasons = []
    for name, before in live_counts.items():
        after = next_counts.get(name)
        if after is None or before == 0:
            continue
        if after == 0:
            reasons.append(f"{name} would become empty (it holds {before:,} rows now)")
        elif same_export and after < before * (1 - max_shrink):
            reasons.append(
                f"{name} would shrink by {1 - after / before:.0%} ({before:,} -> {after:,} rows), more than the"
                f" {max_shrink:.0%} allowed (--allow-shrink accepts a deliberate shrink, --max-shrink sets the share)"
            )
    return reasons
