"""Command line: ``python -m recommender <command>``; ``python -m recommender <command> --help`` tells its options.

Exit codes: 0 done; 2 refused with a message that says why (bad arguments, or a ``WarehouseError``
of any kind, or a database error); anything else is a bug (a traceback).
"""

from __future__ import annotations

import argparse
import sys

import psycopg2

from recommender.cli import access, activity, api, experiment, ml, spark, warehouse
from recommender.errors import WarehouseError
from recommender.warehouse import progress

EXIT_REFUSED = 2  # as argparse's own for bad arguments: a message on stderr says what to change


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's help ends with its default: its value, "off" for a flag, or "required"; where the default
    is None the help says in words what happens without the option (tests/test_cli.py holds every option to it)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.required and action.option_strings:
            return f"{text} (required)"
        if not action.option_strings or action.default in (None, argparse.SUPPRESS) or "default" in text:
            return text
        if action.nargs == 0:  # a flag
            return f"{text} (default: {'on' if action.default else 'off'})"
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """The parser of every command and subcommand (``add_subparsers`` makes more of its own class)."""

    def __init__(self, **kwargs: object) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(**kwargs)


def plain(text: str) -> str:
    """A docstring as plain text for a terminal: without the reST ``literal`` markup."""
    return text.replace("``", "")


def parser() -> argparse.ArgumentParser:
    root = Parser(prog="python -m recommender", description=plain(__doc__))
    commands = root.add_subparsers(dest="command", required=True)
    for group in (warehouse, access, activity, experiment, ml, spark, api):
        group.add_commands(commands)
    return root


def main(argv: list[str] | None = None) -> int:
    root = parser()
    args, args.extra = root.parse_known_args(argv)
    if args.extra and not getattr(args, "passes_extra", False):
        root.error(f"unrecognized arguments: {' '.join(args.extra)}")
    try:
        with progress.shown():  # a person runs it: long steps say how far they are
            return args.func(args)
    except (WarehouseError, psycopg2.Error) as exc:
        print(f"error: {exc}".rstrip(), file=sys.stderr)
        return EXIT_REFUSED
