"""The limits a person's session cannot lift, enforced from outside it.

PostgreSQL applies a role's settings only to sessions that log in as that role, and
lets any session change its own ``statement_timeout``. The group roles' settings
(``macros/create_access_roles.sql``: analyst's 60 s statements, idle transactions)
are therefore enforced here for every member login, whatever it set: each second the
watchdog cancels a member's statement that has run longer than its group's
``statement_timeout`` (a database's own setting first), ends
a session idle in a transaction longer than ``idle_in_transaction_session_timeout``
(an idle transaction's locks would stall a refresh) or, for a group whose statements
are limited, open longer than ``--transaction-limit`` (so would a transaction of short
statements), and, where the server runs on
this machine, cancels a statement whose backend holds more private memory than
``--memory-limit``.

The embedded server starts one beside itself; for a server of your own run
``python -m recommender.warehouse.watchdog`` (libpq variables select it) as a service.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg2
from psycopg2.extensions import connection

GROUPS = ("analyst", "data_scientist")
DEFAULT_MEMORY_LIMIT_MB = 2048
DEFAULT_TRANSACTION_LIMIT_S = 1800  # a transaction of short statements holds its locks as long as an idle one
APPLICATION = "netflix_warehouse watchdog"
UNITS_MS = {"us": 0.001, "ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}

LIMITS = """
select role.rolname, setting.setdatabase, unnest(setting.setconfig)
from pg_db_role_setting as setting
join pg_roles as role on role.oid = setting.setrole
where role.rolname = any(%s)
"""

# members' client sessions (never a superuser's, which is a member of everything)
SESSIONS = """
select session.pid, session.datid, session.usename, session.state,
    array(select grp.rolname from pg_roles as grp
          where grp.rolname = any(%s) and grp.oid <> member.oid and pg_has_role(member.oid, grp.oid, 'member')),
    extract(epoch from clock_timestamp() - session.query_start) * 1000,
    extract(epoch from clock_timestamp() - session.state_change) * 1000,
    extract(epoch from clock_timestamp() - session.xact_start) * 1000
from pg_stat_activity as session
join pg_roles as member on member.oid = session.usesysid
where session.backend_type = 'client backend' and not member.rolsuper and session.pid <> pg_backend_pid()
"""


def milliseconds(value: str) -> float | None:
    """A PostgreSQL time setting (``60s``, ``1min``, ``500``) in ms; None for 0 (no limit) or text it cannot read."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(us|ms|s|min|h|d)?\s*", value)
    if not match:
        return None
    ms = float(match[1]) * UNITS_MS[match[2] or "ms"]
    return ms or None


@dataclass(frozen=True)
class Action:
    pid: int
    user: str
    what: str  # "cancel" or "terminate"
    why: str


def _limits(conn: connection) -> dict[tuple[str, int], dict[str, str]]:
    """(group, database oid; 0 for every database) -> setting -> value."""
    limits: dict[tuple[str, int], dict[str, str]] = {}
    with conn.cursor() as cur:
        cur.execute(LIMITS, (list(GROUPS),))
        for group, database, setting in cur.fetchall():
            name, _, value = setting.partition("=")
            limits.setdefault((group, database), {})[name] = value
    return limits


def _limit(limits: Mapping[tuple[str, int], dict[str, str]], groups: list[str], database: int, name: str) -> float:
    """The limit ``name`` (ms) of a member of ``groups`` in this database, inf for none: a member of several
    has the rights of each (an admin key's login), so the loosest applies."""
    found = []
    for group in groups:
        value = limits.get((group, database), {}).get(name) or limits.get((group, 0), {}).get(name)
        found.append(float("inf") if value is None else milliseconds(value) or float("inf"))
    return max(found, default=float("inf"))


def _private_memory_mb(pid: int) -> float | None:
    """The backend's private resident memory (RssAnon), if it runs on this machine."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"^RssAnon:\s+(\d+) kB", status, re.MULTILINE)
    return int(match[1]) / 1024 if match else None


def _local(conn: connection) -> bool:
    """Whether the server runs on this machine, so that its backends' pids are ours to read in /proc."""
    return conn.info.host in ("127.0.0.1", "localhost", "::1") or conn.info.host.startswith("/")


