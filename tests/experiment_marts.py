"""Hand-made rows of the experiment marts (``marts.experiment_summary``, ``marts.experiment_daily_metrics``).

dbt builds them from ``app``; tests of what reads them (the API, the report) make them here as
plain tables, in place of dbt's, with the columns the readers rely on and one extra they must ignore.
"""

from __future__ import annotations

from contextlib import closing
from datetime import date, timedelta

from psycopg2 import sql

from recommender.warehouse.targets import Target

SUMMARY_COLUMNS = {
    "experiment_id": "bigint",
    "arm": "text",
    "is_control": "boolean",
    "users": "bigint",
    "watch_minutes_per_user": "double precision",
    "watch_minutes_ci_low": "double precision",
    "watch_minutes_ci_high": "double precision",
    "lift_watch_minutes": "double precision",
    "lift_ci_low": "double precision",
    "lift_ci_high": "double precision",
    "click_through": "double precision",
    "completions_per_user": "double precision",
    "retention_last_day": "double precision",
    "churn_rate": "double precision",
    "slate_share": "double precision",
    "catalogue_coverage": "double precision",
    "exposure_gini": "double precision",
    "intra_list_diversity": "double precision",
    "homogenization_last_day": "double precision",
    "regret_per_slate": "numeric",
    "an_extra_column": "text",  # readers take columns by name and ignore the others
}
DAILY_METRICS = (
    "users_assigned",
    "active_users",
    "retention",
    "churned_users",
    "slates",
    "impressions",
    "clicks",
    "click_through",
    "watch_minutes_per_user",
    "completions_per_user",
    "slate_share",
    "catalogue_coverage",
    "exposure_gini",
    "intra_list_diversity",
    "homogenization",
    "regret",
)
DAILY_COLUMNS = {
    "experiment_id": "bigint",
    "arm": "text",
    "day": "integer",
    "date": "date",
    "is_control": "boolean",
    **{metric: "double precision" for metric in DAILY_METRICS},
    "an_extra_column": "text",
}


def _ensure(cur: object, table: str, columns: dict[str, str]) -> None:
    """The plain table, in place of the mart dbt built in the test's warehouse (whose columns are all not null)."""
    definition = sql.SQL(", ").join(
        sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(kind)) for name, kind in columns.items()
    )
    cur.execute("create schema if not exists marts")
    cur.execute(
        "select from information_schema.columns"
        " where table_schema = 'marts' and table_name = %s and column_name = 'an_extra_column'",
        (table,),
    )
    if cur.fetchone() is None:
        cur.execute(sql.SQL("drop table if exists marts.{}").format(sql.Identifier(table)))
    cur.execute(sql.SQL("create table if not exists marts.{} ({})").format(sql.Identifier(table), definition))


def summary_row(experiment_id: int, arm: str, is_control: bool, scale: float = 1.0) -> dict[str, object]:
    row: dict[str, object] = {name: round(0.1 * scale * (n + 1), 4) for n, name in enumerate(SUMMARY_COLUMNS)}
    return row | {
        "experiment_id": experiment_id,
        "arm": arm,
        "is_control": is_control,
        "users": int(100 * scale),
        "lift_watch_minutes": None if is_control else 0.05 * scale,
        "an_extra_column": "ignored",
    }


def write_summary(target: Target, rows: list[dict[str, object]]) -> None:
    """``rows`` into marts.experiment_summary (made if missing), replacing those of their experiments."""
    _write(target, "experiment_summary", SUMMARY_COLUMNS, rows)


def daily_rows(experiment_id: int, arms: dict[str, bool], days: int, first_day: date) -> list[dict[str, object]]:
    """``days`` rows per arm (``arms``: name to is_control), each metric a different line per arm."""
    return [
        {
            "experiment_id": experiment_id,
            "arm": arm,
            "day": day,
            "date": first_day + timedelta(days=day),
            "is_control": is_control,
            **{
                metric: (n + 1) * (1 + 0.1 * day) + (0 if is_control else 0.5) for n, metric in enumerate(DAILY_METRICS)
            },
            "an_extra_column": "ignored",
        }
        for arm, is_control in arms.items()
        for day in range(days)
    ]


def write_daily(target: Target, rows: list[dict[str, object]]) -> None:
    """``rows`` into marts.experiment_daily_metrics (made if missing), replacing those of their experiments."""
    _write(target, "experiment_daily_metrics", DAILY_COLUMNS, rows)


def _write(target: Target, table: str, columns: dict[str, str], rows: list[dict[str, object]]) -> None:
    with closing(target.connect()) as conn, conn, conn.cursor() as cur:
        _ensure(cur, table, columns)
        experiments = sorted({row["experiment_id"] for row in rows})
        cur.execute(
            sql.SQL("delete from marts.{} where experiment_id = any(%s)").format(sql.Identifier(table)), (experiments,)
        )
        for row in rows:
            names = [name for name in columns if name in row]
            cur.execute(
                sql.SQL("insert into marts.{} ({}) values ({})").format(
                    sql.Identifier(table),
                    sql.SQL(", ").join(map(sql.Identifier, names)),
                    sql.SQL(", ").join(sql.Placeholder() * len(names)),
                ),
                [row[name] for name in names],
            )
