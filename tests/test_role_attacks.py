"""Attacks on the warehouse by each kind of user it has, judged by the database afterwards and by the others.

The attackers: an analyst's own login, a data scientist's own login, an API key's login (as the API
logs in for the key, ``logins.key_target``), each a fresh login per attack, and a local OS user who
is not the owner (``nobody``, with the wheel's psql). Each attack runs in a session that has turned
``default_transaction_read_only`` off (so grants, not the read-only default, must refuse writes); a
statement that must be refused must fail with the SQLSTATE given. Then, whatever the attack's own
outcome:

- the database is as it was (``snapshot``): roles, their flags, comments and memberships, role and
  database settings, grants and owners of every relation, schema and function, row checksums of the
  tables, the current run, sequences, default privileges, large objects, advisory locks, prepared
  transactions, extensions, event triggers, publications, server files an attack tried to write.
  Only the attacker's own user-settable settings and default privileges are its own business;
- the others can still work (``assert_others_work``): another analyst's open session and a new one
  read the marts, the owner takes every lock the pipeline takes, the API's ``/sql`` answers another
  key, the watchdog runs.

The group limits here are tight and for this database only (1 s statements for analyst, 1 s idle
transactions for both groups), and a watchdog sweeps every 0.2 s, as in tests/test_logins.py. A
few attacks leave their session open in a transaction (``hold``): the owner's locks must still be
granted, because the watchdog or PostgreSQL ends that session. Nothing here asserts a time.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import os
import re
import subprocess
import sys
import sysconfig
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg2
import pytest
from conftest import Api, api_for
from psycopg2 import sql
from queries import SERVER_STATE, make_groups

from recommender import activity
from recommender.api import keys
from recommender.api.app import SETUP_LOCK
from recommender.ml import publish
from recommender.warehouse import access, logins, passwords, watchdog
from recommender.warehouse.embedded import BIN, psql_path
from recommender.warehouse.targets import (
    LOGIN_COMMENT,
    PROJECT_ROOT,
    Target,
    drop_database,
    ensure_database,
    owner_password,
)

KINDS = ("analyst", "data_scientist", "key")  # the key is an analyst key: the one /sql serves
READERS = ("analyst", "key")
PUBLISH_LOCK = 7674352282522014670  # the advisory lock key the publisher once took (named in the issue)
SECRET_QUERY = "select 'nwatk secret statement of the owner'"  # what the owner's open session last ran

# -------------------------------------------------------------------------------------------------------------------
# the attacks of the database's own users


@dataclass(frozen=True)
class Attack:
    id: str
    statements: tuple[str, ...]  # run in order; "\\reconnect" logs in again as the attacker
    refused: tuple[str, ...] = KINDS  # kinds of attacker that must see a statement fail with one of sqlstates
    sqlstates: tuple[str, ...] = ("42501",)
    kinds: tuple[str, ...] = KINDS  # kinds of attacker it applies to
    transaction: bool = True  # in one transaction, rolled back at the end (writes a kind may make leave nothing)
    hold: bool = False  # the session stays open while the others work, until the watchdog or PostgreSQL ends it
    hole: str | None = None  # a known hole that makes the attack succeed (see known_hole); reported, not fixed here
    changes: tuple[str, ...] = ()  # snapshot entries it may change when it is not refused (a sequence's value)


def attack(id: str, *statements: str, **options: Any) -> Attack:
    return Attack(id, statements, **options)


# A person's login may not SET ROLE to its group on PostgreSQL 16+ (recommender/logins.py), so it cannot ALTER it.
SET_ROLE = "set-role"
# Membership alone lets a login ALTER DEFAULT PRIVILEGES FOR ROLE its group (inert: nothing is created as the group).
GROUP_DEFAULTS = "group-defaults"

ROLES = [
    attack("alter-analyst-statement-timeout", "alter role analyst set statement_timeout = 0"),
    attack("alter-analyst-work-mem", "alter role analyst set work_mem = '2GB'"),
    attack("alter-analyst-password", "alter role analyst password 'x'"),
    attack(
        "alter-data-scientist-idle-timeout", "alter role data_scientist set idle_in_transaction_session_timeout = 0"
    ),
    attack("alter-group-login", "alter role {group} login"),
    attack("alter-group-in-database", "alter role {group} in database {db} set statement_timeout = 0"),
    attack("alter-group-reset-all", "alter role {group} reset all"),
    attack(
        "set-role-group-then-alter-its-timeout",
        "set role {group}",
        "alter role {group} in database {db} set statement_timeout = 0",
        hole=SET_ROLE,
    ),
    attack(
        "set-role-group-then-alter-its-password", "set role {group}", "alter role {group} password 'x'", hole=SET_ROLE
    ),
    attack(
        "set-role-group-then-reset-its-limits",
        "set role {group}",
        "alter role {group} in database {db} reset all",
        hole=SET_ROLE,
    ),
    attack(
        "group-default-privileges",
        "alter default privileges for role {group} in schema marts grant select on tables to public",
        hole=GROUP_DEFAULTS,
    ),
    attack("set-role-other-group", "set role {other_group}"),
    attack("set-role-owner", "set role {owner}"),
    attack("set-session-authorization-owner", "set session authorization {owner}"),
    attack("set-role-another-person", "set role {other}"),
    attack("set-config-role-owner", "select set_config('role', '{owner}', false)"),
    attack("reset-role-then-read-api-keys", "reset role", "select * from api.keys"),
    attack("reset-session-authorization-then-read-api-keys", "reset session authorization", "select * from api.keys"),
    attack("grant-group-with-admin-to-self", "grant {group} to {self} with admin option"),
    attack("grant-self-to-group", "grant {self} to {group}"),
    attack("grant-other-group-to-self", "grant {other_group} to {self}"),
    attack("grant-pg-read-all-data-to-self", "grant pg_read_all_data to {self}"),
    attack("grant-pg-signal-backend-to-self", "grant pg_signal_backend to {self}"),
    attack("revoke-group-from-another-person", "revoke analyst from {other}"),
    attack("create-role", "create role nwatk_{token} superuser login password 'x'"),
    attack("alter-self-superuser", "alter role {self} superuser"),
    attack("alter-self-createrole", "alter role {self} createrole"),
    attack("alter-self-createdb", "alter role {self} createdb"),
    attack("alter-self-bypassrls", "alter role {self} bypassrls"),
    attack("alter-self-replication", "alter role {self} replication"),
    attack("alter-self-connection-limit", "alter role {self} connection limit 1000"),
    attack("alter-self-valid-until", "alter role {self} valid until 'infinity'"),
    attack("rename-self", "alter role {self} rename to nwatk_{token}", sqlstates=("42501", "0A000")),
    attack("lift-own-temp-file-limit", "alter role {self} in database {db} set temp_file_limit = -1"),
    attack("lift-own-log-statement", "alter role {self} set log_statement = 'none'"),
    # allowed (its own settings), but the temp_file_limit the owner set must stay: the snapshot keeps it
    attack(
        "reset-own-settings",
        "alter role {self} in database {db} reset all",
        "alter role {self} reset all",
        "\\reconnect",
        "select pg_sleep(0)",
        refused=(),
        transaction=False,
    ),
    attack("comment-on-self", "comment on role {self} is 'netflix_warehouse person login of database postgres'"),
    attack("comment-on-group", "comment on role {group} is 'x'"),
    attack("drop-another-person", "drop role {other}"),
    attack("drop-group", "drop role analyst"),
    # allowed to a member, but the group owns nothing, and the grants made to it are not the member's to revoke
    attack("reassign-what-the-group-owns", "reassign owned by {group} to {self}", refused=()),
    attack("drop-what-the-group-owns", "drop owned by {group}", refused=()),
]

SERVER = [
    attack("alter-database-set", "alter database {db} set default_transaction_read_only = off"),
    attack("alter-database-connection-limit", "alter database {db} connection limit 0"),
    attack("alter-database-owner", "alter database {db} owner to {self}"),
    attack("alter-system", "alter system set statement_timeout = 0", transaction=False),
    attack("set-temp-file-limit", "set temp_file_limit = -1"),
    attack("set-config-temp-file-limit", "select set_config('temp_file_limit', '-1', false)"),
    attack("set-log-statement", "set log_statement = 'none'"),
    attack("set-session-replication-role", "set session_replication_role = replica"),
    attack("set-log-min-duration-statement", "set log_min_duration_statement = -1"),
    attack("set-lo-compat-privileges", "set lo_compat_privileges = on"),
    attack("reload-configuration", "select pg_reload_conf()"),
    attack("checkpoint", "checkpoint", transaction=False),
    attack("load-library", "load 'auto_explain'"),
    attack("reset-statistics", "select pg_stat_reset()"),
    attack("switch-wal", "select pg_switch_wal()"),
    attack("create-database", "create database nwatk_{token}", transaction=False),
    attack("create-schema", "create schema nwatk_{token}"),
    attack("create-extension", "create extension if not exists pg_trgm", sqlstates=("42501", "58P01", "0A000")),
    attack(
        "create-trusted-extension-in-app",
        "create extension if not exists hstore schema app",
        sqlstates=("42501", "58P01", "0A000"),
    ),
    attack(
        "create-event-trigger",
        "create event trigger nwatk_{token} on ddl_command_start execute function pg_catalog.now()",
    ),
    attack("create-publication", "create publication nwatk_{token} for all tables"),
    attack(
        "create-subscription",
        "create subscription nwatk_{token} connection 'host=127.0.0.1 dbname=nowhere' publication p"
        " with (connect = false)",
        transaction=False,
    ),
    attack("create-foreign-data-wrapper", "create foreign data wrapper nwatk_{token}"),
    attack("create-tablespace", "create tablespace nwatk_{token} location '/tmp'", transaction=False),
    attack("create-cast", "create cast (text as bigint) with inout"),
    attack("create-function-in-public", "create function public.nwatk() returns int language sql as 'select 1'"),
    attack(
        "security-definer-that-sets-role-owner",
        "create function app.nwatk() returns text language sql security definer set role = '{owner}'"
        " as 'select current_user::text'",
        "select app.nwatk()",
    ),
    attack(
        "create-procedure-in-app",
        "create procedure app.nwatk() language sql as 'select 1'",
        "call app.nwatk()",
        refused=READERS,
    ),
    attack(
        "trigger-on-app-users",
        "create trigger nwatk before update on app.users"
        " for each row execute function suppress_redundant_updates_trigger()",
    ),
    attack(
        "trigger-on-marts",
        "create trigger nwatk before insert on marts.catalogue"
        " for each row execute function suppress_redundant_updates_trigger()",
    ),
    attack("rule-on-marts", "create rule nwatk as on insert to marts.catalogue do instead nothing"),
    attack("row-level-security-on-app-users", "alter table app.users enable row level security"),
    attack("policy-on-app-users", "create policy nwatk on app.users using (false)"),
    attack(
        "own-pg-terminate-backend", "alter function pg_catalog.pg_terminate_backend(integer, bigint) owner to {self}"
    ),
    # a grant without the right to grant only warns: the snapshot shows nothing changed
    attack(
        "grant-pg-terminate-backend-to-self",
        "grant execute on function pg_catalog.pg_terminate_backend(integer, bigint) to {self}",
        refused=(),
    ),
    attack("grant-app-users-to-self", "grant select on app.users to {self}", refused=()),
]

FILES = [
    attack("copy-to-program", "copy (select 1) to program 'touch {file}'"),
    attack("copy-from-program", "copy marts.catalogue from program 'id'"),
    attack("copy-to-server-file", "copy (select 1) to '{file}'"),
    attack("copy-from-server-file", "copy marts.catalogue from '/etc/hostname'"),
    attack("pg-read-file", "select pg_read_file('/etc/passwd')"),
    attack("pg-read-file-of-the-data-folder", "select pg_read_file('postgresql.auto.conf')"),
    attack("pg-read-binary-file", "select pg_read_binary_file('/etc/passwd')"),
    attack("pg-ls-dir", "select pg_ls_dir('.')"),
    attack("pg-stat-file", "select pg_stat_file('postgresql.conf')"),
    attack("pg-ls-logdir", "select * from pg_ls_logdir()"),
    attack("pg-ls-waldir", "select * from pg_ls_waldir()"),
    attack("lo-import", "select lo_import('/etc/hostname')"),
    attack("lo-export", "select lo_export(0, '{file}')"),
    attack("lo-from-bytea", "select lo_from_bytea(0, 'x')"),
    attack("lo-create", "select lo_create(0)"),
    attack("lo-creat", "select lo_creat(-1)"),
    attack("lo-create-outside-a-transaction", "select lo_from_bytea(0, repeat('x', 100000)::bytea)", transaction=False),
]

SECRETS = [
    attack("read-pg-authid", "select rolname, rolpassword from pg_authid"),
    attack("read-pg-shadow", "select usename, passwd from pg_shadow"),
    attack("read-api-keys", "select * from api.keys"),
    attack("read-api-idempotency", "select * from api.idempotency"),
    attack("read-app-users", "select * from app.users", refused=READERS),
    attack(
        "read-app-events-via-query-to-xml",
        "select query_to_xml('select * from app.viewing_events', true, false, '')",
        refused=READERS,
    ),
    attack("read-hba-rules", "select * from pg_hba_file_rules"),
    attack("read-file-settings", "select * from pg_file_settings"),
    attack("show-data-directory", "show data_directory"),
    attack("show-hba-file", "show hba_file"),
    # allowed, but the rows must hold no secret (checked for every attack): another session's statement
    attack("others-statements", "select usename, query from pg_stat_activity", refused=()),
    attack(
        "others-statements-by-pid",
        "select pg_stat_get_backend_activity(id) from pg_stat_get_backend_idset() as id",
        refused=(),
    ),
    attack("password-hashes-in-pg-roles", "select rolname, rolpassword from pg_roles", refused=()),
]

LOCK_MODES = ("row share", "row exclusive", "share update exclusive", "share", "share row exclusive", "exclusive")
LOCKS = [
    *(
        attack(f"lock-marts-in-{mode.replace(' ', '-')}-mode", f"lock table marts.catalogue in {mode} mode")
        for mode in LOCK_MODES
    ),
    attack("lock-marts", "lock table marts.catalogue"),
    attack("lock-core", "lock table core.titles in access exclusive mode"),
    attack("lock-raw", "lock table raw.raw_titles in exclusive mode"),
    attack("lock-app-users", "lock table app.users in access exclusive mode", refused=READERS),
    attack("lock-app-events-in-share-mode", "lock table app.viewing_events in share mode", refused=READERS),
    attack("lock-predictions-recommendations", "lock table predictions.recommendations in access exclusive mode"),
    attack("lock-predictions-model-runs", "lock table predictions.model_runs in exclusive mode"),
    attack("lock-current-partition", "lock table {partition} in access exclusive mode"),
    attack("lock-api-keys", "lock table api.keys in access share mode"),
    attack("select-marts-for-update", "select * from marts.catalogue for update"),
    attack("select-marts-for-no-key-update", "select * from marts.catalogue for no key update"),
    attack("select-marts-for-share", "select * from marts.catalogue for share"),
    attack("select-marts-for-key-share", "select * from marts.catalogue for key share"),
    attack("select-model-runs-for-update", "select * from predictions.model_runs for update"),
    attack("select-app-users-for-update", "select * from app.users for update", refused=READERS),
    attack("advisory-lock-of-the-publisher", f"select pg_advisory_lock({PUBLISH_LOCK})"),
    attack("advisory-lock-of-the-api-setup", f"select pg_advisory_lock({SETUP_LOCK})"),
    attack("advisory-lock-shared", "select pg_advisory_lock_shared(1)"),
    attack("advisory-try-lock", "select pg_try_advisory_lock(1)"),
    attack("advisory-xact-lock", "select pg_advisory_xact_lock(1)"),
    attack("advisory-try-xact-lock-shared", "select pg_try_advisory_xact_lock_shared(1)"),
    attack("advisory-lock-of-two-keys", "select pg_advisory_lock(1, 2)"),
    attack("advisory-try-lock-shared-of-two-keys", "select pg_try_advisory_lock_shared(1, 2)"),
    attack("advisory-lock-in-do-block", "do $$ begin perform pg_advisory_lock(1); end $$"),
    attack(
        "advisory-lock-in-a-function-of-ones-own",
        "create function app.nwatk() returns void language sql as 'select pg_advisory_lock(1)'",
        "select app.nwatk()",
    ),
]

# sessions that stay in a transaction holding a lock: the owner must get every lock all the same
HOLDS = [
    attack(
        "idle-in-transaction-holding-marts",
        "set idle_in_transaction_session_timeout = 0",
        "begin",
        "lock table marts.catalogue in access share mode",
        refused=(),
        transaction=False,
        hold=True,
    ),
    attack(
        "idle-in-transaction-after-reading-predictions",
        "set idle_in_transaction_session_timeout = 0",
        "begin",
        "select count(*) from predictions.current_recommendations",
        refused=(),
        transaction=False,
        hold=True,
    ),
    attack(
        "idle-in-transaction-holding-app-users",
        "set idle_in_transaction_session_timeout = 0",
        "begin",
        "lock table app.users in access exclusive mode",
        refused=(),
        kinds=("data_scientist",),
        transaction=False,
        hold=True,
    ),
]

# statements over the group's limit (1 s here): the watchdog cancels them whatever the session set
TIMEOUTS = [
    attack(
        "lifted-statement-timeout",
        "set statement_timeout = 0",
        "select pg_sleep(60)",
        sqlstates=("57014",),
        kinds=READERS,
        transaction=False,
    ),
    attack(
        "statement-timeout-lifted-inside-the-statement",
        "select set_config('statement_timeout', '0', false), pg_sleep(60)",
        sqlstates=("57014",),
        kinds=READERS,
        transaction=False,
    ),
    attack(
        "lifted-statement-timeout-in-a-do-block",
        "set statement_timeout = 0",
        "do $$ begin perform pg_sleep(60); end $$",
        sqlstates=("57014",),
        kinds=READERS,
        transaction=False,
    ),
    attack(
        "lifted-statement-timeout-in-own-role-settings",
        "alter role {self} in database {db} set statement_timeout = 0",
        "\\reconnect",
        "select pg_sleep(60)",
        sqlstates=("57014",),
        kinds=READERS,
        transaction=False,
    ),
    attack(
        "lifted-local-statement-timeout",
        "set statement_timeout = 0",
        "begin",
        "set local statement_timeout = 0",
        "select pg_sleep(60)",
        sqlstates=("57014",),
        kinds=READERS,
        transaction=False,
    ),
]

RESOURCES = [
    attack("temp-table", "create temp table nwatk (x int)", refused=READERS),
    attack("temp-table-as", "create temp table nwatk as select * from marts.catalogue", refused=READERS),
    attack("select-into-temp", "select * into temp nwatk from marts.catalogue", refused=READERS),
    attack("unlogged-table-in-public", "create unlogged table public.nwatk (x int)"),
    attack(
        "prepared-transaction",
        "begin",
        "select count(*) from marts.catalogue",
        "prepare transaction 'nwatk_{token}'",
        sqlstates=("55000", "42501"),
        transaction=False,
    ),
    attack(
        "notify-flood",
        "select count(pg_notify('nwatk', md5(g::text))) from generate_series(1, 20000) as g",
        refused=(),
        transaction=False,
    ),
    attack("listen", "listen nwatk", "listen nwatk_too", refused=(), transaction=False),
    attack(
        "cursor-with-hold",
        "declare nwatk cursor with hold for select * from marts.catalogue, generate_series(1, 1000)",
        refused=(),
        transaction=False,
    ),
    attack("prepared-statement", "prepare nwatk as select * from marts.catalogue", refused=(), transaction=False),
]

SESSIONS = [
    attack("cancel-another-analyst", "select pg_cancel_backend({other_pid})"),
    attack("terminate-another-analyst", "select pg_terminate_backend({other_pid})"),
    attack("cancel-the-watchdog", "select pg_cancel_backend({watchdog_pid})"),
    attack("terminate-the-watchdog", "select pg_terminate_backend({watchdog_pid})"),
    attack("terminate-the-api", "select pg_terminate_backend({api_pid})"),
    attack("terminate-the-owner", "select pg_terminate_backend({owner_pid})"),
    attack(
        "terminate-everyone", "select pg_terminate_backend(pid) from pg_stat_activity where pid <> pg_backend_pid()"
    ),
    attack("cancel-own-statement", "select pg_cancel_backend(pg_backend_pid())"),
    attack("log-the-owner-s-memory", "select pg_log_backend_memory_contexts({owner_pid})"),
]


def _writes(schema: str, table: str, column: str, refused: tuple[str, ...] = KINDS) -> list[Attack]:
    """Insert, update, delete (``refused`` decides who may), and what only the owner may do to the table."""
    name = f"{schema}.{table}"
    return [
        attack(f"insert-{schema}", f"insert into {name} select * from {name} limit 1", refused=refused),
        attack(f"update-{schema}", f"update {name} set {column} = {column}", refused=refused),
        attack(f"delete-{schema}", f"delete from {name}", refused=refused),
        attack(f"truncate-{schema}", f"truncate {name} cascade"),
        attack(f"alter-{schema}", f"alter table {name} add column nwatk text"),
        attack(f"drop-{schema}", f"drop table {name} cascade"),
        attack(f"create-table-in-{schema}", f"create table {schema}.nwatk (x int)", refused=refused),
    ]


WRITES = [
    *_writes("raw", "raw_titles", "title"),
    *_writes("core", "titles", "title"),
    *_writes("marts", "catalogue", "title"),
    *_writes("app", "users", "plan", refused=READERS),
    attack("create-index-on-core", "create index nwatk on core.titles (title)"),
    attack("refresh-materialized-view", "refresh materialized view marts.title_count"),
    attack("insert-into-staging-view", "insert into staging.stg_titles select * from staging.stg_titles limit 1"),
    attack("update-staging-view", "update staging.stg_titles set title = title"),
    attack("create-view-in-staging", "create view staging.nwatk as select 1 as x"),
    attack("replace-staging-view", "create or replace view staging.stg_titles as select 1 as content_id"),
    attack("drop-staging-view", "drop view staging.stg_titles"),
    # predictions: nobody but the owner writes it directly; a data scientist goes through the door's functions
    attack(
        "insert-model-run", "insert into predictions.model_runs (run_id, model, status) values ('nwatk', 'x', 'failed')"
    ),
    attack("unset-the-current-run", "update predictions.model_runs set is_current = false"),
    attack("delete-model-runs", "delete from predictions.model_runs"),
    attack("update-the-current-partition", "update {partition} set score = 0"),
    attack("delete-the-current-partition", "delete from {partition}"),
    attack("delete-the-current-run-s-rows", "delete from predictions.recommendations where run_id = '{run}'"),
    attack("truncate-recommendations", "truncate predictions.recommendations"),
    attack("drop-the-current-partition", "drop table {partition}"),
    attack("detach-the-current-partition", "alter table predictions.recommendations detach partition {partition}"),
    attack("create-table-in-predictions", "create table predictions.nwatk (x int)"),
    attack(
        "fail-the-owner-s-current-run",
        "select predictions.fail_run('{run}', 'nwatk')",
        sqlstates=("42501", "55000", "P0002", "22023"),
    ),
    attack("insert-api-key", "insert into api.keys (key_id, name, role, key_hash) values ('nwatk', 'x', 'admin', 'x')"),
    attack("delete-api-idempotency", "delete from api.idempotency"),
    attack("drop-api-keys", "drop table api.keys cascade"),
    attack("create-table-in-public", "create table public.nwatk (x int)"),
    attack("create-view-in-public", "create view public.nwatk as select 1 as x"),
    attack("nextval-of-app-sequence", "select nextval('app.nwatk_numbers')", refused=READERS, changes=("sequences",)),
    attack("setval-of-app-sequence", "select setval('app.nwatk_numbers', 1000000)"),
    attack("nextval-of-core-sequence", "select nextval('core.nwatk_numbers')"),
    attack("alter-app-sequence", "alter sequence app.nwatk_numbers restart with 1000000"),
]

MAINTENANCE = [
    # VACUUM and ANALYZE of another's table only warn and skip it: the snapshot decides
    attack("vacuum-marts", "vacuum marts.catalogue", refused=(), transaction=False),
    attack("vacuum-full-app-users", "vacuum full app.users", refused=(), transaction=False),
    attack("analyze-core", "analyze core.titles", refused=(), transaction=False),
    attack("reindex-marts", "reindex table marts.catalogue", transaction=False),
    attack("cluster-core", "cluster core.titles using titles_pkey", transaction=False),
]

ATTACKS = [*ROLES, *SERVER, *FILES, *SECRETS, *LOCKS, *HOLDS, *TIMEOUTS, *RESOURCES, *SESSIONS, *WRITES, *MAINTENANCE]
CASES = [(kind, one) for one in ATTACKS for kind in KINDS if kind in one.kinds]


def known_hole(one: Attack, kind: str, server_version: int) -> str | None:
    """Why ``one`` succeeds for ``kind`` on this server, if it is a hole reported but not fixed here."""
    if one.hole == SET_ROLE and server_version < 160000:
        return (
            "a member that may SET ROLE to its group may ALTER the group (its settings, its password):"
            " PostgreSQL 15 has no SET option on a membership"
        )
    if one.hole == GROUP_DEFAULTS:
        return (
            "membership alone lets a login ALTER DEFAULT PRIVILEGES FOR ROLE its group (inert: nothing is made as it)"
        )
    return None


# -------------------------------------------------------------------------------------------------------------------
# the warehouse under attack


def _relevant_roles(token: str) -> str:
    """Roles the snapshot looks at: the groups, the owner, this database's logins, what an attack may create, and
    any role with rights beyond the ordinary (roles are the server's; other test sessions have logins of their own)."""
    comments = ", ".join(
        f"format({LOGIN_COMMENT.format(kind=kind, database='%s')!r}, current_database())" for kind in ("person", "key")
    )
    return f"""
        select oid from pg_roles
        where rolname in ('analyst', 'data_scientist') or rolname = current_user or rolname like 'nwatk_{token}%'
            or rolsuper or rolcreaterole or rolcreatedb or rolreplication or rolbypassrls
            or shobj_description(oid, 'pg_authid') in ({comments})"""


USER_SCHEMAS = "n.nspname not in ('pg_catalog', 'information_schema') and n.nspname !~ '^pg_(toast|temp)'"
CHECKSUMMED = (
    "raw.raw_titles",
    "core.titles",
    "marts.catalogue",
    "app.users",
    "app.viewing_events",
    "app.batches",
    "predictions.model_runs",
    "predictions.recommendations",
    "api.keys",
    "api.idempotency",
)


def _state(token: str) -> dict[str, str]:
    """What the owner sees that no attack may change; each query's rows are one entry of a snapshot."""
    relevant = _relevant_roles(token)
    return {
        "roles": f"""
            select rolname, rolsuper, rolinherit, rolcreaterole, rolcreatedb, rolcanlogin, rolreplication,
                rolbypassrls, rolconnlimit, coalesce(rolvaliduntil::text, ''),
                coalesce(shobj_description(oid, 'pg_authid'), '')
            from pg_roles where oid in ({relevant}) order by 1""",
        "memberships": f"""
            select roleid::regrole::text, member::regrole::text, admin_option,
                (to_jsonb(m) - 'oid' - 'grantor' - 'roleid' - 'member' - 'admin_option')::text
            from pg_auth_members as m
            where member in ({relevant})
                or (roleid in ({relevant}) and roleid not in ('analyst'::regrole, 'data_scientist'::regrole))
            order by 1, 2, 3""",
        "role and database settings": f"""
            select coalesce(d.datname, '*'), coalesce(r.rolname, '*'), s.setconfig
            from pg_db_role_setting as s
                left join pg_database as d on d.oid = s.setdatabase
                left join pg_roles as r on r.oid = s.setrole
            where s.setdatabase in (0, (select oid from pg_database where datname = current_database()))
                and (s.setrole = 0 or s.setrole in ({relevant}))
            order by 1, 2""",
        "databases": f"""
            select datname, datdba::regrole::text, coalesce(datacl::text, ''), datallowconn, datconnlimit,
                datistemplate
            from pg_database where datname = current_database() or datname like 'nwatk_{token}%' order by 1""",
        "schemas": """
            select nspname, nspowner::regrole::text, coalesce(nspacl::text, '') from pg_namespace
            where nspname !~ '^pg_(toast|temp)' order by 1""",
        "relations": f"""
            select n.nspname, c.relname, c.relkind::text, c.relowner::regrole::text, coalesce(c.relacl::text, ''),
                c.relrowsecurity, c.relpersistence::text, c.relispartition
            from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
            where {USER_SCHEMAS} order by 1, 2""",
        "temp relations (any session)": """
            select count(*) from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
            where n.nspname ~ '^pg_temp_'""",
        "columns": f"""
            select md5(string_agg(format('%s.%s.%s:%s', n.nspname, c.relname, a.attname, a.atttypid), ','
                order by n.nspname, c.relname, a.attnum))
            from pg_attribute as a join pg_class as c on c.oid = a.attrelid
                join pg_namespace as n on n.oid = c.relnamespace
            where a.attnum > 0 and not a.attisdropped and {USER_SCHEMAS}""",
        "functions": f"""
            select n.nspname, p.proname, pg_get_function_identity_arguments(p.oid), p.proowner::regrole::text,
                p.prosecdef, coalesce(p.proacl::text, ''), coalesce(p.proconfig::text, '')
            from pg_proc as p join pg_namespace as n on n.oid = p.pronamespace
            where {USER_SCHEMAS} order by 1, 2, 3""",
        "rights on built-in functions": """
            select md5(string_agg(format('%s:%s:%s', oid::regprocedure, proowner, proacl), ',' order by oid))
            from pg_proc where pronamespace = 'pg_catalog'::regnamespace and proacl is not null""",
        "triggers, policies, rules, constraints, casts": """
            select (select count(*) from pg_trigger), (select count(*) from pg_policy),
                (select count(*) from pg_rewrite), (select count(*) from pg_constraint),
                (select count(*) from pg_cast)""",
        "event triggers, publications, subscriptions, wrappers": """
            select array(select evtname::text from pg_event_trigger order by 1),
                array(select pubname::text from pg_publication order by 1),
                array(select subname::text from pg_subscription order by 1),
                array(select fdwname::text from pg_foreign_data_wrapper order by 1)""",
        "extensions and languages": """
            select array(select extname || ' ' || extversion from pg_extension order by 1),
                array(select lanname::text from pg_language order by 1)""",
        "tablespaces and replication slots": """
            select array(select spcname::text from pg_tablespace order by 1),
                array(select slot_name::text from pg_replication_slots order by 1)""",
        "default privileges": """
            select defaclrole::regrole::text, defaclnamespace::regnamespace::text, defaclobjtype::text,
                defaclacl::text
            from pg_default_acl order by 1, 2, 3""",
        "comments": """
            select md5(coalesce(string_agg(format('%s/%s/%s=%s', classoid, objoid, objsubid, description), ','
                order by classoid, objoid, objsubid), ''))
            from pg_description where objoid >= 16384""",
        **SERVER_STATE,
        "sequences": """
            select schemaname, sequencename, last_value from pg_sequences
            where schemaname not in ('pg_catalog', 'information_schema') order by 1, 2""",
        "the current run": "select run_id, status from predictions.model_runs where is_current",
        "group passwords": """
            select rolname, rolpassword is not null from pg_authid where rolname in ('analyst', 'data_scientist')
            order by 1""",
    }


@dataclass
class Lab:
    """The warehouse under attack, its other users, and the secrets no attacker may see."""

    target: Target  # the owner, in this module's database
    api: Api
    token: str
    other: tuple[str, str]  # another analyst's own login and its password
    other_session: psycopg2.extensions.connection  # that analyst's open session (pgAdmin, say)
    owner_session: psycopg2.extensions.connection  # an owner's session whose last statement is a secret
    inspector: psycopg2.extensions.connection  # the owner's connection that takes snapshots
    watchdog: subprocess.Popen
    run_id: str
    partition: str
    server_version: int
    user_settable: frozenset[str]  # settings a login may change for itself
    files: list[str]
    passwords: list[str]  # every login's password and the project's secrets
    state: dict[str, str] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=itertools.count)

    @property
    def secrets(self) -> list[str]:
        """What no attacker may read: the passwords, the owner's statement, a password's hash."""
        return [*self.passwords, SECRET_QUERY.split("'")[1], "SCRAM-SHA-256$"]

    # --- attackers

    def attacker(self, kind: str) -> tuple[str, str, str]:
        """A fresh login of ``kind``: its name, its password, its group."""
        self.query("select 1")  # the inspector is open
        if kind == "key":
            key_id = keys.parse_key_id(keys.create_key(self.inspector, "analyst", f"attacker {next(self.counter)}"))
            login = logins.key_target(self.target, key_id)
            self.passwords.append(login.password)
            return login.user, login.password, "analyst"
        name = f"nwatk{self.token}_{kind[:2]}{next(self.counter)}"
        password = logins.add_login(self.inspector, name, kind)
        self.passwords.append(password)
        return name, password, kind

    def connect(self, user: str, password: str) -> psycopg2.extensions.connection:
        conn = psycopg2.connect(
            host=self.target.host,
            port=self.target.port,
            dbname=self.target.database,
            user=user,
            password=password,
            connect_timeout=10,
            application_name="nwatk attacker",
        )
        conn.autocommit = True
        return conn

    def placeholders(self, user: str, group: str) -> dict[str, str]:
        def pid(condition: str) -> str:
            rows = self.query(f"select pid from pg_stat_activity where {condition} order by pid limit 1")
            return str(rows[0][0]) if rows else "0"

        return {
            "self": user,
            "group": group,
            "other_group": "data_scientist" if group == "analyst" else "analyst",
            "other": self.other[0],
            "owner": self.target.user,
            "db": self.target.database,
            "token": self.token,
            "file": self.files[0],
            "run": self.run_id,
            "partition": self.partition,
            "other_pid": str(self.other_session.get_backend_pid()),
            "owner_pid": str(self.owner_session.get_backend_pid()),
            "watchdog_pid": pid(f"application_name = '{watchdog.APPLICATION}'"),
            "api_pid": pid(f"application_name = 'netflix_warehouse api' and datname = '{self.target.database}'"),
        }

    # --- the owner's view

    def query(self, statement: str, params: tuple = ()) -> list[tuple]:
        if self.inspector.closed:
            self.inspector = _owner_connection(self.target)
        with self.inspector.cursor() as cur:
            cur.execute(statement, params or None)
            return cur.fetchall() if cur.description else []

    def snapshot(self, attacker: str | None = None) -> dict[str, Any]:
        """The state no attack may change; ``attacker``'s own user-settable settings and default privileges aside."""
        found: dict[str, Any] = {name: self.query(statement) for name, statement in self.state.items()}
        settings = []
        for database, role, config in found["role and database settings"]:
            if role == attacker:  # its own business, but for what only a superuser sets (temp_file_limit)
                config = [item for item in config if item.partition("=")[0] not in self.user_settable]
            settings.append((database, role, config))
        found["role and database settings"] = settings
        found["default privileges"] = [row for row in found["default privileges"] if row[0] != attacker]
        checksums = ", ".join(
            f"(select format('%s rows, %s', count(*), md5(coalesce(string_agg(t::text, ',' order by t::text), '')))"
            f" from {table} as t)"
            for table in CHECKSUMMED
        )
        for table, checksum in zip(CHECKSUMMED, self.query(f"select {checksums}")[0], strict=True):
            found[f"rows of {table}"] = checksum
        found["files the server wrote"] = [
            path for path in self.files if self.query("select pg_stat_file(%s, true) is not null", (path,))[0][0]
        ]
        return found

    def wait_gone(self, pid: int) -> None:
        """Until the session ``pid`` has ended on the server (a closed connection's backend exits a moment later)."""
        deadline = time.monotonic() + 60
        while self.query("select 1 from pg_stat_activity where pid = %s", (pid,)) and time.monotonic() < deadline:
            time.sleep(0.02)

    # --- the others

    def assert_others_work(self) -> None:
        assert self.watchdog.poll() is None, "the watchdog stopped"
        with self.other_session.cursor() as cur:  # still open, never signalled
            cur.execute("select count(*) from marts.catalogue")
            assert cur.fetchone() == (9,)
        with closing(self.connect(*self.other)) as conn, conn.cursor() as cur:
            cur.execute("select count(*) from marts.catalogue")
            assert cur.fetchone() == (9,)
            cur.execute("select count(*) from predictions.current_recommendations")
            assert cur.fetchone() == (6,)
        # every lock the pipeline, the publisher and the API's set-up take; a bound, never a measure
        self.query("select 1")  # the inspector is open
        with self.inspector.cursor() as cur:
            cur.execute("begin")
            try:
                cur.execute("set local lock_timeout = '60s'")
                cur.execute(
                    "lock table raw.raw_titles, core.titles, marts.catalogue, app.users, app.viewing_events,"
                    " predictions.model_runs, predictions.recommendations, api.keys in access exclusive mode"
                )
                cur.execute(
                    f"select pg_try_advisory_xact_lock({PUBLISH_LOCK}), pg_try_advisory_xact_lock({SETUP_LOCK})"
                )
                assert cur.fetchone() == (True, True)
            finally:
                cur.execute("rollback")
        response = self.api.client.post(
            "/sql", json={"sql": "select count(*) from marts.catalogue"}, headers=self.api.headers("analyst")
        )
        assert response.status_code == 200, response.text
        assert response.json()["rows"] == [[9]]

    def repair(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        """Undo what an attack that got through did to what the server shares (roles, settings, databases), so a
        failing attack here harms no other test; this module's database goes at its end anyway."""
        statements: list[str | sql.Composable] = []
        for (name,) in self.query(f"select rolname from pg_roles where rolname like 'nwatk_{self.token}%'"):
            statements.append(sql.SQL("drop role {}").format(sql.Identifier(name)))
        for (name,) in self.query(f"select datname from pg_database where datname like 'nwatk_{self.token}%'"):
            statements.append(sql.SQL("drop database {}").format(sql.Identifier(name)))
        for role, member, *_ in set(after["memberships"]) - set(before["memberships"]):
            statements.append(sql.SQL("revoke {} from {}").format(sql.Identifier(role), sql.Identifier(member)))
        was = {(database, role): config for database, role, config in before["role and database settings"]}
        now = {(database, role): config for database, role, config in after["role and database settings"]}
        for database, role in was.keys() | now.keys():
            if (role not in logins.GROUPS and role != "*") or was.get((database, role)) == now.get((database, role)):
                continue
            where = sql.SQL("") if database == "*" else sql.SQL(" in database {}").format(sql.Identifier(database))
            scope = (
                sql.SQL("alter database {}").format(sql.Identifier(database))
                if role == "*"
                else sql.SQL("alter role {}{}").format(sql.Identifier(role), where)
            )
            statements.append(sql.SQL("{} reset all").format(scope))
            for setting in was.get((database, role)) or []:
                name, _, value = setting.partition("=")
                statements.append(sql.SQL("{} set {} = {}").format(scope, sql.Identifier(name), sql.Literal(value)))
        if after["group passwords"] != before["group passwords"]:
            statements += [f"alter role {group} nologin password null" for group in logins.GROUPS]
        if after["postgresql.auto.conf"] != before["postgresql.auto.conf"]:
            statements.append("alter system reset statement_timeout")
        for (gid,) in after["prepared transactions"]:
            if (gid,) not in before["prepared transactions"]:
                statements.append(sql.SQL("rollback prepared {}").format(sql.Literal(gid)))
        for statement in statements:
            try:
                self.query(statement)
            except psycopg2.Error as exc:  # best effort: report, go on with the rest
                print(f"repair failed: {statement!r}: {exc}")


def _owner_connection(target: Target) -> psycopg2.extensions.connection:
    conn = target.connect()
    conn.autocommit = True
    return conn


def _limit(cur: psycopg2.extensions.cursor, database: str, group: str, name: str, value: str) -> None:
    cur.execute(
        sql.SQL("alter role {} in database {} set {} = %s").format(
            sql.Identifier(group), sql.Identifier(database), sql.Identifier(name)
        ),
        (value,),
    )


WAREHOUSE = """
create schema if not exists raw;
create table raw.raw_titles as select 'tm' || g as id, 'title ' || g as title from generate_series(1, 9) as g;
create schema if not exists staging;
create view staging.stg_titles as select id as content_id, title from raw.raw_titles;
create schema if not exists core;
create table core.titles (content_id text primary key, title text not null);
insert into core.titles select * from staging.stg_titles;
create sequence core.nwatk_numbers;
create schema if not exists marts;
create table marts.catalogue as select row_number() over (order by content_id) as id, content_id, title
    from core.titles;
create materialized view marts.title_count as select count(*) as titles from core.titles;
grant usage on schema raw, staging, core, marts to analyst, data_scientist;
grant select on all tables in schema raw, staging, core, marts to analyst, data_scientist;
"""


def _build(target: Target) -> None:
    """The group roles, a small warehouse in every schema, app's and predictions' own tables and rights, the API's
    keys, and a published current run: as dbt and the pipeline leave them, at a tiny scale."""
    make_groups(target)
    with closing(target.connect()) as conn, conn, conn.cursor() as cur:
        cur.execute(WAREHOUSE)
    with closing(target.connect()) as conn:
        activity.ensure_schema(conn)
        keys.ensure_schema(conn)
        publish.ensure_schema(conn)
        with conn, conn.cursor() as cur:
            cur.execute("create sequence app.nwatk_numbers")
            cur.execute(
                "insert into app.users (user_id, age_band, country_code, signup_date, plan, device, language,"
                " batch_id) select g, %s, 'US', date '2024-01-01', %s, %s, 'en', 'nwatk' from generate_series(1, 3) g",
                (activity.AGE_BANDS[0], activity.PLANS[0], activity.DEVICES[0]),
            )
        access.close_group_logins(conn)
        access.prepare_python_schemas(conn)
        access.protect_sessions(conn)
        run_id = publish.start_run(conn, "nwatk", {}, {})
        rows = pd.DataFrame(
            {
                "user_id": [1, 1, 2, 2, 3, 3],
                "content_id": ["tm1", "tm2"] * 3,
                "score": [0.9, 0.8] * 3,
                "rank": [1, 2] * 3,
                "reason": ["because"] * 6,
            }
        )
        publish.publish(conn, run_id, rows, metrics={}, timings={})
        with conn, conn.cursor() as cur:
            for group in logins.GROUPS:
                _limit(cur, target.database, group, "idle_in_transaction_session_timeout", "1s")
            _limit(cur, target.database, "analyst", "statement_timeout", "1s")


@pytest.fixture(scope="module")
def lab(server: Target) -> Iterator[Lab]:
    token = uuid.uuid4().hex[:8]
    target = server.with_database(f"nw_test_{uuid.uuid4().hex[:12]}")
    ensure_database(target)
    process = None
    try:
        _build(target)
        process = subprocess.Popen(
            [sys.executable, "-m", "recommender.warehouse.watchdog", "--interval", "0.2"],
            env={**os.environ, **target.env()},
        )
        with closing(target.connect()) as conn:
            other = f"nwatk{token}_other"
            other_password = logins.add_login(conn, other, "analyst")
            run_id = publish.current_run(conn)
        with api_for(target) as found:
            owner = _owner_connection(target)
            lab = Lab(
                target=target,
                api=found,
                token=token,
                other=(other, other_password),
                other_session=psycopg2.connect(**_dsn(target, other, other_password)),
                owner_session=owner,
                inspector=_owner_connection(target),
                watchdog=process,
                run_id=run_id,
                partition="",
                server_version=0,
                user_settable=frozenset(),
                files=[f"/tmp/nwatk_{token}_written"],
                passwords=[other_password],
            )
            lab.other_session.autocommit = True
            with owner.cursor() as cur:
                cur.execute(SECRET_QUERY)
            (lab.partition,) = lab.query("select format('predictions.%%I', predictions.partition_name(%s))", (run_id,))[
                0
            ]
            lab.server_version = int(lab.query("show server_version_num")[0][0])
            lab.user_settable = frozenset(
                name for (name,) in lab.query("select name from pg_settings where context = 'user'")
            )
            if target.embedded:
                lab.passwords.append(owner_password())
            lab.passwords.append(passwords.generated(*logins.KEY_SECRET))
            lab.state = _state(token)
            lab.assert_others_work()
            yield lab
            for conn in (lab.other_session, lab.owner_session, lab.inspector):
                conn.close()
    finally:
        if process is not None:
            process.terminate()
            process.wait(10)
        drop_database(target)


def _dsn(target: Target, user: str, password: str) -> dict[str, Any]:
    return {
        "host": target.host,
        "port": target.port,
        "dbname": target.database,
        "user": user,
        "password": password,
        "connect_timeout": 10,
    }


def _render(statement: str, placeholders: dict[str, str]) -> str:
    for name, value in placeholders.items():
        statement = statement.replace("{" + name + "}", value)
    return statement


def _leaks(rows: list[Any], secrets: list[str]) -> list[str]:
    """Which of ``secrets`` (by position, never the secret itself) appear in ``rows``."""
    text = repr(rows)
    return [f"secret #{number}" for number, secret in enumerate(secrets) if secret and secret in text]


@dataclass
class Outcome:
    error: psycopg2.Error | None = None
    rows: list[Any] = field(default_factory=list)
    conn: psycopg2.extensions.connection | None = None  # the session, still open


def _run(lab: Lab, one: Attack, user: str, password: str, group: str) -> Outcome:
    """The attack's statements in the attacker's session, which has turned the read-only default off first."""
    placeholders = lab.placeholders(user, group)
    outcome = Outcome()

    def fresh_session() -> None:
        if outcome.conn is not None:
            outcome.conn.close()
        outcome.conn = lab.connect(user, password)
        with outcome.conn.cursor() as cur:
            cur.execute("set default_transaction_read_only = off")
        outcome.conn.autocommit = not one.transaction

    fresh_session()
    try:
        for statement in one.statements:
            if statement == "\\reconnect":
                fresh_session()
                continue
            with outcome.conn.cursor() as cur:
                cur.execute(_render(statement, placeholders))
                if cur.description:
                    outcome.rows += cur.fetchall()
    except psycopg2.Error as exc:
        outcome.error = exc
    if one.transaction and not outcome.conn.closed:
        outcome.conn.rollback()
    return outcome


@pytest.mark.parametrize(("kind", "one"), CASES, ids=[f"{kind}-{one.id}" for kind, one in CASES])
def test_a_member_s_attack_changes_nothing_and_stops_nobody(
    lab: Lab, kind: str, one: Attack, request: pytest.FixtureRequest
) -> None:
    if reason := known_hole(one, kind, lab.server_version):
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"hole (reported): {reason}"))
    user, password, group = lab.attacker(kind)
    before = lab.snapshot(user)
    outcome = Outcome()
    try:
        outcome = _run(lab, one, user, password, group)
        assert _leaks(outcome.rows, lab.secrets) == [], "the attacker read a secret"
        if kind in one.refused:
            assert outcome.error is not None, f"{one.statements} went through for {kind}"
            assert outcome.error.pgcode in one.sqlstates, f"{outcome.error.pgcode}: {outcome.error}"
        if one.hold:  # its transaction open: the others must get what they need all the same
            lab.assert_others_work()
            with pytest.raises((psycopg2.OperationalError, psycopg2.InternalError)):  # the watchdog ended it
                outcome.conn.cursor().execute("select 1")
    finally:
        if outcome.conn is not None:
            pid = None if outcome.conn.closed else outcome.conn.info.backend_pid
            outcome.conn.close()
            if pid:
                lab.wait_gone(pid)
        after = lab.snapshot(user)
        lab.repair(before, after)
    allowed = () if kind in one.refused else one.changes
    changed = {
        name: (before[name], after[name]) for name in before if before[name] != after[name] and name not in allowed
    }
    assert changed == {}, "\n".join(f"{name}: {was!r} -> {now!r}" for name, (was, now) in changed.items())
    lab.assert_others_work()


