"""Command line: ``python -m recommender <command>``; ``--help`` lists the commands."""

from __future__ import annotations

import argparse
import os
import sys
import time
from contextlib import closing
from datetime import date
from pathlib import Path

import psycopg2

from recommender import activity, exports, pipeline, publish, train
from recommender.countries import REFERENCE_SEED, write_reference
from recommender.dbt import run_dbt
from recommender.embedded import EmbeddedServerError, psql_path
from recommender.models import DEFAULT_MODEL, MODELS
from recommender.sample import write_sample
from recommender.simulate import SimulationConfig, simulate_into
from recommender.warehouse import (
    PROJECT_ROOT,
    Target,
    embedded_server,
    ensure_database,
    target_from_env,
)


def _warehouse() -> Target:
    """The target the environment selects, its database created if missing (and the embedded server started)."""
    target = target_from_env()
    if target.embedded:
        embedded_server().start()
    ensure_database(target)
    return target


def cmd_run(args: argparse.Namespace) -> int:
    summary = pipeline.run(_warehouse(), args.raw_data_dir)
    print(summary.render())
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    config = SimulationConfig(
        users=args.users, days=args.days, seed=args.seed, start=args.start, first_user_id=args.first_user_id
    )
    target = _warehouse()
    started = time.perf_counter()
    with closing(target.connect()) as conn:
        activity.ensure_schema(conn)
        simulation, results = simulate_into(conn, config, replace=args.replace, progress=True)
    if args.truth:
        simulation.truth.to_csv(args.truth, index=False)
    for result in results:
        print(result)
    print(
        f"simulated {len(simulation.users):,} users and {len(simulation.events):,} events"
        f" in {time.perf_counter() - started:.1f} s{f'; tastes in {args.truth}' if args.truth else ''}"
    )
    return 0


def _rank_count(text: str) -> int:
    """``--k`` of train: checked before any work, not after fitting."""
    k = int(text)
    if not 1 <= k <= 1000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 1000, not {k}")
    return k


def cmd_train(args: argparse.Namespace) -> int:
    with closing(_warehouse().connect()) as conn:
        print(train.train(conn, args.model, k=args.k))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    with closing(_warehouse().connect()) as conn:
        print(f"current recommendations: run {publish.rollback(conn)}")
    return 0


def cmd_check_export(args: argparse.Namespace) -> int:
    with closing(_warehouse().connect()) as conn:
        counts = exports.check(conn, exports.locate(args.folder))
    for seed, rows in counts.items():
        print(f"{seed}: {rows:,} rows")
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    counts = write_sample(args.out, n_titles=args.titles, seed=args.seed)
    print(", ".join(f"{name} {rows:,}" for name, rows in counts.items()), f"rows written to {args.out}")
    print(f"{write_reference():,} countries written to {REFERENCE_SEED}")
    return 0


def cmd_docs(args: argparse.Namespace) -> int:
    result = run_dbt(["docs", "generate"], _warehouse())
    if result.returncode == 0:
        print(
            f"dbt docs site: {PROJECT_ROOT / 'target' / 'index.html'} (or: source .venv/bin/activate; dbt docs serve)"
        )
    return result.returncode


def cmd_server(args: argparse.Namespace) -> int:
    server = embedded_server()
    if args.action == "start":
        changed = server.start()
    elif args.action == "stop":
        changed = server.stop()
    else:
        changed = False
    state = "running" if server.is_running() else "stopped"
    print(f"embedded PostgreSQL in {server.pgdata}: {state}{' (now)' if changed else ''}, 127.0.0.1:{server.port}")
    return 0


def cmd_dsn(args: argparse.Namespace) -> int:
    print(_warehouse().uri())
    return 0


def cmd_psql(args: argparse.Namespace) -> int:
    target = _warehouse()
    os.execve(psql_path(), ["psql", target.uri(), *args.extra], {**os.environ, **target.env()})


