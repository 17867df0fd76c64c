"""``POST /sql``, the analysts' ad-hoc SQL: what it answers, and that nothing sent to it changes the
warehouse, reaches past role ``analyst`` or outlives its request.

Each request runs on a connection of its own, logged in as the calling key's own database login (a
member of ``analyst``). Each hostile statement is judged by the database afterwards, never by the
status code alone: row counts, relations and their grants, columns, functions, schemas, roles (the
groups and this database's logins) and memberships, settings, comments, large objects, locks,
prepared transactions, files a COPY could write; and by the session the next request gets (its
login and role, read-only mode, timeout, prepared statements, cursors).
"""

from __future__ import annotations

import csv
import io
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import pytest
from psycopg2 import sql
from queries import SERVER_STATE, query

from recommender.api import keys
from recommender.warehouse import logins
from recommender.warehouse.targets import LOGIN_COMMENT, Target

SEQUENCE = "predictions.nw_api_sql_probe_seq"  # created for this module: nextval must be refused
INTRUDER = "nw_api_sql_intruder"  # a role a payload tries to create
LOCKED = "marts.catalogue"  # what the owner locks in the "must not run" checks (advisory locks are the owner's)

# Row counts that no request may change.
COUNTED = (
    "core.titles",
    "marts.catalogue",
    "app.users",
    "app.viewing_events",
    "app.ratings",
    "predictions.model_runs",
    "predictions.recommendations",
    "api.keys",
)
USER_SCHEMAS = "n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp)'"
# Roles are shared by every database of the server, where other test sessions add and drop logins of their own
# databases: the snapshot looks at the groups, the owner, the intruder, this database's logins and any role with
# rights beyond the ordinary.
LOGINS_HERE = ", ".join(
    f"format({LOGIN_COMMENT.format(kind=kind, database='%s')!r}, current_database())" for kind in ("person", "key")
)
RELEVANT_ROLES = f"""
    select oid from pg_roles
    where rolname in ('analyst', 'data_scientist', '{INTRUDER}') or rolname = current_user
        or rolsuper or rolcreaterole or rolcreatedb or rolreplication or rolbypassrls
        or shobj_description(oid, 'pg_authid') in ({LOGINS_HERE})"""

# What the owner sees; each query's rows are one entry of a snapshot.
STATE = {
    "relations": f"""
        select n.nspname, c.relname, c.relkind::text, c.relowner::regrole::text, coalesce(c.relacl::text, ''),
            c.relrowsecurity, c.relpersistence::text
        from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
        where {USER_SCHEMAS} order by 1, 2""",
    "temp relations (any session)": """
        select n.nspname, c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
        where n.nspname ~ '^pg_temp_' order by 1, 2""",
    "columns": f"""
        select md5(string_agg(format('%s.%s.%s:%s', n.nspname, c.relname, a.attname, a.atttypid), ','
            order by n.nspname, c.relname, a.attnum))
        from pg_attribute as a join pg_class as c on c.oid = a.attrelid join pg_namespace as n on n.oid = c.relnamespace
        where a.attnum > 0 and not a.attisdropped and {USER_SCHEMAS}""",
    "schemas": """
        select nspname, nspowner::regrole::text, coalesce(nspacl::text, '') from pg_namespace
        where nspname !~ '^pg_(toast|temp)' order by 1""",
    "functions": f"""
        select n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), p.prosecdef,
            coalesce(p.proacl::text, '')
        from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace where {USER_SCHEMAS} order by 1, 2, 3""",
    "triggers, policies, rules, constraints": """
        select (select count(*) from pg_trigger), (select count(*) from pg_policy),
            (select count(*) from pg_rewrite), (select count(*) from pg_constraint)""",
    "extensions": "select extname, extversion from pg_extension order by 1",
    "comments": """
        select md5(coalesce(string_agg(format('%s/%s/%s=%s', classoid, objoid, objsubid, description), ','
            order by classoid, objoid, objsubid), ''))
        from pg_description where objoid >= 16384""",
    "database": """
        select datname, coalesce(datacl::text, ''), datallowconn, datconnlimit from pg_database
        where datname = current_database()""",
    "database and role settings": f"""
        select coalesce(d.datname, '*'), coalesce(r.rolname, '*'), s.setconfig::text
        from pg_db_role_setting as s
            left join pg_database as d on d.oid = s.setdatabase
            left join pg_roles as r on r.oid = s.setrole
        where s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
            and (s.setrole = 0 or s.setrole in ({RELEVANT_ROLES}))
        order by 1, 2""",
    "roles": f"""
        select rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
            rolbypassrls, rolconnlimit, coalesce(rolvaliduntil::text, ''),
            coalesce(shobj_description(oid, 'pg_authid'), '')
        from pg_roles where oid in ({RELEVANT_ROLES}) order by 1""",
    "memberships": f"""
        select roleid::regrole::text, member::regrole::text, admin_option from pg_auth_members
        where member in ({RELEVANT_ROLES}) order by 1, 2, 3""",
    **SERVER_STATE,
    "probe sequence": f"select last_value, is_called from {SEQUENCE}",
}