@pytest.mark.parametrize("kind", KINDS)
def test_a_login_cannot_take_every_connection(lab: Lab, kind: str) -> None:
    """A login opening sessions until refused gets its own limit's worth; the others still connect meanwhile."""
    user, password, _ = lab.attacker(kind)
    limit = logins.CONNECTION_LIMIT["key" if kind == "key" else "person"]
    held: list[psycopg2.extensions.connection] = []
    try:
        with pytest.raises(psycopg2.OperationalError, match="too many connections"):
            for _ in range(limit + 1):
                held.append(lab.connect(user, password))
        assert len(held) == limit
        lab.assert_others_work()
    finally:
        for conn in held:
            conn.close()


@pytest.mark.parametrize("kind", KINDS)
def test_the_temp_file_limit_is_the_login_s_and_holds(lab: Lab, kind: str) -> None:
    """The owner's temp_file_limit on the login (a superuser's setting) is in force and no session lifts it: with
    the login's limit lowered to 1 MB, a sort that spills more is stopped."""
    user, password, group = lab.attacker(kind)
    with closing(lab.connect(user, password)) as conn, conn.cursor() as cur:
        cur.execute("show temp_file_limit")
        assert cur.fetchone()[0] == logins.TEMP_FILE_LIMIT[group]
        for statement in ("set temp_file_limit = -1", "select set_config('temp_file_limit', '-1', false)"):
            with pytest.raises(psycopg2.errors.InsufficientPrivilege):
                cur.execute(statement)
    lab.query(
        sql.SQL("alter role {} in database {} set temp_file_limit = '1MB'").format(
            sql.Identifier(user), sql.Identifier(lab.target.database)
        )
    )
    with closing(lab.connect(user, password)) as conn, conn.cursor() as cur:
        cur.execute("set work_mem = '64kB'")
        with pytest.raises(psycopg2.errors.ConfigurationLimitExceeded, match="temp_file_limit"):
            cur.execute("select count(*) from (select g from generate_series(1, 300000) as g order by g desc) as s")
    lab.assert_others_work()


