"""Fixtures: real PostgreSQL servers (never mocks), a fresh database per use, dropped afterwards.

Every database test runs on the embedded server (started for the session in a
temporary folder) and on the external server: the one the libpq variables
select, else 127.0.0.1:5432 as user postgres. The external server is skipped
with a reason when it does not answer.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
import uvicorn
from fastapi.testclient import TestClient

from recommender.activity.simulate import SimulationConfig
from recommender.api import keys
from recommender.api.app import create_app
from recommender.api.database import Settings
from recommender.refresh import pipeline
from recommender.warehouse.embedded import SUPERUSER, EmbeddedServer, free_port
from recommender.warehouse.targets import (
    PROJECT_ROOT,
    Target,
    drop_database,
    embedded_target,
    ensure_database,
    owner_password,
    target_from_env,
)

REAL_EXPORT = PROJECT_ROOT.parent / "shared" / "data" / "netflix"
# a test that asks for one of these fixtures (directly or through others) needs a database: marked ``database``
DATABASE_FIXTURES = {"server", "embedded"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a PostgreSQL ``database``; ``make test-fast`` runs the others (-m "not database")."""
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if DATABASE_FIXTURES & fixtures:
            item.add_marker(pytest.mark.database)
        params = getattr(getattr(item, "callspec", None), "params", {})
        # pytest-xdist (make test: -n 2 --dist loadgroup) runs each server's tests in one worker, so the
        # servers' passes run side by side and each session fixture (a built warehouse) is built once
        if group := params.get("server") or ("embedded" if "embedded" in fixtures else None):
            item.add_marker(pytest.mark.xdist_group(group))


def _external_server() -> Target:
    if os.environ.get("PGHOST"):
        return target_from_env().with_database("postgres")
    return Target("127.0.0.1", 5432, SUPERUSER, "", "postgres", embedded=False)


@pytest.fixture(scope="session")
def embedded() -> Iterator[EmbeddedServer]:
    # a folder of its own, not pytest's tmp_path: another test session of the same user (another checkout)
    # prunes pytest's numbered folders, and would take this server's data folder from under it
    folder = Path(tempfile.mkdtemp(prefix="netflix-warehouse-tests-"))
    server = EmbeddedServer(pgdata=folder / "pgdata", port=free_port(), password=owner_password())
    server.start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session", params=["embedded", "external"])
def server(request: pytest.FixtureRequest) -> Target:
    """A PostgreSQL server to test on, as a target whose database is the maintenance db."""
    if request.param == "embedded":
        return embedded_target(request.getfixturevalue("embedded"), "postgres")
    target = _external_server()
    try:
        target.connect().close()
    except psycopg2.OperationalError as exc:
        pytest.skip(f"no external PostgreSQL answers at {target.host}:{target.port}: {exc}".strip())
    return target


def _fresh(server: Target) -> Target:
    target = server.with_database(f"nw_test_{uuid.uuid4().hex[:12]}")
    ensure_database(target)
    return target


@pytest.fixture
def new_database(server: Target) -> Iterator[Callable[[], Target]]:
    """Factory of fresh databases on ``server``; each is dropped after the test."""
    created: list[Target] = []

    def make() -> Target:
        created.append(_fresh(server))
        return created[-1]

    yield make
    for target in created:
        drop_database(target)


def _work_dir() -> Path:
    return PROJECT_ROOT / "target" / "pytest" / uuid.uuid4().hex[:12]


@pytest.fixture
def work_dir() -> Iterator[Path]:
    """A dbt target folder of the test's own, inside the project as dbt seed paths must be; removed after."""
    path = _work_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def module_work_dir() -> Iterator[Path]:
    """A dbt target folder of the test module's own (for module-scoped fixtures that run dbt); removed after."""
    path = _work_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def _built_warehouse(
    server: Target, export: Path | None = None, simulation: SimulationConfig | None = None
) -> Iterator[pipeline.Summary]:
    """The pipeline run into a fresh database of ``server``; database and dbt folder removed afterwards."""
    target, path = _fresh(server), _work_dir()
    try:
        yield pipeline.run(target, export, work_dir=path, simulation=simulation)
    finally:
        drop_database(target)
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def sample_warehouse(server: Target) -> Iterator[pipeline.Summary]:
    """The committed sample with a 500-user cohort, shared by read-only tests."""
    with _built_warehouse(server, simulation=SimulationConfig(users=500, days=14)) as summary:
        yield summary


@pytest.fixture
def database(new_database: Callable[[], Target]) -> Target:
    return new_database()


def _real_export() -> Path:
    if not (REAL_EXPORT / "raw_titles.csv").is_file():
        pytest.skip(f"the real catalogue export is not at {REAL_EXPORT}")
    return REAL_EXPORT


@pytest.fixture
def real_export() -> Path:
    return _real_export()


@pytest.fixture(scope="session")
def real_warehouse(server: Target) -> Iterator[pipeline.Summary]:
    """The real export built by the pipeline into a fresh database (skipped without the export)."""
    with _built_warehouse(server, _real_export(), SimulationConfig(users=500, days=14)) as summary:
        yield summary


@pytest.fixture(scope="module")
def small_warehouse(server: Target) -> Iterator[pipeline.Summary]:
    """The sample built with a small simulated cohort, for tests that write more activity (module scope)."""
    with _built_warehouse(server, simulation=SimulationConfig(users=300, days=14)) as summary:
        yield summary


@dataclass(frozen=True)
class Api:
    """The HTTP API in process on a test warehouse: a client, one key per role, the owner's target."""

    client: TestClient
    keys: dict[str, str]
    target: Target

    def headers(self, role: str) -> dict[str, str]:
        return {"X-API-Key": self.keys[role]}


@contextmanager
def api_for(target: Target) -> Iterator[Api]:
    with closing(target.connect()) as conn:
        keys.ensure_schema(conn)
        issued = {role: keys.create_key(conn, role, f"pytest {role}") for role in keys.ROLES}
    with TestClient(create_app(Settings.from_env(target=target))) as client:
        yield Api(client, issued, target)


@pytest.fixture(scope="session")
def api(sample_warehouse: pipeline.Summary) -> Iterator[Api]:
    """The API on the shared sample warehouse, for tests that only read (or whose writes are refused)."""
    with api_for(sample_warehouse.target) as found:
        yield found


@pytest.fixture(scope="session")
def writable_api(server: Target) -> Iterator[Api]:
    """The API on a warehouse of its own (300 users), shared by the tests that write through it.

    Each test writes users of its own id range, so they do not see each other's rows.
    """
    with (
        _built_warehouse(server, simulation=SimulationConfig(users=300, days=14)) as summary,
        api_for(summary.target) as found,
    ):
        yield found


@contextmanager
def serving(target: Target) -> Iterator[str]:
    """The API on ``target`` served by uvicorn in a thread, on a free port; its URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(Settings.from_env(target=target)), port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the API did not start"
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
