"""Recommenders: train and publish, roll back, evaluate."""

from __future__ import annotations

import argparse
import time
from contextlib import closing
from pathlib import Path

from recommender.api.client import ApiClient
from recommender.cli.connect import api_client, bounded, warehouse
from recommender.errors import InvalidArgumentError, MissingError
from recommender.ml import publish, train
from recommender.ml.algorithms import DEFAULT_MODEL, MODELS
from recommender.warehouse.targets import PROJECT_ROOT


def cmd_train(args: argparse.Namespace) -> int:
    with api_client(args) or closing(warehouse().connect()) as source:
        if isinstance(source, ApiClient):  # the whole run over HTTP, as the key's login
            print(train.train(None, args.model, k=args.k, read=source.read_table, runs=source))
        else:
            print(train.train(source, args.model, k=args.k))
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    with closing(warehouse().connect()) as conn:
        print(f"current recommendations: run {publish.rollback(conn)}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    # imported here, not at the top: only this command needs matplotlib and the MovieLens reader
    import pandas as pd

    from recommender.ml import data, evaluate, movielens, sweep
    from recommender.ml import report as report_tables

    started = time.perf_counter()
    files = args.movielens or args.datasets
    split = args.split or ("stratified" if files else "temporal")
    by = args.by or ("item" if files and split == "stratified" else "user")
    protocol = evaluate.Protocol(split=split, by=by, ratio=args.ratio, seed=args.seed, k=args.k)
    names = [name.strip() for name in args.models.split(",") if name.strip()] if args.models else list(MODELS)
    if args.datasets:
        if args.movielens or args.truth:
            raise InvalidArgumentError(
                "--datasets reads its own files and has no simulated tastes: drop --movielens and --truth"
            )
        swept = sweep.sweep(
            args.datasets, protocol, args.out, names if args.models else sweep.SWEEP_MODELS, repeats=args.repeats
        )
        print(report_tables.markdown_table(swept.results))
        for (data, where), summary in swept.tunings.items():
            print(f"{data}, {where}: {summary}")
        print(
            f"evaluated {len(args.datasets)} data sets in {time.perf_counter() - started:.1f} s; table: {swept.md_path}"
        )
        return 0
    truth = title_features = None
    if args.movielens:
        if args.truth:
            raise InvalidArgumentError("--truth scores simulated users; it does not apply to --movielens")
        interactions, source = movielens.load_ratings(args.movielens), f"MovieLens ratings in {args.movielens}"
        try:
            features = movielens.load_items(args.movielens)
        except movielens.MissingFileError:
            features = None  # no item file beside the ratings: the content model is skipped
    else:
        with closing(warehouse().connect()) as conn:
            interactions, title_features = data.warehouse_interactions(conn), data.title_features(conn)
        if interactions.empty:
            raise MissingError("marts.ml_interactions is empty: run `make run` (or simulate, then dbt build) first")
        source, features = "the warehouse's marts.ml_interactions", data.content_features(title_features)
        truth = pd.read_csv(args.truth) if args.truth else None
    report = evaluate.run(
        interactions,
        names,
        protocol,
        source=source,
        title="MovieLens evaluation" if args.movielens else "Warehouse evaluation",
        out_dir=args.out,
        features=features,
        truth=truth,
        title_features=title_features,
        repeats=args.repeats,
    )
    print(report_tables.markdown_table(report.results))
    for name, why in report.skipped.items():
        print(f"skipped {name}: {why}")
    print(
        f"evaluated {len(report.results)} models on {report.results.users.max() if len(report.results) else 0:,}"
        f" test users in {time.perf_counter() - started:.1f} s; report: {report.md_path} (chart {report.png_path})"
    )
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    fit = commands.add_parser("train", help="fit a recommender on the marts, evaluate it, publish top-k per user")
    fit.add_argument("--model", default=DEFAULT_MODEL, choices=list(MODELS), help="the algorithm")
    fit.add_argument("--k", type=bounded(int, 1, 1000), default=20, help="recommendations per user, 1 to 1000")
    fit.add_argument(
        "--api",
        metavar="URL",
        help="read the marts and publish through the HTTP API at URL, a data_scientist key in NETFLIX_API_KEY"
        " (default: a direct connection to the warehouse)",
    )
    fit.set_defaults(func=cmd_train)

    commands.add_parser("rollback", help="make the previous published run current again").set_defaults(
        func=cmd_rollback
    )

    ev = commands.add_parser("evaluate", help="fit models on a train split, score them on the rest, write a report")
    ev.add_argument(
        "--movielens",
        type=Path,
        help="MovieLens ratings: file, folder, zip or RecBole wheel (default: the warehouse's interactions)",
    )
    ev.add_argument(
        "--datasets",
        type=Path,
        nargs="+",
        metavar="PATH",
        help="ratings files (any --movielens layout): one table of the default (tuned and not), each component and"
        " popularity on every file; with one file, leave-last-out is run on it too (default: none)",
    )
    ev.add_argument(
        "--split",
        choices=("stratified", "temporal", "leave_last"),
        help="how to split (default: stratified for MovieLens and --datasets, else temporal); leave_last: each"
        " user's latest interaction tests",
    )
    ev.add_argument(
        "--by",
        choices=("item", "user"),
        help="split per item or per user (default: item for MovieLens stratified, else user)",
    )
    ev.add_argument("--ratio", type=float, default=0.75, help="train share of each user's (item's) interactions")
    ev.add_argument("--seed", type=int, default=42, help="seed of the stratified split")
    ev.add_argument("--k", type=int, default=10, help="length of the recommendation lists")
    ev.add_argument(
        "--repeats", type=bounded(int, 1, 100), default=1, help="fits per model, 1 to 100; times are their medians"
    )
    ev.add_argument("--models", help="comma separated names (default: every model in recommender.ml.algorithms.MODELS)")
    ev.add_argument("--truth", type=Path, help="tastes CSV of simulate --truth: adds the taste score (default: none)")
    ev.add_argument("--out", type=Path, default=PROJECT_ROOT / "target" / "evaluation", help="report folder")
    ev.set_defaults(func=cmd_evaluate)
