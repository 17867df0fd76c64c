"""Experiments: ``experiment run`` runs a closed-loop experiment, ``experiment report ID`` writes its report."""

from __future__ import annotations

import argparse
from contextlib import closing
from pathlib import Path

from recommender.cli.connect import bounded, warehouse
from recommender.experiments.arms import parse_arms
from recommender.experiments.choice import ChoiceModel
from recommender.experiments.config import DEFAULT_ARMS, LoopConfig
from recommender.experiments.loop import ExperimentError, run_experiment
from recommender.warehouse import progress
from recommender.warehouse.dbt import failures, run_dbt
from recommender.warehouse.targets import PROJECT_ROOT

REPORTS = PROJECT_ROOT / "target" / "experiments"


# what a finished experiment's marts are built from: app's activity and everything downstream
MARTS = ["build", "--select", "source:app+"]
# after a replace: rows the deleted experiment left in the incremental models go too
FULL = ["--full-refresh"]


def cmd_run(args: argparse.Namespace) -> int:
    config = LoopConfig(
        arms=parse_arms(args.arms),
        users=args.users,
        days=args.days,
        retrain_every=args.retrain_every,
        seed=args.seed,
        warmup_days=args.warmup_days,
        slate_size=args.slate_size,
        control=args.control,
        choice=ChoiceModel(position_bias=args.position_bias),
    )
    if args.replace and args.experiment_id is None:
        raise ExperimentError("--replace needs --experiment-id: the experiment to run again in its place")
    target = warehouse()
    result = run_experiment(
        target,
        config,
        experiment_id=args.experiment_id,
        first_user_id=args.first_user_id,
        name=args.name,
        replace_existing=args.replace,
    )
    print(result)
    if args.no_build:
        print(f"marts not built: run `dbt {' '.join(MARTS)}`, then `experiment report {result.experiment_id}`")
        return 0
    with progress.phase("experiment", "build", "the activity and experiment marts, with their tests", heartbeat=True):
        built = run_dbt(MARTS + (FULL if args.replace else []), target, capture=True)
    if built.returncode != 0:
        raise ExperimentError(f"dbt {' '.join(MARTS)} failed: " + "; ".join(failures()))
    from recommender.experiments.report import summary_of  # matplotlib only where a report is made

    with closing(target.connect()) as conn:
        print(summary_of(conn, result.experiment_id))
    print(f"charts: python -m recommender experiment report {result.experiment_id}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    # imported here, not at the top: only this command needs matplotlib
    from recommender.experiments.report import write_report

    out = args.out if args.out is not None else REPORTS / str(args.experiment_id)
    with closing(warehouse().connect()) as conn:
        path = write_report(conn, args.experiment_id, out)
    print(f"experiment {args.experiment_id}: report written to {path} (with its charts in {path.parent})")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("experiment", help="closed-loop experiments: run one, report on one")
    actions = group.add_subparsers(dest="action", required=True)
    run = actions.add_parser(
        "run", help="simulated users respond to each arm's slates; each arm retrains on its users (the loop)"
    )
    run.add_argument(
        "--arms", default=DEFAULT_ARMS, help="comma-separated: model, name=model, name=model:once or name=run:RUN_ID"
    )
    run.add_argument(
        "--users", type=bounded(int, 1, 10_000_000), default=LoopConfig.users, help="users, split between the arms"
    )
    run.add_argument("--days", type=bounded(int, 1, 3660), default=LoopConfig.days, help="days of slates")
    run.add_argument(
        "--retrain-every",
        type=bounded(int, 0, 3660),
        default=LoopConfig.retrain_every,
        help="days between an arm's trainings (0: on day 0 only)",
    )
    run.add_argument("--seed", type=int, default=LoopConfig.seed, help="seed of every random draw")
    run.add_argument(
        "--warmup-days",
        type=bounded(int, 1, 3660),
        default=LoopConfig.warmup_days,
        help="days of organic viewing before day 0 (the first training's data)",
    )
    run.add_argument(
        "--slate-size",
        type=bounded(int, 0, 100),
        default=LoopConfig.slate_size,
        help="titles per slate (0: no slates, the open-loop simulator)",
    )
    run.add_argument(
        "--position-bias",
        type=bounded(float, 0, 100),
        default=ChoiceModel.position_bias,
        help="utility a title loses per doubling of its position",
    )
    run.add_argument("--control", help="the arm the others are compared with (default: the first)")
    run.add_argument(
        "--experiment-id", type=bounded(int, 1, 2**62), help="the experiment's id (default: the next free one)"
    )
    run.add_argument(
        "--first-user-id",
        type=bounded(int, 1, 2**62),
        help="the users' ids count up from it (default: after the largest in app.users)",
    )
    run.add_argument("--name", help="the experiment's name (default: its arms and size)")
    run.add_argument("--replace", action="store_true", help="delete experiment --experiment-id and its users first")
    run.add_argument("--no-build", action="store_true", help="do not build the marts after the loop")
    run.set_defaults(func=cmd_run)
    report = actions.add_parser(
        "report", help="write an experiment's report (markdown and charts) from the marts dbt built"
    )
    report.add_argument("experiment_id", type=bounded(int, 1, 2**63 - 1), help="the experiment's id")
    report.add_argument(
        "--out", type=Path, help="the report's folder (default: target/experiments/<experiment_id> in the project)"
    )
    report.set_defaults(func=cmd_report)
