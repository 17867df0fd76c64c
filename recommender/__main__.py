"""Command line: ``python -m recommender <command>``; ``--help`` lists the commands."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import asdict
from datetime import date
from pathlib import Path

import psycopg2

from recommender import activity, exports, generations, logins, pipeline, publish, train, watchdog
from recommender.api import keys
from recommender.api.client import ApiClient, ApiError
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
    start_embedded,
    target_from_env,
)


def _warehouse() -> Target:
    """The target the environment selects, its database created if missing (and the embedded server started)."""
    target = target_from_env()
    if target.embedded:
        start_embedded(embedded_server())
    ensure_database(target)
    return target


def cmd_run(args: argparse.Namespace) -> int:
    summary = pipeline.run(_warehouse(), args.raw_data_dir, max_shrink=args.max_shrink, allow_shrink=args.allow_shrink)
    print(summary.render())
    return 0


def cmd_warehouse(args: argparse.Namespace) -> int:
    with closing(_warehouse().connect()) as conn:
        if args.action == "rollback":
            restored = generations.rollback(conn)
            generations.link_live_export(conn, generations.EXPORTS_DIR)
            print(f"live generation: {restored.id} ({restored.export}), recommendations run {restored.run_id}")
            return 0
        for label, generation in (("live", generations.live(conn)), ("previous", generations.previous(conn))):
            print(f"{label}: {json.dumps(asdict(generation), indent=2) if generation else 'none'}")
    return 0


def _bounded(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], float]:
    """An argparse type: a number of ``kind`` in [low, high], checked before any work is done."""

    def parse(text: str) -> float:
        value = kind(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}, not {text}")
        return value

    return parse


def _api_client(args: argparse.Namespace) -> ApiClient | None:
    """The API's client of ``--api URL`` (key in NETFLIX_API_KEY), None without ``--api``; LookupError without a key."""
    return ApiClient.from_env(args.api) if args.api else None


