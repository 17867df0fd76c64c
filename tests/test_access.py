"""Access on real servers, through people's own logins: an analyst's reads every layer and writes nothing;
a data scientist's reads the marts and writes app. Nobody logs in as a group."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import psycopg2
import pytest

from recommender.refresh import pipeline
from recommender.warehouse import logins, passwords
from recommender.warehouse.targets import Target

SCHEMAS = ("raw", "staging", "core", "marts")
TABLES = {"raw": "raw_titles", "staging": "stg_netflix__titles", "core": "titles", "marts": "catalogue"}


def _login(target: Target, user: str, password: str) -> psycopg2.extensions.connection:
    return psycopg2.connect(
        host=target.host, port=target.port, dbname=target.database, user=user, password=password, connect_timeout=5
    )


@pytest.fixture(scope="session")
def published(sample_warehouse: pipeline.Summary) -> pipeline.Summary:
    """The sample warehouse with a table the owner created in predictions, as the publisher will."""
    with closing(sample_warehouse.target.connect()) as conn, conn, conn.cursor() as cur:
        cur.execute("create table if not exists predictions.published (x int)")
        cur.execute("insert into predictions.published values (1)")
    return sample_warehouse


def _person(warehouse: pipeline.Summary, group: str) -> tuple[str, str]:
    """A person's login of ``group`` on the warehouse (dropped with its database), and its password."""
    name = f"p{warehouse.target.database[-12:]}_access_{group}"
    with closing(warehouse.target.connect()) as conn:
        return name, logins.add_login(conn, name, group)


@pytest.fixture(scope="session")
def analyst_login(published: pipeline.Summary) -> tuple[str, str]:
    return _person(published, "analyst")


@pytest.fixture(scope="session")
def data_scientist_login(published: pipeline.Summary) -> tuple[str, str]:
    return _person(published, "data_scientist")


@pytest.fixture
def analyst(published: pipeline.Summary, analyst_login: tuple[str, str]) -> Iterator[psycopg2.extensions.connection]:
    conn = _login(published.target, *analyst_login)
    yield conn
    conn.close()


def _writes() -> list[str]:
    """Every kind of write an analyst might try, in every schema dbt builds (staging holds views)."""
    attempts = [
        "create schema analyst_scratch",
        *(f"create table {schema}.analyst_scratch (x int)" for schema in ("public", "app", "predictions")),
        "insert into predictions.published select 1",
        "delete from predictions.published",
    ]
    for schema in SCHEMAS:
        table = f"{schema}.{TABLES[schema]}"
        attempts += [
            f"create table {schema}.analyst_scratch (x int)",
            f"create view {schema}.analyst_scratch as select 1 as x",
            f"insert into {table} select * from {table} limit 1",
            f"update {table} set title = title",
            f"delete from {table}",
            f"truncate {table}",
            f"drop {'view' if schema == 'staging' else 'table'} {table}",
            f"alter table {table} add column analyst_note text",
            f"copy {table} from stdin",
            f"copy {table} to '/tmp/analyst_copy.csv'",
        ]
    return attempts


def test_analyst_reads_every_layer(analyst: psycopg2.extensions.connection, sample_warehouse) -> None:
    with analyst.cursor() as cur:
        for schema in SCHEMAS:
            cur.execute(f"select count(*) from {schema}.{TABLES[schema]}")
            assert cur.fetchone()[0] == sample_warehouse.row_counts[f"{schema}.{TABLES[schema]}"]
        cur.execute("show statement_timeout")
        assert cur.fetchone()[0] == "1min"


@pytest.mark.parametrize("read_write_session", [False, True], ids=["default-session", "read-write-session"])
def test_analyst_cannot_write_anything(analyst: psycopg2.extensions.connection, read_write_session: bool) -> None:
    """Refused by privileges, not only by the read-only default the role sessions start with."""
    analyst.autocommit = True
    if read_write_session:
        with analyst.cursor() as cur:
            cur.execute("set default_transaction_read_only = off")
    succeeded, refused_otherwise = [], []
    attempts = _writes()
    for statement in attempts:
        with analyst.cursor() as cur:
            try:
                cur.execute(statement)
            except (psycopg2.errors.InsufficientPrivilege, psycopg2.errors.ReadOnlySqlTransaction):
                pass
            except psycopg2.Error as exc:
                refused_otherwise.append((statement, type(exc).__name__))
            else:
                succeeded.append(statement)
    assert len(attempts) == 46
    assert succeeded == []
    # Only row changes to the staging views fail before the privilege check: views that are not updatable.
    assert {statement for statement, _ in refused_otherwise} <= {
        f"{verb} staging.stg_netflix__titles" for verb in ("delete from", "truncate")
    } | {
        "insert into staging.stg_netflix__titles select * from staging.stg_netflix__titles limit 1",
        "update staging.stg_netflix__titles set title = title",
    }


