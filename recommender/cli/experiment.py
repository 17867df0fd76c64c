"""Experiments: ``experiment report ID`` writes an experiment's report from the marts (more actions to come)."""

from __future__ import annotations

import argparse
from contextlib import closing
from pathlib import Path

from recommender.cli.connect import bounded, warehouse
from recommender.warehouse.targets import PROJECT_ROOT

REPORTS = PROJECT_ROOT / "target" / "experiments"


def cmd_report(args: argparse.Namespace) -> int:
    # imported here, not at the top: only this command needs matplotlib
    from recommender.experiments.report import write_report

    out = args.out if args.out is not None else REPORTS / str(args.experiment_id)
    with closing(warehouse().connect()) as conn:
        path = write_report(conn, args.experiment_id, out)
    print(f"experiment {args.experiment_id}: report written to {path} (with its charts in {path.parent})")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("experiment", help="closed-loop experiments: their reports")
    actions = group.add_subparsers(dest="action", required=True)
    report = actions.add_parser(
        "report", help="write an experiment's report (markdown and charts) from the marts dbt built"
    )
    report.add_argument("experiment_id", type=bounded(int, 1, 2**63 - 1), help="the experiment's id")
    report.add_argument(
        "--out", type=Path, help="the report's folder (default: target/experiments/<experiment_id> in the project)"
    )
    report.set_defaults(func=cmd_report)