# What a request's session looks like from inside, asked through /sql itself after each payload: each request
# must get a connection as clean as the first one (login, role, read-only, timeout, nothing left behind).
SESSION_PROBE = """
select current_user::text as current_user, session_user::text as session_user,
    current_setting('transaction_read_only') as transaction_read_only,
    current_setting('statement_timeout') as statement_timeout,
    current_setting('default_transaction_read_only') as default_transaction_read_only,
    current_setting('search_path') as search_path,
    (select count(*) from pg_prepared_statements where from_sql) as sql_prepared_statements,
    (select count(*) from pg_cursors where is_holdable) as held_cursors,
    (select count(*) from pg_listening_channels()) as listening_channels,
    (select count(*) from pg_class where relnamespace = pg_my_temp_schema()) as own_temp_relations
"""


@dataclass(frozen=True)
class Payload:
    id: str
    sql: str
    refused: bool  # True: must be answered 4xx; False: a 200 is fine too (the database state decides)
    sqlstates: tuple[str, ...] = ()  # if given, the refusal's SQLSTATE must be one of these


def refused(id: str, statement: str, *sqlstates: str) -> Payload:
    return Payload(id, statement, True, sqlstates)


def harmless(id: str, statement: str) -> Payload:
    return Payload(id, statement, False)


OWNER_CONN = "host={host} port={port} dbname={db} user={owner}"

