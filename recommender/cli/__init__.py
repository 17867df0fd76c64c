"""Command line: ``python -m recommender <command>``; ``--help`` lists the commands.

Exit codes: 0 done; 2 refused with a message that says why (bad arguments, or a ``WarehouseError``
of any kind, or a database error); anything else is a bug (a traceback).
"""

from __future__ import annotations

import argparse
import sys

import psycopg2

from recommender.cli import access, activity, api, ml, warehouse
from recommender.errors import WarehouseError

EXIT_REFUSED = 2  # as argparse's own for bad arguments: a message on stderr says what to change


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m recommender", description=__doc__.split("\n\n")[0])
    commands = root.add_subparsers(dest="command", required=True)
    for group in (warehouse, access, activity, ml, api):
        group.add_commands(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    root = parser()
    args, args.extra = root.parse_known_args(argv)
    if args.extra and not getattr(args, "passes_extra", False):
        root.error(f"unrecognized arguments: {' '.join(args.extra)}")
    try:
        return args.func(args)
    except (WarehouseError, psycopg2.Error) as exc:
        print(f"error: {exc}".rstrip(), file=sys.stderr)
        return EXIT_REFUSED