def cmd_simulate(args: argparse.Namespace) -> int:
    config = SimulationConfig(
        users=args.users, days=args.days, seed=args.seed, start=args.start, first_user_id=args.first_user_id
    )
    if args.api and args.replace:
        print(
            "error: --replace deletes rows, which only a direct connection may do; drop --api or --replace",
            file=sys.stderr,
        )
        return 2
    started = time.perf_counter()
    try:
        with _api_client(args) or closing(_warehouse().connect()) as destination:
            if not args.api:
                activity.ensure_schema(destination)
            simulation, results = simulate_into(destination, config, replace=args.replace, progress=True)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.truth:
        simulation.truth.to_csv(args.truth, index=False)
    for result in results:
        print(result)
    print(
        f"simulated {len(simulation.users):,} users and {len(simulation.events):,} events"
        f"{f' through {args.api}' if args.api else ''} in {time.perf_counter() - started:.1f} s"
        f"{f'; tastes in {args.truth}' if args.truth else ''}"
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    try:
        with _api_client(args) or closing(_warehouse().connect()) as source:
            if isinstance(source, ApiClient):  # the whole run over HTTP, as the key's login
                print(train.train(None, args.model, k=args.k, read=source.read_table, runs=source))
            else:
                print(train.train(source, args.model, k=args.k))
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_rollback(args: argparse.Namespace) -> int:
    with closing(_warehouse().connect()) as conn:
        print(f"current recommendations: run {publish.rollback(conn)}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    # imported here: only this command needs the web server
    import uvicorn

    from recommender.api.app import LOG_CONFIG

    # the workers build their app from the environment: point it at the warehouse chosen here
    os.environ.update(_warehouse().env())
    print(f"API docs: http://{args.host}:{args.port}/docs", flush=True)
    uvicorn.run(
        "recommender.api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,  # the app logs each request as one JSON line
        log_config=LOG_CONFIG,
    )
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    with closing(_warehouse().connect()) as conn:
        keys.ensure_schema(conn)  # a warehouse the API never served has no schema api yet
        if args.action == "create":
            key = keys.create_key(conn, args.role, args.name)
            print(f"{args.role} key {keys.parse_key_id(key)} for {args.name} (shown once, keep it secret):")
            print(key)
        elif args.action == "revoke":
            keys.revoke_key(conn, args.key_id)
            print(f"key {args.key_id} revoked")
        else:
            for info in keys.list_keys(conn):
                state = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
                print(f"{info.key_id}  {info.role:<14}  {state:<22}  {info.name}")
    return 0


def cmd_access(args: argparse.Namespace) -> int:
    if args.action == "watchdog":
        return watchdog.main(args.extra)
    with closing(_warehouse().connect()) as conn:
        if args.action == "add":
            password = logins.add_login(conn, args.name, args.role)
            print(f"login {args.name} ({args.role}) for database {conn.info.dbname}; its password (shown once):")
            print(password)
            print(f"change it with: alter role {args.name} password '...'; (in psql: \\password)")
        elif args.action == "revoke":
            logins.revoke_login(conn, args.name)
            print(f"login {args.name} revoked: its sessions ended, what it created passed to the owner")
        else:
            for login in logins.list_logins(conn):
                print(f"{login.name:<24}  {login.kind:<6}  {','.join(login.groups):<24}  {login.sessions} session(s)")
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
        changed = start_embedded(server)
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
    run.add_argument(
        "--max-shrink",
        type=_bounded(float, 0, 1),
        default=0.1,
        help="refuse a refresh of the same export in which a table loses more than this share of its rows (0.1)",
    )
    run.add_argument("--allow-shrink", action="store_true", help="accept a deliberate shrink (never an empty table)")
    run.set_defaults(func=cmd_run)

    warehouse = commands.add_parser("warehouse", help="the live and previous generations of the warehouse")
    warehouse.add_argument(
        "action",
        choices=["status", "rollback"],
        help="status: what each was built from; rollback: make the previous one live again, with its recommendations",
    )
    warehouse.set_defaults(func=cmd_warehouse)

    sim = commands.add_parser("simulate", help="simulate users and viewing, write them to app.*")
    sim.add_argument("--users", type=int, default=SimulationConfig.users)
    sim.add_argument("--days", type=int, default=SimulationConfig.days)
    sim.add_argument("--seed", type=int, default=SimulationConfig.seed)
    sim.add_argument("--start", type=date.fromisoformat, default=SimulationConfig.start, help="first day, YYYY-MM-DD")
    sim.add_argument("--first-user-id", type=int, default=SimulationConfig.first_user_id)
    sim.add_argument("--truth", type=Path, help="write each user's latent taste to this CSV file")
    sim.add_argument("--replace", action="store_true", help="replace what these user ids hold from another simulation")
    sim.add_argument(
        "--api", metavar="URL", help="read the catalogue and write through the HTTP API at URL (key in NETFLIX_API_KEY)"
    )
    sim.set_defaults(func=cmd_simulate)

    fit = commands.add_parser("train", help="fit a recommender on the marts, evaluate it, publish top-k per user")
    fit.add_argument("--model", default=DEFAULT_MODEL, choices=list(MODELS), help=f"default: {DEFAULT_MODEL}")
    fit.add_argument(
        "--k", type=_bounded(int, 1, 1000), default=20, help="recommendations per user, 1 to 1000 (default 20)"
    )
    fit.add_argument(
        "--api",
        metavar="URL",
        help="read the marts and publish through the HTTP API at URL (a data_scientist key in NETFLIX_API_KEY)",
    )
    fit.set_defaults(func=cmd_train)

    serve = commands.add_parser("serve", help="start the HTTP API (docs at /docs)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="default 8000")
    serve.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    serve.set_defaults(func=cmd_serve)

    api_keys = commands.add_parser("keys", help="create, revoke or list the HTTP API's keys")
    key_actions = api_keys.add_subparsers(dest="action", required=True)
    create = key_actions.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--role", required=True, choices=keys.ROLES)
    create.add_argument("--name", required=True, help="whose key it is, e.g. alice")
    key_actions.add_parser("revoke", help="revoke a key at once").add_argument("key_id")
    key_actions.add_parser("list", help="every key: id, role, state, name (never the key)")
    api_keys.set_defaults(func=cmd_keys)

    people = commands.add_parser("access", help="people's own database logins, and the watchdog of their limits")
    people_actions = people.add_subparsers(dest="action", required=True)
    add = people_actions.add_parser("add", help="create a login of a person's own and print its password (once)")
    add.add_argument("name", help="the login, e.g. alice (lower case letters, digits, _)")
    add.add_argument("--role", required=True, choices=logins.GROUPS, help="the group it is a member of")
    people_actions.add_parser("revoke", help="drop a person's login at once").add_argument("name")
    people_actions.add_parser("list", help="this database's logins: people's and API keys'")
    guard = people_actions.add_parser(
        "watchdog",
        help="enforce the groups' limits on a server of your own (the embedded one has its own)",
        description="Options: those of python -m recommender.watchdog (--interval, --memory-limit).",
    )
    guard.set_defaults(passes_extra=True)  # its options are python -m recommender.watchdog's
    people.set_defaults(func=cmd_access)

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
        generations.GenerationError,
        activity.BatchError,
        train.TrainError,
        publish.PublishError,
        EmbeddedServerError,
        logins.LoginError,
        LookupError,
        psycopg2.Error,
    ) as exc:
        print(f"error: {exc}".rstrip(), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