HOSTILE = [
    # several statements, and comment and quoting tricks around a second one
    refused("two-statements-select-drop", "select 1; drop table core.titles"),
    refused("two-statements-delete-first", "delete from app.users; select 1"),
    refused("leading-semicolon-drop", ";drop table core.titles"),
    refused("line-comment-then-newline-drop", "select 1 -- just a comment\n; drop table core.titles"),
    refused("dollar-quote-then-drop", "select $$;$$; drop table core.titles"),
    harmless("block-comment-hides-drop", "select 1 /* ; drop table core.titles; */"),
    harmless("nested-comment-hides-drop", "select 1 /* /* */ ; drop table core.titles; */"),
    harmless("escape-string-quote", "select E'\\'; drop table core.titles; --'"),
    harmless("doubled-quote", "select 'a'';drop table core.titles;--'"),
    harmless("unicode-escape-quote", "select U&'\\0027; drop table core.titles; --'"),
    refused("unicode-escape-identifier-app-users", 'select * from U&"\\0061pp".users', "42501"),
    harmless("nul-byte-then-drop", "select 1\x00; drop table core.titles"),
    harmless("deeply-nested-expression", "select " + "(" * 5000 + "1" + ")" * 5000),
    # DML, directly, in CTEs and inside functions
    refused("delete", "delete from app.users"),
    refused("delete-in-cte", "with d as (delete from app.users returning *) select * from d"),
    refused("update", "update core.titles set title = upper(title)"),
    refused(
        "update-in-cte", "with u as (update core.titles set title = upper(title) returning 1) select count(*) from u"
    ),
    refused("insert", "insert into predictions.model_runs (run_id, model, status) values ('nw-pwn', 'x', 'failed')"),
    refused(
        "insert-in-cte",
        "with i as (insert into predictions.model_runs (run_id, model, status) values ('nw-pwn', 'x', 'failed')"
        " returning *) select * from i",
    ),
    refused(
        "merge",
        "merge into core.titles as t using core.titles as s on t.content_id = s.content_id when matched then delete",
    ),
    refused("delete-in-query-to-xml", "select query_to_xml('delete from app.users returning 1', true, false, '')"),
    refused("select-into", "select * into public.nw_loot from marts.catalogue"),
    refused("create-table-as", "create table public.nw_loot as select * from marts.catalogue"),
    refused("truncate", "truncate core.titles cascade"),
    # DDL and other catalogue writes
    refused("create-table", "create table marts.nw_pwn (x int)"),
    refused("create-index", "create index nw_pwn on core.titles (title)"),
    refused("create-function", "create function public.nw_pwn() returns int language sql as 'select 1'"),
    refused("create-view", "create view marts.nw_pwn as select 1 as x"),
    refused("create-materialized-view", "create materialized view marts.nw_pwn as select 1 as x"),
    refused("create-schema", "create schema nw_pwn"),
    refused("create-role", f"create role {INTRUDER} superuser login password 'x'"),
    refused("create-extension", "create extension if not exists pg_trgm"),
    refused("create-temp-table", "create temp table nw_tmp (x int)"),
    refused("create-temp-table-as", "create temp table nw_tmp as select * from marts.catalogue"),
    refused("select-into-temp", "select * into temp nw_tmp from marts.catalogue"),
    refused("alter-table", "alter table core.titles add column nw_note text"),
    refused("alter-table-rls", "alter table core.titles enable row level security"),
    refused("alter-role-superuser", "alter role analyst superuser"),
    refused("alter-own-role-timeout", "alter role analyst set statement_timeout = 0"),
    refused("alter-own-role-read-write", "alter role current_user set default_transaction_read_only = off"),
    refused("alter-own-password", "alter role analyst password 'nw-pwned'"),
    refused("alter-key-login-timeout", "alter role session_user set statement_timeout = 0"),
    refused("alter-key-login-password", "alter role session_user password 'nw-pwned'"),
    refused("alter-database", 'alter database "{db}" set default_transaction_read_only = off'),
    refused("alter-system", "alter system set work_mem = '77kB'"),
    refused("drop-table", "drop table core.titles cascade"),
    refused("drop-schema", "drop schema app cascade"),
    refused("drop-role", "drop role data_scientist"),
    refused("grant-table", "grant select on app.users to analyst"),
    refused("grant-role", "grant pg_read_all_data to analyst"),
    refused("revoke", "revoke select on marts.catalogue from analyst"),
    refused("comment-on", "comment on table core.titles is 'pwned'"),
    refused("vacuum", "vacuum core.titles"),
    harmless("analyze", "analyze core.titles"),
    refused("cluster", "cluster core.titles"),
    refused("reindex", "reindex table core.titles"),
    refused("refresh-materialized-view", "refresh materialized view marts.catalogue"),
    # COPY to and from programs and server files
    refused("copy-to-program", "copy (select 1) to program 'touch {program_file}'"),
    refused("copy-from-program", "copy marts.catalogue from program 'touch {program_file}'"),
    refused("copy-query-to-file", "copy (select * from marts.catalogue) to '{copy_file}'"),
    refused("copy-table-to-file", "copy marts.catalogue to '{copy_file}'"),
    refused("copy-from-server-file", "copy marts.catalogue from '/etc/hostname'"),
    harmless("copy-to-stdout", "copy marts.catalogue to stdout"),
    harmless("copy-from-stdin", "copy core.titles from stdin"),
    # server files and large objects
    refused("pg-read-file", "select pg_read_file('/etc/passwd')", "42501"),
    refused("pg-read-file-config", "select pg_read_file('postgresql.conf')", "42501"),
    refused("pg-read-binary-file", "select pg_read_binary_file('/etc/passwd')", "42501"),
    refused("pg-ls-dir", "select pg_ls_dir('.')", "42501"),
    refused("pg-stat-file", "select pg_stat_file('postgresql.conf')", "42501"),
    refused("lo-import", "select lo_import('/etc/hostname')"),
    refused("lo-export", "select lo_export(lo_from_bytea(0, 'x'), '{lo_file}')"),
    harmless("lo-create", "select lo_create(0)"),  # PostgreSQL 15 allows it in a read-only transaction
    # roles, session authorization and read-only mode
    refused("set-config-role-postgres", "select set_config('role', 'postgres', true)"),
    refused("set-config-role-data-scientist", "select set_config('role', 'data_scientist', false)"),
    refused("set-config-session-authorization", "select set_config('session_authorization', 'postgres', false)"),
    refused("set-config-read-write", "select set_config('transaction_read_only', 'off', true)"),
    harmless("set-config-default-read-write", "select set_config('default_transaction_read_only', 'off', false)"),
    refused(
        "reset-role-then-read-api-keys",
        "select set_config('role', 'none', true), query_to_xml('select * from api.keys', true, false, '')",
        "42501",
    ),
    refused(
        "reset-role-then-read-app-users",
        "select set_config('role', 'none', true), query_to_xml('select * from app.users', true, false, '')",
        "42501",
    ),
    harmless("lo-from-bytea", "select lo_from_bytea(0, 'x')"),
    refused("set-role-postgres", "set role postgres"),
    refused("set-role-data-scientist", "set role data_scientist"),
    harmless("reset-role", "reset role"),
    harmless("set-role-none", "set role none"),
    refused("set-session-authorization", "set session authorization postgres"),
    harmless("reset-session-authorization", "reset session authorization"),
    harmless("set-session-characteristics", "set session characteristics as transaction read write"),
    harmless("set-transaction-read-write", "set transaction read write"),
    harmless("set-transaction-read-only-off", "set transaction_read_only = off"),
    harmless("set-default-read-only-off", "set default_transaction_read_only = off"),
    harmless("set-search-path", "set search_path = public, pg_temp"),
    # dblink (installed for this module where the server has it; else the functions do not exist)
    refused("dblink-exec", f"select dblink_exec('{OWNER_CONN}', 'create table public.nw_dblink (x int)')"),
    refused(
        "dblink-query", f"select * from dblink('{OWNER_CONN}', 'select rolname from pg_authid') as t(rolname name)"
    ),
    refused("dblink-connect", f"select dblink_connect('nw', '{OWNER_CONN}')"),
    # transaction control
    harmless("commit", "commit"),
    harmless("commit-and-chain", "commit and chain"),
    harmless("end", "end"),
    harmless("rollback", "rollback"),
    harmless("begin", "begin"),
    harmless("begin-read-write", "begin read write"),
    harmless("start-transaction-read-write", "start transaction read write"),
    harmless("savepoint", "savepoint nw"),
    harmless("prepare-transaction", "prepare transaction 'nw_pwn'"),
    # other sessions and the server itself
    harmless("terminate-own-backend", "select pg_terminate_backend(pg_backend_pid())"),
    harmless(
        "terminate-other-backends",
        "select pg_terminate_backend(pid) from pg_stat_activity"
        " where datname = current_database() and pid <> pg_backend_pid()",
    ),
    harmless("cancel-own-backend", "select pg_cancel_backend(pg_backend_pid())"),
    harmless(
        "cancel-other-backends",
        "select pg_cancel_backend(pid) from pg_stat_activity"
        " where datname = current_database() and pid <> pg_backend_pid()",
    ),
    refused("reload-conf", "select pg_reload_conf()", "42501"),
    refused("rotate-logfile", "select pg_rotate_logfile()", "42501"),
    refused("checkpoint", "checkpoint"),
    refused("load-library", "load 'nw_pwn'"),
    refused("show-data-directory", "show data_directory", "42501"),
    refused("nextval", "select nextval('{seq}')"),
    refused("setval", "select setval('{seq}', 1000)"),
    # notifications
    harmless("notify", "notify nw_api_sql, 'x'"),
    harmless("pg-notify", "select pg_notify('nw_api_sql', 'x')"),
    harmless("listen", "listen nw_api_sql"),
    # locks, and advisory locks that would outlive the request
    refused("lock-table-exclusive", "lock table core.titles"),
    harmless("lock-table-access-share", "lock table core.titles in access share mode"),
    refused("select-for-update", "select * from core.titles for update"),
    refused("select-for-share", "select * from core.titles limit 1 for share"),
    harmless("advisory-lock", "select pg_advisory_lock(424243)"),
    harmless("advisory-lock-shared", "select pg_advisory_lock_shared(424244)"),
    harmless("advisory-try-lock", "select pg_try_advisory_lock(424245)"),
    harmless("advisory-xact-lock", "select pg_advisory_xact_lock(424246)"),
    harmless("advisory-lock-in-do", "do $$ begin perform pg_advisory_lock(424247); end $$"),
    # procedural code, prepared statements, cursors, session resets
    refused("do-delete", "do $$ begin delete from app.users; end $$"),
    refused("do-set-role", "do $$ begin execute 'set role postgres'; end $$"),
    refused("do-read-write", "do $$ begin set transaction_read_only = off; create table public.nw_pwn (x int); end $$"),
    refused("call", "call public.nw_pwn()"),
    harmless("prepare", "prepare nw_p as select 1"),
    harmless("prepare-delete", "prepare nw_d as delete from app.users"),
    harmless("execute", "execute nw_p"),
    harmless("deallocate-all", "deallocate all"),
    harmless("declare-cursor-with-hold", "declare nw_c cursor with hold for select * from core.titles"),
    harmless("discard-all", "discard all"),
    # endless and huge (results of at most ~40 MB even if all of it were fetched)
    refused("count-to-a-trillion", "select count(*) from generate_series(1, 1e12)", "57014"),
    refused(
        "timeout-off-inside-the-statement", "select set_config('statement_timeout', '0', true), pg_sleep(3)", "57014"
    ),
    harmless("endless-recursive-cte", "with recursive r as (select 1 as x union all select 1 from r) select * from r"),
    harmless("huge-value", "select repeat('x', 20000000)"),
    harmless("wide-rows", "select repeat('x', 1000) from generate_series(1, 40000)"),
    harmless("many-rows", "select g, md5(g::text) from generate_series(1, 200000) as g"),
    # reading outside the grants
    refused("read-app-users", "select * from app.users", "42501"),
    refused("read-app-viewing-events", "select count(*) from app.viewing_events", "42501"),
    refused(
        "read-app-users-via-query-to-xml", "select query_to_xml('select * from app.users', true, false, '')", "42501"
    ),
    refused("read-api-keys", "select * from api.keys", "42501"),
    refused("read-api-idempotency", "select * from api.idempotency", "42501"),
    refused("read-pg-authid", "select * from pg_authid", "42501"),
    refused("read-pg-shadow", "select usename, passwd from pg_shadow", "42501"),
]


