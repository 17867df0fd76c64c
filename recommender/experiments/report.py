"""An experiment's report: its definition, the arms' summary with confidence intervals and lift, and a chart of
each daily metric, from the marts dbt builds (``marts.experiment_summary``, ``marts.experiment_daily_metrics``).

    path = write_report(conn, experiment_id, "target/experiments/1")   # report.md and one PNG per metric

``python -m recommender experiment report ID`` writes it. The marts are read by column name:
columns they add are ignored, and a metric they lack is left out (a dash in the table, no chart).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from psycopg2.extensions import connection

from recommender.activity import experiments
from recommender.errors import MissingError
from recommender.warehouse.targets import read_table

SUMMARY = "marts.experiment_summary"
DAILY = "marts.experiment_daily_metrics"
BUILD_FIRST = "run `dbt build` (or `make run`) after the experiment's activity is written"

# the summary table: (heading, column, its CI's low and high columns or None, how a value is shown)
SUMMARY_COLUMNS: list[tuple[str, str, tuple[str, str] | None, str]] = [
    ("users", "users", None, "count"),
    ("watch min / user [95% CI]", "watch_minutes_per_user", ("watch_minutes_ci_low", "watch_minutes_ci_high"), "1"),
    ("lift in watch min [95% CI]", "lift_watch_minutes", ("lift_ci_low", "lift_ci_high"), "percent"),
    ("click-through", "click_through", None, "percent"),
    ("completions / user", "completions_per_user", None, "2"),
    ("retention, last day", "retention_last_day", None, "percent"),
    ("churn", "churn_rate", None, "percent"),
    ("slate share", "slate_share", None, "percent"),
    ("catalogue coverage", "catalogue_coverage", None, "percent"),
    ("exposure Gini", "exposure_gini", None, "3"),
    ("intra-list diversity", "intra_list_diversity", None, "3"),
    ("homogenization, last day", "homogenization_last_day", None, "3"),
    ("regret / slate", "regret_per_slate", None, "3"),
]

# the daily metrics charted, one chart each: column, title, y axis label
DAILY_METRICS: list[tuple[str, str, str]] = [
    ("users_assigned", "Users assigned", "users"),
    ("active_users", "Active users", "users who watched that day"),
    ("retention", "Retention", "share of assigned users active"),
    ("churned_users", "Churned users", "users"),
    ("slates", "Slates shown", "slates"),
    ("impressions", "Impressions", "titles shown"),
    ("clicks", "Clicks", "impressions followed by a viewing"),
    ("click_through", "Click-through rate", "clicks per impression"),
    ("watch_minutes_per_user", "Watch minutes per user", "minutes per assigned user"),
    ("completions_per_user", "Completions per user", "completed titles per assigned user"),
    ("slate_share", "Slate share of viewing", "share of viewings that followed a slate"),
    ("catalogue_coverage", "Catalogue coverage", "share of the catalogue shown"),
    ("exposure_gini", "Exposure Gini", "Gini coefficient of impressions per title"),
    ("intra_list_diversity", "Intra-list diversity", "mean dissimilarity within a slate"),
    ("homogenization", "Homogenization", "similarity of users' slates"),
    ("regret", "Regret", "oracle slate's utility minus the shown slate's"),
]

HOW_TO_READ = """\
- **users**: users assigned to the arm (by a hash of experiment and user, in the arms' shares).
- **watch min / user**: minutes watched over the experiment per assigned user, with its 95% confidence interval;
  intervals of two arms that do not overlap suggest a real difference.
- **lift**: the arm's watch minutes per user relative to the control's (+5% is 5% more), with its 95% interval;
  an interval that excludes 0 is a significant difference. The control has none.
- **click-through**: impressions followed by a viewing of that title, per impression.
- **completions / user**: titles watched to the end per assigned user.
- **retention, last day** / **churn**: share of the arm's users still active on the last day / who stopped.
- **slate share**: share of viewing that followed something the arm showed (the rest came from elsewhere).
- **catalogue coverage**: share of the catalogue the arm ever showed; low means a narrow arm.
- **exposure Gini**: how unequally impressions fall on titles (0: all alike, 1: one title gets everything).
- **intra-list diversity**: how different the titles of one slate are from each other (higher: more varied).
- **homogenization**: how alike different users' slates are (higher: everyone sees the same).
- **regret / slate**: the best possible slate's utility to the user (by the simulator's hidden tastes) minus the
  shown slate's; lower is better, 0 is perfect. Only simulated experiments have it.