def test_every_kind_meets_at_least_50_attacks() -> None:
    assert len({one.id for one in ATTACKS}) == len(ATTACKS)
    for kind in KINDS:
        assert sum(1 for k, _ in CASES if k == kind) >= 50, kind


# -------------------------------------------------------------------------------------------------------------------
# a local OS user who is not the owner: nobody, with the wheel's psql

CONNECT_REFUSED = (
    r"password|authentication|pg_hba|not permitted|Connection refused|No such file|could not connect|does not exist"
    r"|SSL"
)
DENIED = r"Permission denied|Operation not permitted|No such file"


@dataclass(frozen=True)
class LocalAttack:
    id: str
    command: str  # run by /bin/sh as nobody (placeholders rendered); refused: it exits non-zero
    connects: bool = False  # logs in to the server (moot where the server trusts every local connection)
    embedded: bool = False  # aims at the embedded server's own data folder and processes
    expect: str | None = DENIED  # what stderr says when refused
    scan: bool = False  # it may run: its output must hold no secret (and, if quiet, be empty)
    quiet: bool = False
    ours_only: bool = False  # of its output, look at the lines of this test's processes and the server's only
    plants: str | None = None  # a path it tries to create (removed afterwards if it did)


def psql(id: str, user: str, password: str | None = None, *, options: str = "", env: str = "") -> LocalAttack:
    secret = f"PGPASSWORD='{password}' " if password is not None else ""
    conninfo = f"host={{host}} port={{port}} user={user} dbname={{db}} {options}".strip()
    return LocalAttack(
        id, f"{env}{secret}{{psql}} -X -w -Atc 'select 1' \"{conninfo}\"", connects=True, expect=CONNECT_REFUSED
    )


