"""Logins for the access roles dbt creates (``analyst``, ``data_scientist``), their passwords,
and their rights in the schemas the Python side owns (``app``, ``predictions``).

dbt creates both roles without login (``macros/create_access_roles.sql``) and grants
them read access to what it builds. This module gives them a login and a password
taken from the environment, or generated once into the git-ignored ``.secrets/``
folder, so no secret is ever in the repository or in dbt's logs.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

from psycopg2 import sql
from psycopg2.extensions import connection

from recommender.warehouse import PROJECT_ROOT

SECRETS_DIR = PROJECT_ROOT / ".secrets"
# Schemas the Python side owns (simulated activity; published recommendations).
PYTHON_SCHEMAS = ("app", "predictions")
PASSWORD_VARIABLES = {"analyst": "NETFLIX_ANALYST_PASSWORD", "data_scientist": "NETFLIX_DATA_SCIENTIST_PASSWORD"}


def password_file(role: str, secrets_dir: Path = SECRETS_DIR) -> Path:
    return secrets_dir / f"{role}_password"


def role_password(role: str, environ: Mapping[str, str] = os.environ, secrets_dir: Path = SECRETS_DIR) -> str:
    """The role's password: from its environment variable, else from its file, generated on first use."""
    if value := environ.get(PASSWORD_VARIABLES[role]):
        return value
    path = password_file(role, secrets_dir)
    if not path.exists():
        secrets_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def password_hint(role: str, environ: Mapping[str, str] = os.environ, secrets_dir: Path = SECRETS_DIR) -> str:
    """Where the role's password is, for people: its variable, or its file."""
    variable = PASSWORD_VARIABLES[role]
    return f"${variable}" if environ.get(variable) else str(password_file(role, secrets_dir))


def enable_logins(conn: connection, passwords: Mapping[str, str]) -> None:
    """Let each role log in with its password and connect to this database (in one transaction)."""
    with conn, conn.cursor() as cur:
        cur.execute("select current_database()")
        database = sql.Identifier(cur.fetchone()[0])
        for role, password in passwords.items():
            cur.execute(sql.SQL("alter role {} with login password %s").format(sql.Identifier(role)), (password,))
            cur.execute(sql.SQL("grant connect on database {} to {}").format(database, sql.Identifier(role)))


def prepare_python_schemas(conn: connection) -> None:
    """Create ``app`` and ``predictions`` if missing: data_scientist writes both, analyst reads predictions.

    Default privileges cover the tables this connection's role creates there later.
    """
    with conn, conn.cursor() as cur:
        for name in PYTHON_SCHEMAS:
            schema = sql.Identifier(name)
            cur.execute(sql.SQL("create schema if not exists {}").format(schema))
            cur.execute(sql.SQL("grant usage, create on schema {} to data_scientist").format(schema))
            for statement in (
                "grant select, insert, update, delete on all tables in schema {} to data_scientist",
                "alter default privileges in schema {}"
                " grant select, insert, update, delete on tables to data_scientist",
                "grant usage, select on all sequences in schema {} to data_scientist",
                "alter default privileges in schema {} grant usage, select on sequences to data_scientist",
            ):
                cur.execute(sql.SQL(statement).format(schema))
        cur.execute("grant usage on schema predictions to analyst")
        cur.execute("grant select on all tables in schema predictions to analyst")
        cur.execute("alter default privileges in schema predictions grant select on tables to analyst")


def protect_sessions(conn: connection) -> None:
    """Keep every role but superusers from ending or cancelling other sessions in this database.

    PostgreSQL lets a role signal the sessions of its own role: one analyst could end
    another's (pgAdmin's, or the API's /sql pool). Only a superuser can revoke this;
    for any other owner PostgreSQL warns and nothing changes.
    """
    with conn, conn.cursor() as cur:
        cur.execute(
            "revoke execute on function pg_catalog.pg_terminate_backend(integer, bigint),"
            " pg_catalog.pg_cancel_backend(integer) from public"
        )
