"""The warehouse's commands: build it (run), its generations, exports, the sample, docs, the server, psql."""

from __future__ import annotations

import argparse
import json
import os
from contextlib import closing, suppress
from dataclasses import asdict
from pathlib import Path

from recommender.cli.connect import bounded, warehouse
from recommender.refresh import generations
from recommender.warehouse import docs_site, exports, pgadmin, progress
from recommender.warehouse.countries import REFERENCE_SEED, write_reference
from recommender.warehouse.embedded import psql_path
from recommender.warehouse.sample import write_sample
from recommender.warehouse.targets import Target, embedded_server, start_embedded, target_from_env


def cmd_run(args: argparse.Namespace) -> int:
    with progress.phase("refresh", "start", "the server, the database, the refresh's libraries", heartbeat=True):
        target = warehouse()
        # imported here: only a refresh needs Great Expectations, seconds to import
        from recommender.refresh import pipeline

    summary = pipeline.run(target, args.raw_data_dir, max_shrink=args.max_shrink, allow_shrink=args.allow_shrink)
    print(summary.render())
    _write_pgadmin(target, indent="  ")  # a line of the summary
    return 0


def cmd_warehouse(args: argparse.Namespace) -> int:
    with closing(warehouse().connect()) as conn:
        if args.action == "rollback":
            restored = generations.rollback(conn)
            generations.link_live_export(conn, generations.EXPORTS_DIR)
            print(f"live generation: {restored.id} ({restored.export}), recommendations run {restored.run_id}")
            return 0
        for label, generation in (("live", generations.live(conn)), ("previous", generations.previous(conn))):
            print(f"{label}: {json.dumps(asdict(generation), indent=2) if generation else 'none'}")
    return 0


def cmd_check_export(args: argparse.Namespace) -> int:
    with closing(warehouse().connect()) as conn:
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
    # imported here: the schemas' owners are heavy to import, and only the docs need all three
    from recommender import activity
    from recommender.api import keys
    from recommender.ml import publish

    target = warehouse()
    with closing(target.connect()) as conn:
        # every schema exists, so the data dictionary describes each, on a warehouse the API never served too
        activity.ensure_schema(conn)
        publish.ensure_schema(conn)
        keys.ensure_schema(conn)
    site = docs_site.generate(target).parent
    if not args.serve:
        print(f"dbt docs site built in {site}; serve it with: make docs-serve")
        return 0
    with docs_site.server(site, args.port) as httpd:
        print(f"the data dictionary: http://127.0.0.1:{httpd.server_address[1]}/ (Ctrl-C stops)", flush=True)
        with suppress(KeyboardInterrupt):
            httpd.serve_forever()
    return 0


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


def cmd_pgadmin(args: argparse.Namespace) -> int:
    _write_pgadmin(target_from_env(), args.out)
    return 0


def _write_pgadmin(target: Target, path: Path = pgadmin.SERVERS_FILE, indent: str = "") -> None:
    written = pgadmin.write_servers(target, path)
    print(f"{indent}pgAdmin: Tools -> Import/Export Servers, import {written} (one server per group; set your login)")


def cmd_dsn(args: argparse.Namespace) -> int:
    print(warehouse().uri())
    return 0


def cmd_psql(args: argparse.Namespace) -> int:
    target = warehouse()
    os.execve(psql_path(), ["psql", target.uri(), *args.extra], {**os.environ, **target.env()})


def add_commands(commands: argparse._SubParsersAction) -> None:

    run = commands.add_parser("run", help="check the raw export, dbt build, print a summary")
    run.add_argument("--raw-data-dir", type=Path, help="folder of a catalogue export (default: the committed sample)")
    run.add_argument(
        "--max-shrink",
        type=bounded(float, 0, 1),
        default=0.1,
        help="refuse a refresh of the same export in which a table loses more than this share of its rows",
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

    check = commands.add_parser("check-export", help="check an export folder without loading it")
    check.add_argument("folder", type=Path, help="the folder holding the six export files")
    check.set_defaults(func=cmd_check_export)

    sample = commands.add_parser("sample", help="write the generated sample export")
    sample.add_argument("--out", type=Path, default=exports.SAMPLE_DIR, help="folder to write the six files to")
    sample.add_argument("--titles", type=int, default=600, help="titles in the catalogue")
    sample.add_argument("--seed", type=int, default=42, help="seed of the generator (the committed sample's: 42)")
    sample.set_defaults(func=cmd_sample)

    docs = commands.add_parser("docs", help="build the dbt docs site (the data dictionary) into target/")
    docs.add_argument("--serve", action="store_true", help="then serve it over HTTP until Ctrl-C")
    docs.add_argument("--port", type=int, default=8080, help="the port --serve listens on (127.0.0.1)")
    docs.set_defaults(func=cmd_docs)

    server = commands.add_parser("server", help="start, stop or show the embedded PostgreSQL")
    server.add_argument(
        "action", choices=("start", "stop", "status"), help="start it (unless it runs), stop it, or say whether it runs"
    )
    server.set_defaults(func=cmd_server)

    commands.add_parser("dsn", help="print a libpq URI of the warehouse").set_defaults(func=cmd_dsn)

    servers = commands.add_parser("pgadmin", help="write a pgAdmin servers file for the warehouse (no passwords)")
    servers.add_argument("--out", type=Path, default=pgadmin.SERVERS_FILE, help="the file to write")
    servers.set_defaults(func=cmd_pgadmin)

    psql = commands.add_parser("psql", help="open psql on the warehouse; further arguments go to psql")
    psql.set_defaults(func=cmd_psql, passes_extra=True)
