"""People's and API keys' own logins, and the limits no session can lift, on real servers.

Each test works in a fresh database; the group roles are made as dbt's on-run-start makes them.
Limits are set on the groups for that database only, so other tests never feel them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing

import psycopg2
import pytest
from psycopg2 import errors, sql
from queries import make_groups

from recommender.api import keys
from recommender.warehouse import access, logins
from recommender.warehouse.targets import Target, drop_database


def _groups(target: Target) -> None:
    """The group roles and their rights, as dbt's on-run-start and `make run` leave them."""
    make_groups(target)
    with closing(target.connect()) as conn, conn, conn.cursor() as cur:
        cur.execute("create schema if not exists marts")
        cur.execute(
            "create table marts.catalogue as select g as id, 'title ' || g as title from generate_series(1, 9) as g"
        )
        cur.execute("grant usage on schema marts to analyst, data_scientist")
        cur.execute("grant select on marts.catalogue to analyst, data_scientist")
    with closing(target.connect()) as conn:
        access.prepare_python_schemas(conn)
        access.protect_sessions(conn)


def _limit(target: Target, group: str, name: str, value: str) -> None:
    with closing(target.connect()) as conn, conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL("alter role {} in database {} set {} = %s").format(
                sql.Identifier(group), sql.Identifier(target.database), sql.Identifier(name)
            ),
            (value,),
        )


def _as(target: Target, user: str, password: str) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(
        host=target.host, port=target.port, dbname=target.database, user=user, password=password, connect_timeout=5
    )
    conn.autocommit = True
    return conn


@pytest.fixture
def warehouse(database: Target) -> Target:
    _groups(database)
    return database


@pytest.fixture
def watchdog(warehouse: Target) -> Iterator[None]:
    """A watchdog sweeping every 0.2 s, holding members' backends to 256 MB (the embedded server runs its own each
    second; this one is for both servers)."""
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "recommender.warehouse.watchdog", "--interval", "0.2"),
            *("--memory-limit", "256", "--transaction-limit", "3"),
        ],
        env={**os.environ, **warehouse.env()},
    )
    yield
    process.terminate()
    process.wait(10)


@pytest.fixture
def person(warehouse: Target) -> Callable[[str], tuple[str, str]]:
    counter = iter(range(100))

    def make(group: str) -> tuple[str, str]:
        name = f"p{warehouse.database[-12:]}_{next(counter)}"
        with closing(warehouse.connect()) as conn:
            return name, logins.add_login(conn, name, group)

    return make


def test_a_person_gets_a_login_of_their_own(warehouse: Target, person) -> None:
    name, password = person("analyst")
    with closing(_as(warehouse, name, password)) as conn, conn.cursor() as cur:
        cur.execute("select count(*), current_user, pg_has_role('analyst', 'member') from marts.catalogue")
        assert cur.fetchone() == (9, name, True)
    with closing(warehouse.connect()) as conn:
        listed = {login.name: login for login in logins.list_logins(conn)}
    assert listed[name].kind == "person" and listed[name].groups == ("analyst",)


def test_the_group_is_nobody_s_login(warehouse: Target) -> None:
    with closing(warehouse.connect()) as conn:
        access.close_group_logins(conn)
    with closing(warehouse.connect()) as conn, conn.cursor() as cur:
        cur.execute("select rolname from pg_roles where rolname = any(%s) and rolcanlogin", (list(logins.GROUPS),))
        assert cur.fetchall() == []


def test_a_person_changes_their_own_password_and_nothing_of_the_group(warehouse: Target, person) -> None:
    name, password = person("analyst")
    with closing(_as(warehouse, name, password)) as conn, conn.cursor() as cur:
        cur.execute("set default_transaction_read_only = off")  # as dbt leaves analyst: rights must refuse
        cur.execute(sql.SQL("alter role {} password 'a-new-one-of-mine'").format(sql.Identifier(name)))
        for statement in (
            "alter role analyst set statement_timeout = 0",
            "alter role analyst set work_mem = '2GB'",
            "alter role analyst password 'x'",
            "alter role analyst login",
            f"alter role {name} superuser",
            f"alter role {name} createrole",
            f"alter role {name} set temp_file_limit = -1",
            f"grant analyst to {name} with admin option",
            "grant data_scientist to " + name,
            "create role mallory login password 'x' in role analyst",
            f"alter role {name} rename to someone_else",
        ):
            with pytest.raises((errors.InsufficientPrivilege, errors.FeatureNotSupported)):
                cur.execute(statement)
    with closing(_as(warehouse, name, "a-new-one-of-mine")):
        pass
    with closing(warehouse.connect()) as conn, conn.cursor() as cur:
        cur.execute("select rolconfig, rolcanlogin from pg_roles where rolname = 'analyst'")
        config, can_login = cur.fetchone()
        assert not can_login and not any("work_mem" in setting for setting in config or [])


