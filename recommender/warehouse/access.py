"""Rights of the group roles dbt creates (``analyst``, ``data_scientist``) in the schemas the Python side owns
(``app``, ``predictions``), and the server-wide protections every role gets.

dbt creates both roles without login (``macros/create_access_roles.sql``) and grants
them read access to what it builds. Nobody logs in as them: people and API keys have
logins of their own, members of one group (``recommender.warehouse.logins``).
"""

from __future__ import annotations

from psycopg2 import sql
from psycopg2.extensions import connection

GROUPS = ("analyst", "data_scientist")
# Schemas the Python side owns (simulated activity; published recommendations).
PYTHON_SCHEMAS = ("app", "predictions")


def close_group_logins(conn: connection) -> None:
    """Take login and password from the group roles (warehouses before personal logins had shared ones)."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "select rolname from pg_roles where rolname = any(%s) and (rolcanlogin or rolpassword is not null)",
            (list(GROUPS),),
        )
        for (role,) in cur.fetchall():
            cur.execute(sql.SQL("alter role {} nologin password null").format(sql.Identifier(role)))


def prepare_python_schemas(conn: connection) -> None:
    """Create ``app`` and ``predictions`` if missing: data_scientist writes app; analyst and data_scientist read
    predictions, which data_scientist changes only through its door (the security definer functions of
    ``recommender/sql/predictions_door.sql``).

    Default privileges cover the tables this connection's role creates there later. What a
    warehouse built before gave on predictions (writes, CREATE) is taken back.
    """
    owner_only = "insert, update, delete, truncate, references, trigger"  # on predictions' tables
    with conn, conn.cursor() as cur:
        for name in PYTHON_SCHEMAS:
            cur.execute(sql.SQL("create schema if not exists {}").format(sql.Identifier(name)))
        for statement in (
            "grant usage, create on schema app to data_scientist",
            "grant select, insert, update, delete on all tables in schema app to data_scientist",
            "alter default privileges in schema app grant select, insert, update, delete on tables to data_scientist",
            "grant usage, select on all sequences in schema app to data_scientist",
            "alter default privileges in schema app grant usage, select on sequences to data_scientist",
            "grant usage on schema predictions to analyst, data_scientist",
            "revoke create on schema predictions from data_scientist",
            f"revoke {owner_only} on all tables in schema predictions from analyst, data_scientist",
            f"alter default privileges in schema predictions revoke {owner_only} on tables"
            " from analyst, data_scientist",
            "revoke all on all sequences in schema predictions from data_scientist",
            "alter default privileges in schema predictions revoke all on sequences from data_scientist",
            "grant select on all tables in schema predictions to analyst, data_scientist",
            "alter default privileges in schema predictions grant select on tables to analyst, data_scientist",
        ):
            cur.execute(statement)
        # the door's functions are its security definer ones; the helpers they call stay the owner's
        cur.execute(
            "select oid::regprocedure::text from pg_proc where pronamespace = 'predictions'::regnamespace and prosecdef"
        )
        doors = [sql.SQL(name) for (name,) in cur.fetchall()]
        if doors:
            cur.execute(sql.SQL("grant execute on function {} to data_scientist").format(sql.SQL(", ").join(doors)))


def protect_sessions(conn: connection) -> None:
    """Keep every role but the owner from signalling other sessions, taking advisory locks, making large objects
    or making temp tables.

    PostgreSQL lets a role signal the sessions of its own role (one member could end
    another's), and lets anyone take any advisory lock: a reader holding the key a
    writer waits for stalls it. Anyone may create large objects, which outlive the
    session and take any amount of disk (``select lo_from_bytea(0, ...)``, even by a
    read-only analyst who turns ``default_transaction_read_only`` off). Temporary
    tables are writes, which analysts have no business making (data_scientist keeps
    them). Function rights are per database and only a superuser can revoke them from
    the built-in functions; for any other owner PostgreSQL warns and nothing changes.
    """
    with conn, conn.cursor() as cur:
        cur.execute(
            "select oid::regprocedure::text from pg_proc where pronamespace = 'pg_catalog'::regnamespace"
            " and (proname in ('pg_terminate_backend', 'pg_cancel_backend')"
            "      or (proname like 'pg%%advisory%%lock%%' and proname not like '%%unlock%%')"
            "      or proname in ('lo_creat', 'lo_create', 'lo_from_bytea', 'lo_import'))"
        )
        functions = [name for (name,) in cur.fetchall()]
        cur.execute(
            sql.SQL("revoke execute on function {} from public").format(sql.SQL(", ").join(map(sql.SQL, functions)))
        )
        cur.execute("select current_database()")
        database = sql.Identifier(cur.fetchone()[0])
        cur.execute(sql.SQL("revoke temporary on database {} from public").format(database))
        cur.execute(sql.SQL("grant temporary on database {} to data_scientist").format(database))