def files(id: str, command: str, **options: Any) -> LocalAttack:
    return LocalAttack(id, command, **options)


def writable(id: str, path: str) -> LocalAttack:
    """Whether nobody could change ``path`` (asked without changing it: the checkout is shared)."""
    return LocalAttack(id, f"test -w {path}", expect=None)


def plant(id: str, path: str, **options: Any) -> LocalAttack:
    return LocalAttack(id, f"touch {path}", plants=path, **options)


LOCAL = [
    psql("psql-owner-without-password", "{owner}"),
    psql("psql-owner-guessing-postgres", "{owner}", "postgres"),
    psql("psql-owner-guessing-password", "{owner}", "password"),
    LocalAttack(
        "psql-owner-into-template1",
        "{psql} -X -w -Atc 'select 1' 'host={host} port={port} user={owner} dbname=template1'",
        connects=True,
        expect=CONNECT_REFUSED,
    ),
    psql("psql-owner-replication-connection", "{owner}", options="replication=database"),
    psql("psql-analyst-group", "analyst"),
    psql("psql-analyst-group-guessing-its-name", "analyst", "analyst"),
    psql("psql-data-scientist-group", "data_scientist"),
    psql("psql-person-without-password", "{other}"),
    psql("psql-person-guessing-its-name", "{other}", "{other}"),
    psql("psql-data-scientist-person-without-password", "{scientist}"),
    psql("psql-key-login-without-password", "{key_login}"),
    psql("psql-key-login-hmac-under-an-empty-secret", "{key_login}", "{hmac_guess}"),
    psql("psql-key-login-its-id-as-password", "{key_login}", "{key_id}"),
    psql("psql-the-server-s-os-account", "pgserver"),
    psql("psql-root", "root"),
    psql("psql-nobody", "nobody"),
    psql("psql-with-the-project-s-pgpass", "{owner}", env="PGPASSFILE={secrets}/pgpass "),
    psql("psql-requiring-ssl", "{owner}", "postgres", options="sslmode=require"),
    LocalAttack(
        "psql-by-localhost-name",
        "{psql} -X -w -Atc 'select 1' -h localhost -p {port} -U {owner} -d {db}",
        connects=True,
        expect=CONNECT_REFUSED,
    ),
    LocalAttack(
        "psql-over-ipv6",
        "{psql} -X -w -Atc 'select 1' -h ::1 -p {port} -U {owner} -d {db}",
        connects=True,
        expect=CONNECT_REFUSED,
    ),
    LocalAttack(
        "psql-unix-socket-in-tmp",
        "{psql} -X -w -Atc 'select 1' -h /tmp -p {port} -U {owner} -d {db}",
        connects=True,
        expect=CONNECT_REFUSED,
    ),
    LocalAttack(
        "psql-unix-socket-in-var-run",
        "{psql} -X -w -Atc 'select 1' -h /var/run/postgresql -p {port} -U {owner} -d {db}",
        connects=True,
        expect=CONNECT_REFUSED,
    ),
    LocalAttack(
        "psql-guessing-twenty-passwords",
        "for p in postgres password admin root secret 123456 netflix warehouse analyst changeme"
        " letmein qwerty owner pgserver nobody test pass 1234 default '';"
        " do PGPASSWORD=$p {psql} -X -w -Atc 'select 1' -h {host} -p {port} -U {owner} -d {db} && exit 0; done; exit 1",
        connects=True,
        expect=CONNECT_REFUSED,
    ),
    files("read-the-owner-s-password", "cat {secrets}/owner_password"),
    files("read-the-key-login-secret", "cat {secrets}/key_login_secret"),
    files("read-the-project-s-pgpass", "cat {secrets}/pgpass"),
    files("list-the-secrets", "ls {secrets}"),
    plant("plant-a-file-in-the-secrets", "{secrets}/nwatk_{token}"),
    files("read-pg-hba", "cat {pgdata}/pg_hba.conf", embedded=True),
    files("read-postgresql-auto-conf", "cat {pgdata}/postgresql.auto.conf", embedded=True),
    files("read-the-server-log", "cat {pgdata}/server.log", embedded=True),
    files("read-the-watchdog-log", "cat {pgdata}/watchdog.log", embedded=True),
    files("read-the-owner-password-digest", "cat {pgdata}/owner_password.sha256", embedded=True),
    files("list-the-data-folder", "ls {pgdata}", embedded=True),
    files("trust-everyone-in-pg-hba", "echo 'host all all 127.0.0.1/32 trust' >> {pgdata}/pg_hba.conf", embedded=True),
    files("listen-everywhere", "echo \"listen_addresses = '*'\" >> {pgdata}/postgresql.auto.conf", embedded=True),
    files("stop-the-server-with-pg-ctl", "{bin}/pg_ctl -D {pgdata} stop -m immediate", embedded=True, expect=None),
    files("signal-the-postmaster", "kill -0 {postmaster_pid}", embedded=True),
    files("signal-the-server-s-watchdog", "kill -0 {server_watchdog_pid}", embedded=True),
    files("read-the-server-s-watchdog-environment", "cat /proc/{server_watchdog_pid}/environ", embedded=True),
    files("read-the-postmaster-s-environment", "cat /proc/{postmaster_pid}/environ", embedded=True),
    files("signal-the-watchdog", "kill -0 {watchdog_pid}"),
    files("read-the-watchdog-s-environment", "cat /proc/{watchdog_pid}/environ"),
    files("read-the-api-process-environment", "cat /proc/{pytest_pid}/environ"),
    files("read-the-api-process-memory", "head -c 1 /proc/{pytest_pid}/mem"),
    writable("change-the-project-s-code", "{root}/recommender/watchdog.py"),
    writable("change-the-venv-s-python", "{root}/.venv/bin/python"),
    writable("replace-the-server-binary", "{bin}/postgres"),
    writable("change-the-tests-conftest", "{root}/tests/conftest.py"),
    writable("change-the-makefile", "{root}/Makefile"),
    writable("change-the-dbt-profiles", "{root}/profiles/profiles.yml"),
    plant("plant-a-module-in-the-project", "{root}/recommender/nwatk_{token}.py"),
    plant("plant-a-pth-file-in-the-venv", "{site}/nwatk_{token}.pth"),
    plant("plant-a-dbt-macro", "{root}/macros/nwatk_{token}.sql"),
    plant("plant-a-seed", "{root}/seeds/nwatk_{token}.csv"),
    plant("plant-an-export", "{root}/.exports/nwatk_{token}"),
    LocalAttack("secrets-in-command-lines", "ps -eo pid,args", expect=None, scan=True, ours_only=True),
    LocalAttack(
        "secrets-in-readable-project-files",
        "grep -rIlF -f /dev/stdin {root} --exclude-dir=.venv --exclude-dir=.git 2>/dev/null; true",
        expect=None,
        scan=True,
        quiet=True,
    ),
]