@dataclass
class Env:
    """The API, the placeholders of the payloads, and the state and session every request must leave as found."""

    api: Any
    placeholders: dict[str, str]
    files: list[str]
    person: tuple[str, str] = ("", "")  # another analyst's own login (pgAdmin, say) and its password
    baseline: dict[str, Any] = field(default_factory=dict)
    session: dict[str, Any] = field(default_factory=dict)

    @property
    def target(self) -> Target:
        return self.api.target

    @property
    def key_id(self) -> str:
        """The id of the analyst key the requests use by default."""
        key_id = keys.parse_key_id(self.api.keys["analyst"])
        assert key_id is not None
        return key_id

    def _login(self, user: str, password: str) -> dict[str, Any]:
        target = self.target
        return {
            "host": target.host,
            "port": target.port,
            "dbname": target.database,
            "user": user,
            "password": password,
            "connect_timeout": 5,
        }

    @property
    def analyst_login(self) -> dict[str, Any]:
        """The analyst key's own database login, as /sql logs in for it."""
        login = logins.key_target(self.target, self.key_id)
        return self._login(login.user, login.password)

    @property
    def person_login(self) -> dict[str, Any]:
        return self._login(*self.person)

    def render(self, statement: str) -> str:
        for name, value in self.placeholders.items():
            statement = statement.replace("{" + name + "}", value)
        return statement

    def post(
        self, statement: str, *, role: str | None = "analyst", fmt: str | None = None, key: str | None = None
    ) -> httpx.Response:
        body: dict[str, str] = {"sql": statement}
        if fmt is not None:
            body["format"] = fmt
        headers = {"X-API-Key": key if key is not None else self.api.keys[role]} if role or key else {}
        return self.api.client.post("/sql", json=body, headers=headers)

    def session_probe(self) -> dict[str, Any]:
        response = self.post(SESSION_PROBE)
        assert response.status_code == 200, response.text
        result = response.json()
        return dict(zip([column["name"] for column in result["columns"]], result["rows"][0], strict=True))