def test_an_analyst_who_lifts_the_timeout_is_still_stopped(warehouse: Target, person, watchdog) -> None:
    _limit(warehouse, "analyst", "statement_timeout", "1s")
    name, password = person("analyst")
    with closing(_as(warehouse, name, password)) as conn, conn.cursor() as cur:
        cur.execute("show statement_timeout")
        assert cur.fetchone()[0] == "1s"  # the group's limit is the login's default
        cur.execute("set default_transaction_read_only = off")
        cur.execute(sql.SQL("alter role {} set statement_timeout = 0").format(sql.Identifier(name)))  # their own
        cur.execute("set statement_timeout = 0")
        with pytest.raises(errors.QueryCanceled):
            cur.execute("select pg_sleep(30)")
        cur.execute("select 1")  # the session lives on
        assert cur.fetchone() == (1,)
        with pytest.raises(errors.InsufficientPrivilege):
            cur.execute("insert into marts.catalogue values (10, 'mine')")


def test_a_data_scientist_s_long_statement_is_theirs(warehouse: Target, person, watchdog) -> None:
    _limit(warehouse, "analyst", "statement_timeout", "1s")
    name, password = person("data_scientist")
    with closing(_as(warehouse, name, password)) as conn, conn.cursor() as cur:
        cur.execute("select pg_sleep(2.5)")  # no limit on the group: the watchdog leaves it be


def test_a_statement_that_hoards_memory_is_stopped(warehouse: Target, person, watchdog) -> None:
    if warehouse.host != "127.0.0.1":
        pytest.skip("the watchdog reads a backend's memory only where the server runs on this machine")
    name, password = person("data_scientist")  # no time limit: memory is what stops it
    with closing(_as(warehouse, name, password)) as conn, conn.cursor() as cur:
        cur.execute("set work_mem = '4GB'")
        with pytest.raises(errors.QueryCanceled):  # about 1.6 GB of array if left alone
            cur.execute("select cardinality(array_agg(g)) from generate_series(1, 200000000) as g")


def test_a_transaction_of_short_statements_is_ended(warehouse: Target, person, watchdog) -> None:
    _limit(warehouse, "analyst", "statement_timeout", "60s")  # a group whose statements are limited
    name, password = person("analyst")
    with (
        closing(_as(warehouse, name, password)) as conn,
        pytest.raises(psycopg2.OperationalError),
        conn.cursor() as cur,
    ):
        cur.execute("begin")
        for _ in range(200):  # 60 s of statements, each short, never idle for long
            cur.execute("select count(*), pg_sleep(0.3) from marts.catalogue")


def test_an_idle_transaction_is_ended(warehouse: Target, person, watchdog) -> None:
    _limit(warehouse, "analyst", "idle_in_transaction_session_timeout", "1s")
    name, password = person("analyst")
    conn = _as(warehouse, name, password)
    with conn.cursor() as cur:
        cur.execute("set idle_in_transaction_session_timeout = 0")
        cur.execute("begin")
        cur.execute("select count(*) from marts.catalogue")  # holds its lock
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with closing(warehouse.connect()) as owner, owner.cursor() as cur:
            cur.execute("select count(*) from pg_stat_activity where usename = %s", (name,))
            if cur.fetchone()[0] == 0:
                break
        time.sleep(0.2)
    with pytest.raises(psycopg2.OperationalError), conn.cursor() as cur:
        cur.execute("select 1")
    conn.close()