def sweep(
    conn: connection,
    memory_limit_mb: float = DEFAULT_MEMORY_LIMIT_MB,
    transaction_limit_s: float = DEFAULT_TRANSACTION_LIMIT_S,
) -> list[Action]:
    """Cancel or end the member sessions over their limits now; what it did."""
    limits, local = _limits(conn), _local(conn)
    actions = []
    with conn.cursor() as cur:
        cur.execute(SESSIONS, (list(GROUPS),))
        for pid, database, user, state, groups, running_ms, in_state_ms, transaction_ms in cur.fetchall():
            if not groups:
                continue
            statement = _limit(limits, groups, database, "statement_timeout")
            idle = _limit(limits, groups, database, "idle_in_transaction_session_timeout")
            memory = _private_memory_mb(pid) if state == "active" and local else None
            if state == "active" and running_ms is not None and running_ms > statement:
                actions.append(Action(pid, user, "cancel", f"statement ran over {statement / 1000:g} s"))
            elif state == "active" and memory is not None and memory > memory_limit_mb:
                actions.append(
                    Action(pid, user, "cancel", f"backend holds {memory:.0f} MB (limit {memory_limit_mb} MB)")
                )
            elif (
                statement < float("inf") and transaction_ms is not None and transaction_ms > transaction_limit_s * 1000
            ):
                actions.append(Action(pid, user, "terminate", f"a transaction open over {transaction_limit_s:g} s"))
            elif state and state.startswith("idle in transaction") and in_state_ms is not None and in_state_ms > idle:
                actions.append(Action(pid, user, "terminate", f"idle in a transaction over {idle / 1000:g} s"))
        for action in actions:
            cur.execute(f"select pg_{action.what}_backend(%s)", (action.pid,))
    conn.commit()
    return actions


def watch(
    connect: Callable[[], connection],
    interval_s: float = 1.0,
    memory_limit_mb: float = DEFAULT_MEMORY_LIMIT_MB,
    transaction_limit_s: float = DEFAULT_TRANSACTION_LIMIT_S,
    give_up_after: int = 0,
) -> None:
    """Sweep every ``interval_s`` for good; one JSON line per action on stdout. With ``give_up_after``,
    return once the server has not answered that many sweeps in a row (it was stopped)."""
    failures = 0
    conn = None
    while True:
        try:
            if conn is None or conn.closed:
                conn = connect()
                conn.autocommit = False
            for action in sweep(conn, memory_limit_mb, transaction_limit_s):
                print(json.dumps({"time": time.time(), **action.__dict__}), flush=True)
            failures = 0
        except psycopg2.Error as exc:
            failures += 1
            if conn is not None:
                conn.close()
            conn = None
            if give_up_after and failures >= give_up_after:
                print(f"the server does not answer ({exc}); the watchdog stops", file=sys.stderr, flush=True)
                return
        time.sleep(interval_s)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recommender.warehouse.watchdog", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between sweeps (default: 1)")
    parser.add_argument(
        "--memory-limit",
        type=float,
        default=DEFAULT_MEMORY_LIMIT_MB,
        help=f"MB of private memory a member's backend may hold (default: {DEFAULT_MEMORY_LIMIT_MB})",
    )
    parser.add_argument(
        "--transaction-limit",
        type=float,
        default=DEFAULT_TRANSACTION_LIMIT_S,
        help=f"seconds a member's transaction may stay open (default: {DEFAULT_TRANSACTION_LIMIT_S})",
    )
    parser.add_argument(
        "--exit-with-server",
        type=int,
        default=0,
        metavar="N",
        help="stop after N sweeps in a row find the server gone (the embedded server's watchdog); default: never",
    )
    args = parser.parse_args(argv)
    watch(_connect, args.interval, args.memory_limit, args.transaction_limit, args.exit_with_server)
    return 0


def _connect() -> connection:
    # the libpq variables select the server; from the maintenance database it sees every session
    return psycopg2.connect(dbname="postgres", connect_timeout=10, application_name=APPLICATION)


if __name__ == "__main__":
    sys.exit(main())