def snapshot(env: Env) -> dict[str, Any]:
    """The database state no request may change, as the owner sees it (in a connection of its own)."""
    state: dict[str, Any] = {}
    with closing(env.target.connect()) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            for name, statement in STATE.items():
                cur.execute(statement)
                state[name] = cur.fetchall()
            counts = {}
            for table in COUNTED:
                cur.execute("select to_regclass(%s) is not null", (table,))
                if cur.fetchone()[0]:
                    cur.execute(f"select count(*) from {table}")
                    counts[table] = cur.fetchone()[0]
            state["row counts"] = counts
            written = []
            for path in env.files:
                cur.execute("select pg_stat_file(%s, true) is not null", (path,))
                if cur.fetchone()[0]:
                    written.append(path)
            state["files the server wrote"] = written
    # the key's login still logs in with the password the API derives for it, and so does another analyst's
    for name, login in (("the key's login logs in", env.analyst_login), ("a person's login logs in", env.person_login)):
        try:
            psycopg2.connect(**login).close()
            state[name] = True
        except psycopg2.OperationalError as exc:
            state[name] = str(exc)
    if env.target.embedded:  # the same machine: look for ourselves too
        state["files on this machine"] = [path for path in env.files if Path(path).exists()]
    return state


def _assert_unchanged(env: Env, before: dict[str, Any] | None = None) -> None:
    """The database is as ``before`` (default: as the module found it); the message lists what changed."""
    before = env.baseline if before is None else before
    changed = changes(before, snapshot(env))
    assert not changed, "\n".join(f"{name}: {was!r} -> {now!r}" for name, (was, now) in changed.items())


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The entries that differ, as ``{name: (before, after)}`` (empty when nothing changed)."""
    return {
        name: (before.get(name), after.get(name))
        for name in before.keys() | after.keys()
        if before.get(name) != after.get(name)
    }


def _owner(target: Target, *statements: str | sql.Composable) -> None:
    with closing(target.connect()) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)


ROLE_FLAGS = ("superuser", "inherit", "createrole", "createdb", "login", "replication", "bypassrls")


def _repair(target: Target, before: dict[str, Any], after: dict[str, Any], key_id: str) -> None:
    """Undo cluster-wide damage a payload might have done despite the API (roles and settings are shared by
    every database of the server; the groups and the logins of keys and people included), so that a failing
    run here leaves the server as it found it."""
    statements: list[str | sql.Composable] = []
    roles_before = {row[0]: row for row in before["roles"]}
    for row in after["roles"]:
        name, was = row[0], roles_before.get(row[0])
        if was is None:
            if name == INTRUDER:
                statements.append(f"drop role {INTRUDER}")
        elif row != was:  # flags and comment of a group or a login: back as they were
            flags = " ".join(("" if on else "no") + flag for flag, on in zip(ROLE_FLAGS, was[1:8], strict=True))
            statements.append(
                sql.SQL("alter role {} " + flags + " connection limit {}").format(
                    sql.Identifier(name), sql.Literal(was[8])
                )
            )
            statements.append(sql.SQL("comment on role {} is {}").format(sql.Identifier(name), sql.Literal(was[10])))
    for role, member, _ in set(after["memberships"]) - set(before["memberships"]):
        statements.append(sql.SQL("revoke {} from {}").format(sql.Identifier(role), sql.Identifier(member)))
    for (gid,) in after["prepared transactions"]:
        if (gid,) not in before["prepared transactions"]:
            statements.append(sql.SQL("rollback prepared {}").format(sql.Literal(gid)))
    if after["postgresql.auto.conf"] != before["postgresql.auto.conf"]:
        statements.append("alter system reset work_mem")
    settings_before = {(database, role): config for database, role, config in before["database and role settings"]}
    settings_after = {(database, role): config for database, role, config in after["database and role settings"]}
    for database, role in settings_before.keys() | settings_after.keys():
        config = settings_before.get((database, role))
        if settings_after.get((database, role)) == config:
            continue
        if role == "*":
            statements.append(sql.SQL("alter database {} reset all").format(sql.Identifier(database)))
            scope = sql.SQL("alter database {}").format(sql.Identifier(database))
        else:
            where = sql.SQL("") if database == "*" else sql.SQL(" in database {}").format(sql.Identifier(database))
            statements.append(sql.SQL("alter role {}{} reset all").format(sql.Identifier(role), where))
            scope = sql.SQL("alter role {}{}").format(sql.Identifier(role), where)
        for setting in (config or "{}").strip("{}").split(","):
            if setting:
                name, _, value = setting.strip('"').partition("=")
                statements.append(sql.SQL("{} set {} = {}").format(scope, sql.Identifier(name), sql.Literal(value)))
    if after["the key's login logs in"] is not True and before["the key's login logs in"] is True:
        login = logins.key_target(target, key_id)
        statements.append(
            sql.SQL("alter role {} login password {}").format(sql.Identifier(login.user), sql.Literal(login.password))
        )
    for statement in statements:
        try:
            _owner(target, statement)
        except Exception as exc:  # best effort: report, go on with the rest
            print(f"repair failed: {statement!r}: {exc}")


@pytest.fixture(scope="module")
def env(api: Any) -> Iterator[Env]:
    target: Target = api.target
    token = uuid.uuid4().hex[:12]
    files = {name: f"/tmp/nw_api_sql_{token}_{name}" for name in ("copy_file", "program_file", "lo_file")}
    placeholders = {
        **files,
        "host": target.host,
        "port": str(target.port),
        "db": target.database,
        "owner": target.user,
        "seq": SEQUENCE,
    }
    installed_dblink = bool(
        query(
            target,
            "select 1 from pg_available_extensions where name = 'dblink'"
            " and not exists (select from pg_extension where extname = 'dblink')",
        )
    )
    if installed_dblink:
        _owner(target, "create extension dblink")
    _owner(
        target,
        f"create sequence if not exists {SEQUENCE}",
        f"grant usage, select, update on sequence {SEQUENCE} to analyst",
    )
    person = f"p{target.database[-12:]}_sql_victim"
    with closing(target.connect()) as conn:
        password = logins.add_login(conn, person, "analyst")  # dropped with the database
    found = Env(api, placeholders, list(files.values()), (person, password))
    warm_up = found.post("select 1")
    assert warm_up.status_code == 200, warm_up.text
    found.baseline = snapshot(found)
    found.session = found.session_probe()
    try:
        yield found
    finally:
        _repair(target, found.baseline, snapshot(found), found.key_id)
        _owner(target, f"drop sequence if exists {SEQUENCE}")
        if installed_dblink:
            _owner(target, "drop extension if exists dblink")
        for path in files.values():
            Path(path).unlink(missing_ok=True)


RESIDUE = ("sql_prepared_statements", "held_cursors", "listening_channels", "own_temp_relations")


def _assert_clean_session(env: Env, before: dict[str, Any] | None = None) -> None:
    """The next request's session is the key's own login (a member of analyst), read-only, with the 1 s limit and the
    settings of the module's first one; and it holds no more leftovers (prepared statements, cursors, ...) than
    ``before`` (default: none). Each request has a connection of its own: nothing should ever be left."""
    session = env.session_probe()
    assert session["session_user"] == session["current_user"] == logins.key_login(env.key_id), session
    assert session["transaction_read_only"] == "on", session
    assert session["statement_timeout"] in ("1s", "1000ms"), session
    settings = {name: value for name, value in session.items() if name not in RESIDUE}
    expected = {name: value for name, value in env.session.items() if name not in RESIDUE}
    assert settings == expected, changes(expected, settings)
    allowed = before or env.session
    left = {name: (allowed[name], session[name]) for name in RESIDUE if session[name] > allowed[name]}
    assert left == {}, f"left for the next request (before, after): {left}"


def _error(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) >= {"detail", "sqlstate"}, body
    return body


# happy paths


def test_select_from_the_catalogue(env: Env) -> None:
    response = env.post("select * from marts.catalogue")
    assert response.status_code == 200, response.text
    result = response.json()
    assert set(result) == {"columns", "rows", "row_count", "truncated", "truncated_by", "elapsed_ms"}
    with closing(env.target.connect()) as conn, conn.cursor() as cur:
        cur.execute("select * from marts.catalogue limit 0")
        names = [column.name for column in cur.description]
        cur.execute("select content_id from marts.catalogue")
        ids = sorted(row[0] for row in cur.fetchall())
    assert [column["name"] for column in result["columns"]] == names
    assert all(isinstance(column["type"], str) and column["type"] for column in result["columns"])
    assert (
        result["row_count"]
        == len(result["rows"])
        == len(ids)
        == query(env.target, "select count(*) from marts.catalogue")[0][0]
    )
    assert result["truncated"] is False and result["truncated_by"] is None
    assert isinstance(result["elapsed_ms"], int | float) and result["elapsed_ms"] >= 0
    position = names.index("content_id")
    assert sorted(row[position] for row in result["rows"]) == ids


def test_values_come_back_as_json(env: Env) -> None:
    response = env.post(
        "select 1::integer as i, 'a'::text as t, true as b, null::text as n, date '2020-01-02' as d, 1.5::numeric as x"
    )
    assert response.status_code == 200, response.text
    result = response.json()
    assert [column["name"] for column in result["columns"]] == ["i", "t", "b", "n", "d", "x"]
    i, t, b, n, d, x = result["rows"][0]
    assert (i, t, b, n, d, float(x)) == (1, "a", True, None, "2020-01-02", 1.5)


@pytest.mark.parametrize(
    ("count", "truncated"), [(10, False), (1000, False), (1001, True), (5000, True)], ids=lambda v: str(v).lower()
)
def test_at_most_1000_rows(env: Env, count: int, truncated: bool) -> None:
    response = env.post(f"select generate_series(1, {count})")
    assert response.status_code == 200, response.text
    result = response.json()
    expected = min(count, 1000)
    assert result["rows"] == [[value] for value in range(1, expected + 1)]
    assert result["row_count"] == expected
    assert result["truncated"] is truncated


def test_csv(env: Env) -> None:
    response = env.post("select g as i, 'a,b \"c\"' as s from generate_series(1, 3) as g", fmt="csv")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["x-truncated"] == "false"
    assert list(csv.reader(io.StringIO(response.text))) == [["i", "s"]] + [[str(i), 'a,b "c"'] for i in (1, 2, 3)]


def test_csv_truncated(env: Env) -> None:
    response = env.post("select generate_series(1, 5000) as n", fmt="csv")
    assert response.status_code == 200, response.text
    assert response.headers["x-truncated"] == "true"
    assert list(csv.reader(io.StringIO(response.text))) == [["n"]] + [[str(i)] for i in range(1, 1001)]


def test_syntax_error_is_a_400_with_the_database_message(env: Env) -> None:
    response = env.post("selec 1")
    assert response.status_code == 400, response.text
    error = _error(response)
    assert error["sqlstate"] == "42601"
    assert 'syntax error at or near "selec"' in error["detail"]


def test_statement_timeout(env: Env) -> None:
    response = env.post("select pg_sleep(5)")  # returns (after the 1 s limit); no time is asserted
    assert response.status_code == 400, response.text
    error = _error(response)
    assert error["sqlstate"] == "57014"
    assert "statement timeout" in error["detail"]


@pytest.mark.parametrize(
    "body",
    [{}, {"sql": ""}, {"sql": "select 1", "format": "xml"}, {"sql": "select 1", "extra": 1}, {"sql": "x" * 100_001}],
    ids=["no-sql", "empty-sql", "unknown-format", "unknown-field", "too-long"],
)
def test_malformed_requests_are_422(env: Env, body: dict[str, Any]) -> None:
    response = env.api.client.post("/sql", json=body, headers=env.api.headers("analyst"))
    assert response.status_code == 422, response.text


def test_admin_may_use_it(env: Env) -> None:
    response = env.post("select current_user::text, pg_has_role('analyst', 'usage')", role="admin")
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == [[logins.key_login(keys.parse_key_id(env.api.keys["admin"])), True]]


def _while_holding_lock(env: Env, role: str | None, key: str | None = None) -> tuple[httpx.Response, int]:
    """Send ``select count(*) from LOCKED`` while the owner holds an ACCESS EXCLUSIVE lock on it, watching pg_locks
    meanwhile.

    Had the statement run, it would wait on the owner's lock until its timeout: a waiter the watcher sees.
    Returns the response and how many times a waiter was seen.
    """
    seen = 0
    waiting = f"select count(*) from pg_locks where relation = '{LOCKED}'::regclass and not granted"
    with closing(env.target.connect()) as holder, closing(env.target.connect()) as watcher:
        watcher.autocommit = True
        with holder.cursor() as held, watcher.cursor() as watch:
            held.execute(f"lock table {LOCKED} in access exclusive mode")  # until the rollback below
            try:
                with ThreadPoolExecutor(1) as pool:
                    future = pool.submit(env.post, f"select count(*) from {LOCKED}", role=role, key=key)
                    while True:
                        done = future.done()
                        watch.execute(waiting)
                        seen += watch.fetchone()[0]
                        if done:
                            break
                        time.sleep(0.005)
                    response = future.result()
            finally:
                holder.rollback()
    return response, seen


def test_the_lock_watch_sees_a_statement_that_runs(env: Env) -> None:
    """The control of the next test: with a valid key the statement runs, waits on the lock, and times out."""
    response, seen = _while_holding_lock(env, "analyst")
    assert response.status_code == 400 and _error(response)["sqlstate"] == "57014", response.text
    assert seen > 0


@pytest.mark.parametrize(
    ("role", "key", "status"),
    [
        (None, None, 401),
        (None, "nwk_000000000000_not-a-key", 401),
        (None, "garbage", 401),
        ("data_scientist", None, 403),
    ],
    ids=["anonymous", "unknown-key", "malformed-key", "data-scientist"],
)
def test_refused_callers_run_nothing(env: Env, role: str | None, key: str | None, status: int) -> None:
    response, seen = _while_holding_lock(env, role, key)
    assert response.status_code == status, response.text
    assert seen == 0, "the statement ran (it waited on the owner's lock) although the caller was refused"
    assert not query(env.target, f"select 1 from pg_locks where relation = '{LOCKED}'::regclass")
    _assert_unchanged(env)


# hostile payloads


@pytest.mark.parametrize("payload", HOSTILE, ids=[payload.id for payload in HOSTILE])
def test_hostile_statement_is_refused_or_harmless(env: Env, payload: Payload) -> None:
    session = env.session_probe()  # compared with the one after: what this payload left, if anything
    response = env.post(env.render(payload.sql))
    assert response.status_code < 500, response.text
    if response.status_code == 400:  # the database's refusal, with its SQLSTATE
        sqlstate = _error(response)["sqlstate"]
        assert isinstance(sqlstate, str) and len(sqlstate) == 5, response.text
    if payload.refused:
        assert 400 <= response.status_code < 500, response.text
        if payload.sqlstates:
            assert _error(response)["sqlstate"] in payload.sqlstates, response.text
    elif response.status_code == 200:
        assert response.json()["row_count"] <= 1000
    _assert_unchanged(env)
    _assert_clean_session(env, session)


@pytest.mark.parametrize("function", ["pg_terminate_backend", "pg_cancel_backend"])
def test_a_request_cannot_end_other_analysts_sessions(env: Env, function: str) -> None:
    """Another analyst's session (pgAdmin, say) survives a request that signals it: its pid is in pg_stat_activity."""
    with closing(psycopg2.connect(**env.person_login)) as victim:
        victim.autocommit = True
        pid = victim.get_backend_pid()
        with ThreadPoolExecutor(1) as pool, victim.cursor() as cur:
            running = pool.submit(cur.execute, "select pg_sleep(60)")  # busy until the test ends it
            while not query(env.target, f"select 1 from pg_stat_activity where pid = {pid} and state = 'active'"):
                time.sleep(0.005)
            response = env.post(f"select {function}({pid})")
            assert response.status_code == 400 and _error(response)["sqlstate"] == "42501", response.text
            assert query(env.target, f"select state from pg_stat_activity where pid = {pid}") == [("active",)]
            query(env.target, f"select pg_cancel_backend({pid})")  # the owner (a superuser) ends the wait
            with pytest.raises(psycopg2.errors.QueryCanceled):
                running.result()
            cur.execute("select 1")  # the victim's session is still there
            assert cur.fetchone() == (1,)