def _descendants(roots: set[int]) -> set[int]:
    """``roots`` and every process below them, read from /proc as root."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found = set(roots)
    while grown := {pid for pid, parent in parents.items() if parent in found and pid not in found}:
        found |= grown
    return found


def _as_nobody(command: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", "-c", command],
        input=stdin,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "PGCONNECT_TIMEOUT": "5", "PGPASSFILE": "/nonexistent"},
        user="nobody",
        group="nogroup",
        extra_groups=[],
        cwd="/",
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def local(lab: Lab, request: pytest.FixtureRequest) -> dict[str, Any]:
    """What the local attacks aim at, and whether the server trusts every local connection anyway."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run as the OS user nobody")
    key_id = keys.parse_key_id(lab.api.keys["analyst"])
    with closing(lab.target.connect()) as conn:
        scientist = f"nwatk{lab.token}_scientist"
        lab.passwords.append(logins.add_login(conn, scientist, "data_scientist"))
    places = {
        "psql": psql_path(),
        "host": lab.target.host,
        "port": str(lab.target.port),
        "db": lab.target.database,
        "owner": lab.target.user,
        "other": lab.other[0],
        "scientist": scientist,
        "key_login": logins.key_login(key_id),
        "key_id": key_id,
        "hmac_guess": hmac.new(b"", key_id.encode(), hashlib.sha256).hexdigest(),
        "root": str(PROJECT_ROOT),
        "secrets": str(passwords.SECRETS_DIR),
        "site": sysconfig.get_paths()["purelib"],
        "bin": str(BIN),
        "token": lab.token,
        "watchdog_pid": str(lab.watchdog.pid),
        "pytest_pid": str(os.getpid()),
    }
    roots = {os.getpid(), lab.watchdog.pid}
    if lab.target.embedded:
        server = request.getfixturevalue("embedded")
        postmaster = int((server.pgdata / "postmaster.pid").read_text().split()[0])
        server_watchdog = int((server.pgdata / "watchdog.pid").read_text())
        places |= {
            "pgdata": str(server.pgdata),
            "postmaster_pid": str(postmaster),
            "server_watchdog_pid": str(server_watchdog),
        }
        roots |= {postmaster, server_watchdog}
    trusted = _as_nobody(_render("{psql} -X -w -Atc 'select 1' -h {host} -p {port} -U {owner} -d {db}", places))
    return {"places": places, "roots": roots, "trusts": trusted.returncode == 0}