@pytest.mark.parametrize("group", logins.GROUPS)
def test_readers_cannot_take_advisory_locks_or_signal_sessions(warehouse: Target, person, group: str) -> None:
    name, password = person(group)
    with closing(_as(warehouse, name, password)) as conn, conn.cursor() as cur:
        cur.execute("set default_transaction_read_only = off")  # as dbt leaves analyst: rights must refuse
        for statement in (
            "select pg_advisory_lock(7674352282522014670)",
            "select pg_try_advisory_lock(1)",
            "select pg_advisory_xact_lock(1, 2)",
            "select pg_advisory_lock_shared(1)",
            "select pg_try_advisory_xact_lock_shared(1)",
            "select pg_cancel_backend(pg_backend_pid())",
            "select pg_terminate_backend(pg_backend_pid())",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                cur.execute(statement)
        if group == "analyst":
            with pytest.raises(errors.InsufficientPrivilege):
                cur.execute("create temporary table scratch (x int)")
        else:
            cur.execute("create temporary table scratch (x int)")


def test_a_revoked_login_ends_at_once(warehouse: Target, person) -> None:
    name, password = person("data_scientist")
    session = _as(warehouse, name, password)
    with session.cursor() as cur:
        cur.execute("create table app.scientist_table (x int)")  # owned by the person
    with closing(warehouse.connect()) as conn:
        logins.revoke_login(conn, name)
        with pytest.raises(logins.LoginError, match="no login"):
            logins.revoke_login(conn, name)
        with pytest.raises(logins.LoginError, match="no login"):
            logins.revoke_login(conn, "analyst")  # a group is not a person's login
    with pytest.raises(psycopg2.OperationalError):
        session.cursor().execute("select 1")
    with pytest.raises(psycopg2.OperationalError, match=r"password authentication failed|does not exist"):
        _as(warehouse, name, password)
    with closing(warehouse.connect()) as conn, conn.cursor() as cur:
        cur.execute("select tableowner from pg_tables where tablename = 'scientist_table'")
        assert cur.fetchone()[0] == warehouse.user  # what they made stays, the owner's now


@pytest.mark.parametrize(
    ("name", "group", "message"),
    [
        ("Alice", "analyst", "not a login name"),
        ("a", "analyst", "not a login name"),
        ("alice;drop", "analyst", "not a login name"),
        ("x" * 49, "analyst", "not a login name"),
        ("alice_ok", "admin", "unknown role"),
        ("analyst", "analyst", "exists on this server"),
        ("postgres", "analyst", "exists on this server"),
    ],
)
def test_a_bad_login_is_refused_and_makes_nothing(warehouse: Target, name: str, group: str, message: str) -> None:
    with closing(warehouse.connect()) as conn:
        before = logins.list_logins(conn)
        with pytest.raises(logins.LoginError, match=message):
            logins.add_login(conn, name, group)
        assert logins.list_logins(conn) == before


def test_each_key_has_a_login_of_its_own(warehouse: Target) -> None:
    with closing(warehouse.connect()) as conn:
        keys.ensure_schema(conn)
        issued = {role: keys.create_key(conn, role, f"test {role}") for role in keys.ROLES}
        found = {login.name: login.groups for login in logins.list_logins(conn) if login.kind == "key"}
    ids = {role: keys.parse_key_id(key) for role, key in issued.items()}
    assert found == {
        logins.key_login(ids["analyst"]): ("analyst",),
        logins.key_login(ids["data_scientist"]): ("data_scientist",),
        logins.key_login(ids["admin"]): ("analyst", "data_scientist"),
    }
    one, other = (logins.key_target(warehouse, ids[role]) for role in ("analyst", "admin"))
    with closing(_as(warehouse, one.user, one.password)) as a, closing(_as(warehouse, other.user, other.password)) as b:
        with b.cursor() as cur:
            cur.execute("select 'the other key''s secret statement', pg_backend_pid()")
            pid = cur.fetchone()[1]
        with a.cursor() as cur:
            cur.execute("select query from pg_stat_activity where pid = %s", (pid,))
            assert cur.fetchone()[0] == "<insufficient privilege>"
    with closing(warehouse.connect()) as conn:
        keys.revoke_key(conn, ids["analyst"])
        assert logins.key_login(ids["analyst"]) not in {login.name for login in logins.list_logins(conn)}
    with pytest.raises(psycopg2.OperationalError):
        _as(warehouse, one.user, one.password)


def test_dropping_a_database_drops_its_logins(new_database) -> None:
    target = new_database()
    _groups(target)
    with closing(target.connect()) as conn:
        logins.add_login(conn, f"p{target.database[-12:]}_gone", "analyst")
        keys.ensure_schema(conn)
        key_id = keys.parse_key_id(keys.create_key(conn, "analyst", "gone"))
    drop_database(target)
    with closing(target.with_database("postgres").connect()) as conn, conn.cursor() as cur:
        cur.execute(
            "select count(*) from pg_roles where rolname = any(%s)",
            ([f"p{target.database[-12:]}_gone", logins.key_login(key_id)],),
        )
        assert cur.fetchone()[0] == 0
