"""Logins of their own for people and for API keys, each a member of one group role (analyst, data_scientist).

dbt creates the group roles without login and grants them what it builds; their limits
are role settings (``macros/create_access_roles.sql``). Nobody logs in as a group: a
shared login is one anybody could lock the others out of (``alter role analyst
password``) or change for all (``alter role analyst set statement_timeout = 0``). A
person's login can change its own password and its own settings, nothing of the group;
the limits it could lift in a session are enforced from outside by
``recommender.warehouse.watchdog``, and ``temp_file_limit`` (which only a superuser may set) is
set on it here.

Roles are shared by every database of a server, so each login carries a comment naming
its database: listing, revoking and dropping a database's logins (``drop_database``)
find them by it. An API key's login is named after the key id and its password is an
HMAC of the id under a secret of the project's, so the API can log in as any key
without storing a password.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from psycopg2 import sql
from psycopg2.extensions import connection, cursor

from recommender.errors import BadInputError
from recommender.warehouse import passwords
from recommender.warehouse.targets import LOGIN_COMMENT, Target

GROUPS = ("analyst", "data_scientist")
KEY_GROUPS = {"analyst": ("analyst",), "data_scientist": ("data_scientist",), "admin": GROUPS}
NAME = re.compile(r"^[a-z][a-z0-9_]{1,47}$")
KEY_SECRET = ("key_login_secret", "NETFLIX_KEY_LOGIN_SECRET")  # the secret's file and variable
TEMP_FILE_LIMIT = {"analyst": "1GB", "data_scientist": "20GB"}  # a superuser's setting: no session can lift it
# Sessions one login may hold at once (only CREATEROLE may change it): without a limit one login could take every
# connection the server has (max_connections, 100 by default) and lock everybody else out. A key's login serves
# /sql, a connection per request (at most recommender.api.database.SQL_CONNECTIONS per API process).
CONNECTION_LIMIT = {"person": 10, "key": 25}


class LoginError(BadInputError, ValueError):
    """A login that cannot be added or revoked; the message says why."""


@dataclass(frozen=True)
class Login:
    name: str
    kind: str  # "person" or "key"
    groups: tuple[str, ...]
    sessions: int


def _database(cur: cursor) -> str:
    cur.execute("select current_database()")
    return cur.fetchone()[0]


def _comment(database: str, kind: str) -> str:
    return LOGIN_COMMENT.format(kind=kind, database=database)


def _group_settings(cur: cursor, group: str) -> list[str]:
    """The group's settings in this database (``name=value``), its database-specific ones last, so they win."""
    cur.execute(
        "select unnest(setconfig) from pg_db_role_setting"
        " where setrole = %s::regrole and setdatabase in (0, (select oid from pg_database where datname = %s))"
        " order by setdatabase",
        (group, _database(cur)),
    )
    return [setting for (setting,) in cur.fetchall()]


def _create(cur: cursor, name: str, password: str, groups: tuple[str, ...], kind: str) -> None:
    database = _database(cur)
    login = sql.Identifier(name)
    cur.execute("select 1 from pg_roles where rolname = %s", (name,))
    if cur.fetchone():
        raise LoginError(f"a role named {name!r} exists on this server already: choose another name")
    cur.execute(
        sql.SQL("create role {} login password %s connection limit %s").format(login),
        (password, CONNECTION_LIMIT[kind]),
    )
    # A member that may SET ROLE to its group may ALTER it (``alter role analyst set statement_timeout = 0``,
    # its password): a login inherits the group's rights but may not become it (PostgreSQL 16+; 15 has no
    # such option, see the README)
    cur.execute("select current_setting('server_version_num')::int >= 160000")
    no_set = cur.fetchone()[0]
    for group in groups:
        cur.execute(
            sql.SQL("grant {} to {}{}").format(
                sql.Identifier(group), login, sql.SQL(" with inherit true, set false" if no_set else "")
            )
        )
    cur.execute(sql.SQL("comment on role {} is %s").format(login), (_comment(database, kind),))
    cur.execute(sql.SQL("grant connect on database {} to {}").format(sql.Identifier(database), login))
    # the group's limits as the login's own defaults: a session that keeps them needs no watchdog (an admin key's
    # login, in both groups, has the rights of both: the analysts' read-only default is not its)
    for setting in _group_settings(cur, groups[0]) if len(groups) == 1 else []:
        key, _, value = setting.partition("=")
        cur.execute(
            sql.SQL("alter role {} in database {} set {} = %s").format(
                login, sql.Identifier(database), sql.Identifier(key)
            ),
            (value,),
        )
    cur.execute("select rolsuper from pg_roles where rolname = current_user")
    if cur.fetchone()[0]:
        limit = max((TEMP_FILE_LIMIT[group] for group in groups), key=_megabytes)
        cur.execute(
            sql.SQL("alter role {} in database {} set temp_file_limit = %s").format(login, sql.Identifier(database)),
            (limit,),
        )