def cmd_evaluate(args: argparse.Namespace) -> int:
    # imported here, not at the top: only this command needs matplotlib and the MovieLens reader
    import pandas as pd

    from recommender import evaluate, movielens

    started = time.perf_counter()
    split = args.split or ("stratified" if args.movielens else "temporal")
    by = args.by or ("item" if args.movielens and split == "stratified" else "user")
    names = [name.strip() for name in args.models.split(",") if name.strip()] if args.models else list(MODELS)
    truth = title_features = None
    try:
        if args.movielens:
            if args.truth:
                raise ValueError("--truth scores simulated users; it does not apply to --movielens")
            interactions, source = movielens.load_ratings(args.movielens), f"MovieLens ratings in {args.movielens}"
            try:
                features = movielens.load_items(args.movielens)
            except movielens.MissingFileError:
                features = None  # no item file beside the ratings: the content model is skipped
        else:
            with closing(_warehouse().connect()) as conn:
                interactions, title_features = evaluate.warehouse_interactions(conn), evaluate.title_features(conn)
            if interactions.empty:
                raise LookupError("marts.ml_interactions is empty: run `make run` (or simulate, then dbt build) first")
            source, features = "the warehouse's marts.ml_interactions", evaluate.content_features(title_features)
            truth = pd.read_csv(args.truth) if args.truth else None
        report = evaluate.run(
            interactions,
            names,
            evaluate.Protocol(split=split, by=by, ratio=args.ratio, seed=args.seed, k=args.k),
            source=source,
            title="MovieLens evaluation" if args.movielens else "Warehouse evaluation",
            out_dir=args.out,
            features=features,
            truth=truth,
            title_features=title_features,
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(evaluate.markdown_table(report.results))
    for name, why in report.skipped.items():
        print(f"skipped {name}: {why}")
    print(
        f"evaluated {len(report.results)} models on {report.results.users.max() if len(report.results) else 0:,}"
        f" test users in {time.perf_counter() - started:.1f} s; report: {report.md_path} (chart {report.png_path})"
    )
    return 0


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m recommender", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="check the raw export, dbt build, print a summary")
    run.add_argument("--raw-data-dir", type=Path, help="folder of a catalogue export (default: the committed sample)")
    run.set_defaults(func=cmd_run)

    sim = commands.add_parser("simulate", help="simulate users and viewing, write them to app.*")
    sim.add_argument("--users", type=int, default=SimulationConfig.users)
    sim.add_argument("--days", type=int, default=SimulationConfig.days)
    sim.add_argument("--seed", type=int, default=SimulationConfig.seed)
    sim.add_argument("--start", type=date.fromisoformat, default=SimulationConfig.start, help="first day, YYYY-MM-DD")
    sim.add_argument("--first-user-id", type=int, default=SimulationConfig.first_user_id)
    sim.add_argument("--truth", type=Path, help="write each user's latent taste to this CSV file")
    sim.add_argument("--replace", action="store_true", help="replace what these user ids hold from another simulation")
    sim.set_defaults(func=cmd_simulate)

    fit = commands.add_parser("train", help="fit a recommender on the marts, evaluate it, publish top-k per user")
    fit.add_argument("--model", default=DEFAULT_MODEL, choices=list(MODELS), help=f"default: {DEFAULT_MODEL}")
    fit.add_argument("--k", type=_rank_count, default=20, help="recommendations per user, 1 to 1000 (default 20)")
    fit.set_defaults(func=cmd_train)

    commands.add_parser("rollback", help="make the previous published run current again").set_defaults(
        func=cmd_rollback
    )

    check = commands.add_parser("check-export", help="check an export folder without loading it")
    check.add_argument("folder", type=Path)
    check.set_defaults(func=cmd_check_export)

    sample = commands.add_parser("sample", help="write the generated sample export")
    sample.add_argument("--out", type=Path, default=exports.SAMPLE_DIR)
    sample.add_argument("--titles", type=int, default=600)
    sample.add_argument("--seed", type=int, default=42)
    sample.set_defaults(func=cmd_sample)

    commands.add_parser("docs", help="build the dbt docs site into target/").set_defaults(func=cmd_docs)

    server = commands.add_parser("server", help="start, stop or show the embedded PostgreSQL")
    server.add_argument("action", choices=("start", "stop", "status"))
    server.set_defaults(func=cmd_server)

    commands.add_parser("dsn", help="print a libpq URI of the warehouse").set_defaults(func=cmd_dsn)

    psql = commands.add_parser("psql", help="open psql on the warehouse; further arguments go to psql")
    psql.set_defaults(func=cmd_psql, passes_extra=True)

    ev = commands.add_parser("evaluate", help="fit models on a train split, score them on the rest, write a report")
    ev.add_argument("--movielens", type=Path, help="MovieLens ratings (file, folder, zip or RecBole wheel)")
    ev.add_argument("--split", choices=("stratified", "temporal"), help="default: stratified (MovieLens), temporal")
    ev.add_argument("--by", choices=("item", "user"), help="per item or user (default: item for MovieLens stratified)")
    ev.add_argument("--ratio", type=float, default=0.75, help="train share of each user's (item's) interactions")
    ev.add_argument("--seed", type=int, default=42, help="seed of the stratified split")
    ev.add_argument("--k", type=int, default=10, help="length of the recommendation lists")
    ev.add_argument("--models", help="comma separated names (default: every model in recommender.models.MODELS)")
    ev.add_argument("--truth", type=Path, help="tastes CSV of `simulate --truth`: adds the taste score")
    ev.add_argument("--out", type=Path, default=PROJECT_ROOT / "target" / "evaluation", help="report folder")
    ev.set_defaults(func=cmd_evaluate)
    return root


def main(argv: list[str] | None = None) -> int:
    root = parser()
    args, args.extra = root.parse_known_args(argv)
    if args.extra and not getattr(args, "passes_extra", False):
        root.error(f"unrecognized arguments: {' '.join(args.extra)}")
    try:
        return args.func(args)
    except (
        exports.ExportError,
        pipeline.PipelineError,
        activity.BatchError,
        train.TrainError,
        publish.PublishError,
        EmbeddedServerError,
        LookupError,
        psycopg2.Error,
    ) as exc:
        print(f"error: {exc}".rstrip(), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