def _local_files(places: dict[str, str]) -> dict[str, str]:
    """Digests of the embedded server's configuration, read as root."""
    if "pgdata" not in places:
        return {}
    found = {}
    for name in ("pg_hba.conf", "postgresql.auto.conf", "postgresql.conf"):
        path = Path(places["pgdata"]) / name
        found[name] = hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else ""
    return found


@pytest.mark.parametrize("one", LOCAL, ids=[one.id for one in LOCAL])
def test_a_local_user_s_attack_is_refused(lab: Lab, local: dict[str, Any], one: LocalAttack) -> None:
    places = local["places"]
    if one.embedded and "pgdata" not in places:
        pytest.skip("aims at the embedded server's own data folder and processes")
    if one.connects and local["trusts"]:
        pytest.skip("this server trusts every local connection (its pg_hba.conf): there a local user is anyone")
    secrets = lab.passwords
    before, files_before = lab.snapshot(), _local_files(places)
    planted = Path(_render(one.plants, places)) if one.plants else None
    try:
        result = _as_nobody(_render(one.command, places), "\n".join(secrets) + "\n" if one.quiet else "")
        output = result.stdout + result.stderr
        if one.ours_only:
            ours = {str(pid) for pid in _descendants(local["roots"])}
            output = "\n".join(line for line in output.splitlines() if line.split()[:1] and line.split()[0] in ours)
        assert _leaks([output], secrets) == [], "nobody read a secret"
        if one.scan:
            assert not (one.quiet and result.stdout.strip()), f"files that hold a secret: {result.stdout}"
        else:
            assert result.returncode != 0, f"nobody got through: {output}"
            if one.expect:
                assert re.search(one.expect, result.stderr), result.stderr
        if planted is not None:
            assert not planted.exists(), f"nobody made {planted}"
    finally:
        if planted is not None:
            planted.unlink(missing_ok=True)
        after = lab.snapshot()
        lab.repair(before, after)
    assert _local_files(places) == files_before
    changed = {name: (before[name], after[name]) for name in before if before[name] != after[name]}
    assert changed == {}, "\n".join(f"{name}: {was!r} -> {now!r}" for name, (was, now) in changed.items())
    lab.assert_others_work()


def test_there_are_at_least_50_local_attacks() -> None:
    assert len({one.id for one in LOCAL}) == len(LOCAL) >= 50


def test_nobody_can_run_the_tools_the_local_attacks_use(lab: Lab, local: dict[str, Any]) -> None:
    """The control of the local attacks: their refusals are the server's and the file modes', not a broken tool."""
    places = local["places"]
    password = lab.other[1]
    answered = _as_nobody(
        _render(
            f"PGPASSWORD='{password}' {{psql}} -X -w -Atc 'select 1' -h {{host}} -p {{port}} -U {{other}} -d {{db}}",
            places,
        )
    )
    assert (answered.returncode, answered.stdout.strip()) == (0, "1"), answered.stderr
    assert _as_nobody("cat /etc/hostname && test -w /tmp && ps -eo pid").returncode == 0
