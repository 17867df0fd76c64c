"""Rights of the group roles dbt creates (``analyst``, ``data_scientist``) in the schemas the Python side owns
(``app``, ``predictions``), and the server-wide protections every role gets.

dbt creates both roles without login (``macros/create_access_roles.sql``) and grants
them read access to what it builds. Nobody logs in as them: people and API keys have
logins of their own, members of one group (``recommender.warehouse.logins``).
"""

from __future__ import annotations

from psycopg2 import sql
from psycopg2.extensions import connection

from recommender.warehouse import sql_files

GROUPS = ("analyst", "data_scientist")


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
    ``predictions_door.sql``), as ``sql/python_schemas.sql`` says.
    """
    with conn, conn.cursor() as cur:
        cur.execute(sql_files.read(__package__, "python_schemas.sql"))


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
        cur.execute(sql_files.read(__package__, "protect_sessions.sql"))
