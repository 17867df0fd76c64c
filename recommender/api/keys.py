"""API keys: created and revoked on the command line (``python -m recommender keys``), stored as hashes.

A key is ``nwk_<key_id>_<secret>``. Only the SHA-256 of the whole key is stored, in
``api.keys``, a schema no database role but the warehouse owner can read. Each key
has a database login of its own, created and dropped with it (``recommender.warehouse.logins``):
``/sql`` runs as that login, so callers cannot see each other's statements and the
database's logs name the key. The secret
has 256 random bits, so a fast hash suffices (as for GitHub's and Stripe's tokens; a
slow password hash would only slow every request). The key is shown once, at creation.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from psycopg2.extensions import connection

from recommender.errors import InvalidArgumentError, NotFoundError
from recommender.warehouse import logins, sql_files

ROLES = ("analyst", "data_scientist", "admin")
PREFIX = "nwk"
KEY_ID = re.compile(r"^[0-9a-f]{12}$")  # secrets.token_hex(6)

DDL = sql_files.read(__package__, "api.sql", roles=sql_files.literal(ROLES))


class UnknownKeyError(NotFoundError, LookupError):
    """No key with that id."""


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None


def ensure_schema(conn: connection) -> None:
    """Create schema ``api`` and its tables if missing, and the logins of keys made before keys had them:
    the API does at start, the ``keys`` command before its work."""
    with conn, conn.cursor() as cur:
        cur.execute(DDL)
        cur.execute(
            "select key_id, role from api.keys where revoked_at is null"
            " and not exists (select from pg_roles where rolname = %s || key_id)",
            (logins.key_login(""),),
        )
        for key_id, role in cur.fetchall():
            logins.add_key_login(cur, key_id, role)


def key_hash(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_key_id(key: str) -> str | None:
    """The key id inside a presented key, or None if it is not shaped like one of ours."""
    prefix, _, rest = key.partition("_")
    key_id, _, secret = rest.partition("_")
    return key_id if prefix == PREFIX and KEY_ID.fullmatch(key_id) and secret else None


def matches(key: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(key_hash(key), bytes(stored_hash))


def create_key(conn: connection, role: str, name: str) -> str:
    """Store a new key for ``role`` and return it; it cannot be read back later."""
    if role not in ROLES:
        raise InvalidArgumentError(f"unknown role {role!r}: choose one of {', '.join(ROLES)}")
    key_id = secrets.token_hex(6)
    key = f"{PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    with conn, conn.cursor() as cur:
        cur.execute(
            "insert into api.keys (key_id, name, role, key_hash) values (%s, %s, %s, %s)",
            (key_id, name, role, key_hash(key)),
        )
        logins.add_key_login(cur, key_id, role)
    return key


def revoke_key(conn: connection, key_id: str) -> None:
    """Revoke a key at once; its id stays listed, with the time it was revoked."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "update api.keys set revoked_at = coalesce(revoked_at, now()) where key_id = %s returning key_id",
            (key_id,),
        )
        if cur.fetchone() is None:
            raise UnknownKeyError(f"no API key {key_id!r} (python -m recommender keys list shows them)")
        logins.drop_key_login(cur, key_id)


def list_keys(conn: connection) -> list[KeyInfo]:
    with conn, conn.cursor() as cur:
        cur.execute("select key_id, name, role, created_at, revoked_at from api.keys order by created_at, key_id")
        return [KeyInfo(*row) for row in cur.fetchall()]