def test_hostile_statements_are_distinct_and_many() -> None:
    assert len({payload.id for payload in HOSTILE}) == len(HOSTILE) >= 50


def test_session_settings_do_not_outlive_their_request(env: Env) -> None:
    for statement in (
        "set statement_timeout = 0",
        "select set_config('statement_timeout', '0', false)",
        "set session characteristics as transaction read write",
    ):
        response = env.post(statement)
        assert response.status_code < 500, response.text
    response = env.post("select pg_sleep(5)")  # still stopped at the limit
    assert response.status_code == 400 and _error(response)["sqlstate"] == "57014", response.text
    _assert_clean_session(env)


def test_after_everything_the_pool_and_the_owner_are_fine(env: Env) -> None:
    _assert_unchanged(env)
    _assert_clean_session(env)
    response = env.post("select count(*) from marts.catalogue")
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == [[query(env.target, "select count(*) from marts.catalogue")[0][0]]]
    relations = query(
        env.target,
        "select format('%I.%I', n.nspname, c.relname)"
        " from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
        f" where c.relkind in ('r', 'p', 'v', 'm') and {USER_SCHEMAS}",
    )
    with closing(env.target.connect()) as conn, conn.cursor() as cur:  # the owner still reads every relation
        for (relation,) in relations:
            cur.execute(f"select count(*) from {relation}")
            assert cur.fetchone()[0] >= 0