def test_data_scientist_reads_the_marts_and_writes_app(
    published: pipeline.Summary, data_scientist_login: tuple[str, str]
) -> None:
    """Predictions are read here; who may write them (and how) is tests/test_role_attacks.py's and test_publish's."""
    sample_warehouse = published
    conn = _login(sample_warehouse.target, *data_scientist_login)
    with conn, conn.cursor() as cur:
        cur.execute("set default_transaction_read_only = off")
        cur.execute("select count(*) from marts.ml_title_features")
        assert cur.fetchone()[0] == sample_warehouse.row_counts["marts.ml_title_features"]
        cur.execute("create table app.scientist_scratch (x int)")
        cur.execute("insert into app.scientist_scratch values (1)")
        cur.execute("select count(*) from predictions.published")  # a table the owner created
        assert cur.fetchone()[0] >= 1
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("create table core.scientist_scratch (x int)")
    conn.close()


def test_analyst_reads_predictions(analyst: psycopg2.extensions.connection) -> None:
    with analyst.cursor() as cur:
        cur.execute("select count(*) from predictions.published")
        assert cur.fetchone()[0] >= 1


def test_embedded_server_demands_the_login_s_password(
    sample_warehouse: pipeline.Summary, analyst_login: tuple[str, str]
) -> None:
    if not sample_warehouse.target.embedded:
        pytest.skip("the external server's authentication is its owner's (trust on our machines)")
    with pytest.raises(psycopg2.OperationalError, match="password authentication failed"):
        _login(sample_warehouse.target, analyst_login[0], "not-the-password")


@pytest.mark.parametrize("group", logins.GROUPS)
def test_nobody_logs_in_as_a_group(sample_warehouse: pipeline.Summary, group: str) -> None:
    """Whatever the password (the external server trusts local connections): the group has no login."""
    refusals = r"not permitted to log in|password authentication failed"
    with pytest.raises(psycopg2.OperationalError, match=refusals):
        _login(sample_warehouse.target, group, "any password")


def test_secrets_come_from_the_environment_or_a_private_file(tmp_path) -> None:
    secrets_dir, variable = tmp_path / "secrets", "NETFLIX_TEST_SECRET"
    assert passwords.generated("test_secret", variable, {variable: "s3cret"}, secrets_dir) == "s3cret"
    generated = passwords.generated("test_secret", variable, {}, secrets_dir)
    assert len(generated) >= 24
    assert passwords.generated("test_secret", variable, {}, secrets_dir) == generated  # generated once, then reused
    assert (secrets_dir / "test_secret").stat().st_mode & 0o077 == 0
    assert secrets_dir.stat().st_mode & 0o777 == 0o700
    assert passwords.hint("test_secret", variable, {}, secrets_dir) == str(secrets_dir / "test_secret")
    assert passwords.hint("test_secret", variable, {variable: "s3cret"}, secrets_dir) == f"${variable}"


def test_first_uses_at_once_agree_on_one_secret(tmp_path) -> None:
    """Processes that start together (make run beside make serve, test workers) get one password, never ''."""
    secrets_dir, start = tmp_path / "secrets", threading.Barrier(8)

    def first_use() -> str:
        start.wait()
        return passwords.generated("test_secret", "NETFLIX_TEST_SECRET", {}, secrets_dir)

    with ThreadPoolExecutor(8) as pool:
        found = set(pool.map(lambda _: first_use(), range(8)))
    assert len(found) == 1 and len(found.pop()) >= 24
    assert [path.name for path in secrets_dir.iterdir()] == ["test_secret"]  # no draft left behind
