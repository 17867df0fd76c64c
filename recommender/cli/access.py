"""People's own database logins, and the watchdog of their limits."""

from __future__ import annotations

import argparse
from contextlib import closing

from recommender.cli.connect import warehouse
from recommender.warehouse import logins, watchdog


def cmd_access(args: argparse.Namespace) -> int:
    if args.action == "watchdog":
        return watchdog.main(args.extra)
    with closing(warehouse().connect()) as conn:
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


def add_commands(commands: argparse._SubParsersAction) -> None:
    people = commands.add_parser("access", help="people's own database logins, and the watchdog of their limits")
    people_actions = people.add_subparsers(dest="action", required=True)
    add = people_actions.add_parser("add", help="create a login of a person's own and print its password (once)")
    add.add_argument("name", help="the login, e.g. alice (lower case letters, digits, _)")
    add.add_argument("--role", required=True, choices=logins.GROUPS, help="the group it is a member of")
    people_actions.add_parser("revoke", help="drop a person's login at once").add_argument(
        "name", help="the login to drop; its sessions end"
    )
    people_actions.add_parser("list", help="this database's logins: people's and API keys'")
    guard = people_actions.add_parser(
        "watchdog",
        help="enforce the groups' limits on a server of your own (the embedded one has its own)",
        description="Options: those of python -m recommender.warehouse.watchdog (--interval, --memory-limit).",
    )
    guard.set_defaults(passes_extra=True)  # its options are python -m recommender.warehouse.watchdog's
    people.set_defaults(func=cmd_access)