def _megabytes(size: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(MB|GB)", size).groups()
    return int(number) * (1024 if unit == "GB" else 1)


def add_login(conn: connection, name: str, group: str, password: str | None = None) -> str:
    """Create the login ``name``, a member of ``group``, in this database; its password (generated unless given)."""
    if not NAME.fullmatch(name):
        raise LoginError(
            f"{name!r} is not a login name: 2 to 48 lower-case letters, digits or _, starting with a letter"
        )
    if group not in GROUPS:
        raise LoginError(f"unknown role {group!r}: choose one of {', '.join(GROUPS)}")
    password = password or secrets.token_urlsafe(18)
    with conn, conn.cursor() as cur:
        _create(cur, name, password, (group,), "person")
    return password


def list_logins(conn: connection) -> list[Login]:
    """This database's logins, people first, each with its groups and open sessions."""
    with conn, conn.cursor() as cur:
        database = _database(cur)
        cur.execute(
            "select role.rolname, description.kind,"
            "   array(select member_of.rolname from pg_auth_members as membership"
            "         join pg_roles as member_of on member_of.oid = membership.roleid"
            "         where membership.member = role.oid order by 1),"
            "   (select count(*) from pg_stat_activity as session where session.usesysid = role.oid)"
            " from pg_roles as role"
            " cross join lateral (select case shobj_description(role.oid, 'pg_authid')"
            "   when %s then 'person' when %s then 'key' end as kind) as description"
            " where description.kind is not null order by description.kind desc, role.rolname",
            (_comment(database, "person"), _comment(database, "key")),
        )
        return [Login(name, kind, tuple(groups), sessions) for name, kind, groups, sessions in cur.fetchall()]


def _drop(cur: cursor, name: str, kind: str) -> None:
    """End the login's sessions and drop it, with what it owns in this database."""
    cur.execute("select shobj_description(oid, 'pg_authid') from pg_roles where rolname = %s", (name,))
    found = cur.fetchone()
    if found is None or found[0] != _comment(_database(cur), kind):
        raise LoginError(f"there is no login {name!r} of this database (python -m recommender access list)")
    login = sql.Identifier(name)
    cur.execute(sql.SQL("alter role {} nologin").format(login))
    cur.execute("select pg_terminate_backend(pid) from pg_stat_activity where usename = %s", (name,))
    cur.execute(sql.SQL("reassign owned by {} to current_user").format(login))
    cur.execute(sql.SQL("drop owned by {}").format(login))
    cur.execute(sql.SQL("drop role {}").format(login))


def revoke_login(conn: connection, name: str) -> None:
    """Revoke a person's login at once: its sessions end, what it created passes to the owner."""
    with conn, conn.cursor() as cur:
        _drop(cur, name, "person")


def key_login(key_id: str) -> str:
    """The database login of the API key ``key_id``: the database's logs and pg_stat_activity name the key."""
    return f"key_{key_id}"


def key_password(key_id: str, environ: Mapping[str, str] = os.environ) -> str:
    secret = passwords.generated(*KEY_SECRET, environ)
    return hmac.new(secret.encode(), key_id.encode(), hashlib.sha256).hexdigest()


def key_target(target: Target, key_id: str, environ: Mapping[str, str] = os.environ) -> Target:
    """``target`` as the login of the API key ``key_id``."""
    return Target(
        target.host, target.port, key_login(key_id), key_password(key_id, environ), target.database, target.embedded
    )


def add_key_login(cur: cursor, key_id: str, role: str) -> None:
    """Create the login of a new key of ``role`` (admin: a member of both groups), in the caller's transaction."""
    _create(cur, key_login(key_id), key_password(key_id), KEY_GROUPS[role], "key")


def drop_key_login(cur: cursor, key_id: str) -> None:
    """Drop a revoked key's login in the caller's transaction (its sessions end); nothing if it has none."""
    cur.execute("select 1 from pg_roles where rolname = %s", (key_login(key_id),))
    if cur.fetchone():
        _drop(cur, key_login(key_id), "key")
