"""Apache Spark for the activity path (the spark extra): export the lake, build on Spark, train and publish."""

from __future__ import annotations

import argparse
from contextlib import closing
from pathlib import Path

from recommender.cli.connect import bounded, warehouse
from recommender.ml import spark_run
from recommender.spark import lake, session


def cmd_demo(args: argparse.Namespace) -> int:
    spark = session.get_session(args.master)
    with closing(warehouse().connect()) as conn:
        print(spark_run.run(conn, spark, args.lake, k=args.k, holdout=not args.no_holdout))
    return 0


def cmd_lake(args: argparse.Namespace) -> int:
    with closing(warehouse().connect()) as conn:
        moved = lake.export(conn, args.lake, full=args.full)
    print(f"lake {args.lake}: " + ", ".join(f"{name} {rows:,} rows" for name, rows in moved.items()))
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("spark", help="the activity models and training on Apache Spark (make spark)")
    spark_commands = group.add_subparsers(dest="spark_command", required=True)
    demo = spark_commands.add_parser(
        "demo", help="new events into the lake, dbt --target spark, spark_als trained and published"
    )
    demo.add_argument(
        "--master",
        help="Spark master URL, e.g. spark://host:7077 (default: NETFLIX_SPARK_MASTER, else local[2])",
    )
    demo.add_argument("--k", type=bounded(int, 1, 1000), default=20, help="recommendations per user, 1 to 1000")
    demo.add_argument("--lake", type=Path, default=lake.LAKE_DIR, help="the lake's folder")
    demo.add_argument("--no-holdout", action="store_true", help="skip the temporal holdout: one fit, no metrics")
    demo.set_defaults(func=cmd_demo)
    export = spark_commands.add_parser("lake", help="copy the app's new rows into the lake (by written_at)")
    export.add_argument("--lake", type=Path, default=lake.LAKE_DIR, help="the lake's folder")
    export.add_argument("--full", action="store_true", help="rewrite the lake from nothing (after deletions)")
    export.set_defaults(func=cmd_lake)
