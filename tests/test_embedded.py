"""The embedded server: starts once, is reused, listens on 127.0.0.1 at its port, stops."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import psycopg2
import pytest

from recommender.warehouse import passwords
from recommender.warehouse.embedded import HOST, PG_HBA, EmbeddedServer, EmbeddedServerError, free_port, psql_path
from recommender.warehouse.targets import DEFAULT_EMBEDDED_PORT, embedded_server, owner_password, target_from_env


@pytest.mark.database
def test_start_is_reused_and_stop_stops(tmp_path: Path) -> None:
    server = EmbeddedServer(pgdata=tmp_path / "pgdata", port=free_port(), password=owner_password())
    assert not server.is_running()
    assert server.start() is True
    try:
        assert server.start() is False  # already running: reused, not restarted
        conn = psycopg2.connect(
            host=HOST, port=server.port, user="postgres", password=server.password, dbname="postgres"
        )
        with conn, conn.cursor() as cur:
            cur.execute("select inet_server_addr()::text, current_setting('port')::int, version()")
            address, port, version = cur.fetchone()
        conn.close()
        assert (address.split("/")[0], port) == (HOST, server.port)
        assert version.startswith("PostgreSQL 18")
    finally:
        assert server.stop() is True
    assert not server.is_running()
    assert server.stop() is False
    with pytest.raises(psycopg2.OperationalError):
        psycopg2.connect(host=HOST, port=server.port, user="postgres", dbname="postgres", connect_timeout=2)


def test_libpq_variables_choose_the_server() -> None:
    embedded = target_from_env({})
    assert (embedded.host, embedded.port, embedded.database, embedded.embedded) == (
        "127.0.0.1",
        DEFAULT_EMBEDDED_PORT,
        "netflix",
        True,
    )
    assert DEFAULT_EMBEDDED_PORT != 5432
    assert target_from_env({"NETFLIX_PGPORT": "6000"}).port == 6000
    assert embedded_server({"NETFLIX_PGPORT": "6000", "NETFLIX_PGDATA": "/tmp/x"}).pgdata == Path("/tmp/x")
    external = target_from_env(
        {"PGHOST": "db.example", "PGPORT": "6543", "PGUSER": "ana", "PGPASSWORD": "p@ss", "PGDATABASE": "wh"}
    )
    assert external.embedded is False
    assert external.uri() == "postgresql://ana:p%40ss@db.example:6543/wh"
    assert external.uri(with_password=False) == "postgresql://ana@db.example:6543/wh"
    assert target_from_env({"PGHOST": "db.example"}).port == 5432


def test_a_taken_port_is_a_clear_error(embedded: EmbeddedServer, tmp_path: Path) -> None:
    rival = EmbeddedServer(pgdata=tmp_path / "pgdata", port=embedded.port, password=embedded.password)
    with pytest.raises(
        EmbeddedServerError, match=rf"did not start on 127\.0\.0\.1:{embedded.port} \(is the port taken"
    ):
        rival.start()
    assert not rival.is_running()


def _psql_as(user: str | None, port: int, password: str | None = None) -> subprocess.CompletedProcess[str]:
    """``select current_user`` by psql as the owner, run as the local OS account ``user`` (None: this one)."""
    env = {"PATH": os.environ["PATH"], "PGCONNECT_TIMEOUT": "5", "PGPASSFILE": "/nonexistent"}
    if password is not None:
        env["PGPASSWORD"] = password
    return subprocess.run(
        [psql_path(), "-h", HOST, "-p", str(port), "-U", "postgres", "-d", "postgres", "-w", "-Atc", "select 1"],
        capture_output=True,
        text=True,
        env=env,
        user=user,
        check=False,
    )


def test_the_owner_needs_its_password(embedded: EmbeddedServer) -> None:
    assert PG_HBA.split() == ["host", "all", "all", "127.0.0.1/32", "scram-sha-256"]  # nobody is trusted
    refused = _psql_as(None, embedded.port)
    assert refused.returncode != 0 and "password" in refused.stderr
    wrong = _psql_as(None, embedded.port, "not-the-password")
    assert wrong.returncode != 0 and "password authentication failed" in wrong.stderr
    assert _psql_as(None, embedded.port, embedded.password).stdout.strip() == "1"


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root to act as another user")
def test_another_local_user_cannot_connect_as_the_owner(embedded: EmbeddedServer) -> None:
    """As the OS user nobody: no trust on loopback, and the secrets folder is closed to it."""
    refused = _psql_as("nobody", embedded.port)
    assert refused.returncode != 0 and "password" in refused.stderr
    owner_password()  # the secret exists
    peek = subprocess.run(
        ["cat", str(passwords.secret_file("owner_password"))], capture_output=True, text=True, user="nobody"
    )
    assert peek.returncode != 0 and "Permission denied" in peek.stderr
    assert passwords.SECRETS_DIR.stat().st_mode & 0o777 == 0o700


@pytest.mark.database
def test_an_older_data_folder_that_trusted_the_owner_is_closed(tmp_path: Path) -> None:
    server = EmbeddedServer(pgdata=tmp_path / "pgdata", port=free_port(), password="first-password")
    server.start()
    server.stop()
    # as a data folder from before passwords: the owner trusted, no password recorded
    (server.pgdata / "pg_hba.conf").write_text("host all postgres 127.0.0.1/32 trust\n")
    (server.pgdata / "owner_password.sha256").unlink()
    again = EmbeddedServer(pgdata=server.pgdata, port=server.port, password="second-password")
    again.start()
    try:
        assert _psql_as(None, again.port).returncode != 0
        assert _psql_as(None, again.port, "first-password").returncode != 0
        assert _psql_as(None, again.port, "second-password").stdout.strip() == "1"
    finally:
        again.stop()


def test_the_password_file_lets_plain_libpq_clients_in(tmp_path: Path, embedded: EmbeddedServer) -> None:
    pgpass = passwords.write_pgpass(HOST, embedded.port, "postgres", embedded.password, tmp_path / "secrets")
    assert pgpass.stat().st_mode & 0o777 == 0o600
    result = subprocess.run(
        [
            psql_path(),
            "-h",
            HOST,
            "-p",
            str(embedded.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-w",
            "-Atc",
            "select 2",
        ],
        capture_output=True,
        text=True,
        env={"PATH": os.environ["PATH"], "PGPASSFILE": str(pgpass)},
        check=False,
    )
    assert result.stdout.strip() == "2", result.stderr