"""


def _exists(conn: connection, name: str) -> bool:
    with conn.cursor() as cur:
        cur.execute("select to_regclass(%s) is not null", (name,))
        (found,) = cur.fetchone()
    conn.rollback()
    return bool(found)


def _rows(conn: connection, name: str, experiment_id: int) -> pd.DataFrame:
    if not _exists(conn, name):
        raise MissingError(f"{name} is not in the warehouse: {BUILD_FIRST}")
    rows = read_table(conn, name, where={"experiment_id": experiment_id})
    conn.rollback()
    if rows.empty:
        raise MissingError(f"{name} has no rows of experiment {experiment_id}: {BUILD_FIRST}")
    return rows


def _status(conn: connection, experiment_id: int) -> str:
    with conn.cursor() as cur:
        cur.execute("select status from app.experiments where experiment_id = %s", (experiment_id,))
        (status,) = cur.fetchone()
    conn.rollback()
    return status


def _number(value: object, style: str, signed: bool = False) -> str:
    if value is None or pd.isna(value):  # type: ignore[call-overload]
        return "—"
    number = float(value)  # type: ignore[arg-type]
    if signed:
        return f"{number:+.1%}"
    if style == "count":
        return f"{number:,.0f}"
    if style == "percent":
        return f"{number:.1%}"
    return f"{number:,.{int(style)}f}"


def _cell(row: pd.Series, column: str, interval: tuple[str, str] | None, style: str) -> str:
    signed = column == "lift_watch_minutes"  # a lift reads as a change: +5.0%, -2.1%
    shown = _number(row.get(column), style, signed)
    if interval is not None and shown != "—":
        low, high = (_number(row.get(bound), style, signed) for bound in interval)
        if "—" not in (low, high):
            shown += f" [{low}, {high}]"
    return shown


def _ordered(frame: pd.DataFrame, control: str) -> pd.DataFrame:
    """The control arm first, then the others by name."""
    return frame.assign(_first=frame["arm"] != control).sort_values(["_first", "arm"]).drop(columns="_first")


def summary_table(summary: pd.DataFrame, control: str) -> str:
    """The arms' summary as a markdown table, one row per arm (the control first, marked)."""
    headings = ["arm", *(heading for heading, _, _, _ in SUMMARY_COLUMNS)]
    lines = ["| " + " | ".join(headings) + " |", "|" + "---|" * len(headings)]
    for _, row in _ordered(summary, control).iterrows():
        name = f"{row['arm']} (control)" if row["arm"] == control else str(row["arm"])
        cells = [_cell(row, column, interval, style) for _, column, interval, style in SUMMARY_COLUMNS]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def _definition(experiment: experiments.Experiment, status: str) -> str:
    lines = [
        f"- experiment id: {experiment.experiment_id}; status: {status}",
        f"- first day: {experiment.first_day.isoformat()}; days: {experiment.days}; seed: {experiment.seed}",
        f"- configuration: `{json.dumps(experiment.configuration, sort_keys=True)}`",
        "",
        "| arm | model or run | parameters | share | control |",
        "|---|---|---|---|---|",
    ]
    for arm in sorted(experiment.arms, key=lambda arm: (arm.arm != experiment.control, arm.arm)):
        variant = arm.model if arm.model is not None else f"run {arm.run_id}"
        parameters = f"`{json.dumps(arm.parameters, sort_keys=True)}`" if arm.parameters else "—"
        control = "yes" if arm.arm == experiment.control else ""
        lines.append(f"| {arm.arm} | {variant} | {parameters} | {arm.share:.1%} | {control} |")
    return "\n".join(lines)


def _chart(daily: pd.DataFrame, column: str, title: str, label: str, control: str, path: Path) -> None:
    # imported here: matplotlib takes a second to import, and only a report draws
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 4.5), layout="tight")  # the Agg canvas, no pyplot: nothing global, never a window
    FigureCanvasAgg(figure)
    axis = figure.subplots()
    for arm in _ordered(daily[["arm"]].drop_duplicates(), control)["arm"]:
        rows = daily[daily["arm"] == arm].sort_values("day")
        axis.plot(
            rows["day"].to_numpy(dtype=float),
            rows[column].to_numpy(dtype=float),
            marker="o" if len(rows) <= 31 else None,
            linewidth=2.5 if arm == control else 1.5,
            label=f"{arm} (control)" if arm == control else str(arm),
        )
    axis.set_title(title)
    axis.set_xlabel("day of the experiment")
    axis.set_ylabel(label)
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    figure.savefig(path, dpi=100)


def summary_of(conn: connection, experiment_id: int) -> str:
    """The experiment's arms beside its control, as the report's markdown table (from marts.experiment_summary)."""
    return summary_table(_rows(conn, SUMMARY, experiment_id), experiments.read_experiment(conn, experiment_id).control)


def write_report(conn: connection, experiment_id: int, out_dir: str | Path) -> Path:
    """Write ``out_dir/report.md`` and a PNG per daily metric (``daily_<metric>.png``); the markdown's path.

    MissingError if the experiment is not registered, or the marts hold none of its rows
    (build them first: ``dbt build`` or ``make run``).
    """
    try:
        experiment = experiments.read_experiment(conn, experiment_id)
    except MissingError as exc:
        raise MissingError(f"{exc}: run it first (`make run`, or an experiment run), then `dbt build`") from None
    status = _status(conn, experiment_id)
    summary, daily = _rows(conn, SUMMARY, experiment_id), _rows(conn, DAILY, experiment_id)
    for name, frame, needed in ((SUMMARY, summary, ["arm"]), (DAILY, daily, ["arm", "day"])):
        if missing := [column for column in needed if column not in frame.columns]:
            raise MissingError(f"{name} has no column {', '.join(missing)}: {BUILD_FIRST}")
    control = experiment.control
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    charts = []
    for column, title, label in DAILY_METRICS:
        if column in daily.columns and daily[column].notna().any():
            path = out_dir / f"daily_{column}.png"
            _chart(daily, column, f"{title} by day", label, control, path)
            charts.append((title, path))
    days = int(pd.to_numeric(daily["day"]).nunique())
    text = [
        f"# Experiment {experiment.experiment_id}: {experiment.name}",
        "",
        "## Definition",
        "",
        _definition(experiment, status),
        "",
        "## Summary by arm",
        "",
        f"Over {days} day(s) of activity, from {SUMMARY}; the control is {control}.",
        "",
        summary_table(summary, control),
        "",
        "### How to read it",
        "",
        HOW_TO_READ,
        "## Daily metrics",
        "",
        f"One line per arm over the experiment's days, from {DAILY}.",
        "",
        *[f"### {title}\n\n![{title} by day]({path.name})\n" for title, path in charts],
    ]
    report = out_dir / "report.md"
    report.write_text("\n".join(text), encoding="utf-8")
    return report
