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
from export_copies import copy_export
from fastapi.testclient import TestClient
from live_warehouse import COHORT
from queries import query

from recommender.activity.simulate import SimulationConfig
from recommender.api import keys
from recommender.api.app import create_app
from recommender.api.database import Settings
from recommender.refresh import generations, pipeline
from recommender.warehouse import exports
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
# the session's shared warehouses: a test module that uses one runs in the worker that built it
SHARED_WAREHOUSES = {"sample_warehouse", "real_warehouse", "writable_api", "api"}
EVERY_SERVER = os.environ.get("NETFLIX_TEST_EVERY_SERVER") == "1"
LOST_GROUPS = pytest.StashKey[list[str]]()


# before pytest-xdist's own hook, which reads the xdist_group marks into the node ids it schedules by: its worker
# plugin is registered after this conftest, so pluggy would otherwise call it first
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a PostgreSQL ``database`` (``make test-fast`` runs the others: -m "not database"),
    skip ``one_server`` tests on the external server, and group each server's tests for pytest-xdist."""
    sharing = {item.module.__name__ for item in items if SHARED_WAREHOUSES & set(getattr(item, "fixturenames", ()))}
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if DATABASE_FIXTURES & fixtures:
            item.add_marker(pytest.mark.database)
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("server") == "external" and item.get_closest_marker("one_server") and not EVERY_SERVER:
            item.add_marker(
                pytest.mark.skip(
                    reason="judges our code, not the server: run on the embedded server"
                    " (NETFLIX_TEST_EVERY_SERVER=1 runs it on the external one too)"
                )
            )
        # pytest-xdist (make test: -n 2 --dist loadgroup) runs a group in one worker. The tests that share a
        # session warehouse form one group per server, so each is built once; a module that shares none is a
        # group of its own (per server), which either worker can take: the two workers end close together.
        if group := params.get("server") or ("embedded" if "embedded" in fixtures else None):
            own = item.module.__name__ not in sharing
            item.add_marker(pytest.mark.xdist_group(f"{group}-{item.module.__name__}" if own else group))


def pytest_collection_finish(session: pytest.Session) -> None:
    """In a pytest-xdist worker under --dist loadgroup: note the tests whose group did not reach the node id that
    xdist schedules by (pytest 9.2 drops them: pytest-xdist#1386); ``server`` fails them."""
    if getattr(session.config.option, "loadgroup", False):  # set in pytest-xdist's workers only
        session.config.stash[LOST_GROUPS] = [
            item.nodeid
            for item in session.items
            if (mark := item.get_closest_marker("xdist_group")) and not item.nodeid.endswith(f"@{mark.args[0]}")
        ]


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
    if lost := request.config.stash.get(LOST_GROUPS, []):
        pytest.fail(
            f"pytest-xdist's loadgroup lost the xdist_group of {len(lost)} tests, e.g. {lost[0]}: each worker would"
            " build every warehouse again (pytest 9.2 drops the groups: pytest-xdist#1386)"
        )
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


def _refresh(target: Target, folder: Path, work: Path, **options: object) -> pipeline.Summary:
    """A refresh of a test's live warehouse: dbt's folder is always the same one, as make run's is, so that each
    refresh's parse starts from the last."""
    return pipeline.run(
        target, folder, work_dir=work / "dbt", simulation=COHORT, exports_dir=work / "exports", **options
    )


@dataclass
class Live:
    """A warehouse refreshed from ``folder`` (a copy of the sample), with the API on it."""

    target: Target
    folder: Path
    work: Path
    api: Api

    def refresh(self, folder: Path | None = None, **options: object) -> pipeline.Summary:
        return _refresh(self.target, folder or self.folder, self.work, **options)

    def on_its_export(self) -> None:
        """Refresh from ``folder`` only if a test before left another export live: a test leaves the export it
        changed to, and one that needs the sample's catalogue starts here."""
        with closing(self.target.connect()) as conn:
            current = generations.live(conn)
        if current.fingerprint != generations.Generation.new(self.folder, exports.locate(self.folder)).fingerprint:
            self.refresh()

    def copy(self, tmp_path: Path) -> Path:
        """A copy of the export the warehouse lives on, to break or change."""
        return copy_export(self.folder, tmp_path / "export")

    def assert_serving(self) -> None:
        """The API answers recommendations from the current run."""
        ((user_id,),) = query(self.target, "select min(user_id) from marts.user_recommendations")
        answer = self.api.client.get(f"/users/{user_id}/recommendations", headers=self.api.headers("analyst"))
        assert answer.status_code == 200, answer.text
        assert len(answer.json()["items"]) == 20


@pytest.fixture(scope="module")
def live(server: Target, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A warehouse of the test module's own, refreshed from a copy of the sample, that its tests live on in turn."""
    target = server.with_database(f"nw_test_refresh_{os.getpid()}_{time.monotonic_ns() % 10**6}")
    ensure_database(target)
    work = PROJECT_ROOT / "target" / "pytest" / target.database
    folder = copy_export(exports.SAMPLE_DIR, tmp_path_factory.mktemp("export") / "sample")
    try:
        _refresh(target, folder, work)
        with api_for(target) as api:
            yield Live(target, folder, work, api)
    finally:
        drop_database(target)
        shutil.rmtree(work, ignore_errors=True)
