"""The embedded server: starts once, is reused, listens on 127.0.0.1 at its port, stops."""

from __future__ import annotations

from pathlib import Path

import psycopg2
import pytest

from recommender.embedded import HOST, EmbeddedServer, EmbeddedServerError, free_port
from recommender.warehouse import DEFAULT_EMBEDDED_PORT, embedded_server, target_from_env


def test_start_is_reused_and_stop_stops(tmp_path: Path) -> None:
    server = EmbeddedServer(pgdata=tmp_path / "pgdata", port=free_port())
    assert not server.is_running()
    assert server.start() is True
    try:
        assert server.start() is False  # already running: reused, not restarted
        conn = psycopg2.connect(host=HOST, port=server.port, user="postgres", dbname="postgres")
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
    rival = EmbeddedServer(pgdata=tmp_path / "pgdata", port=embedded.port)
    with pytest.raises(
        EmbeddedServerError, match=rf"did not start on 127\.0\.0\.1:{embedded.port} \(is the port taken"
    ):
        rival.start()
    assert not rival.is_running()
