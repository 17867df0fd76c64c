"""Warehouse generations: a refresh builds the next one beside the live one, audits it, then makes it live at once.

What dbt owns (schemas ``raw``, ``staging``, ``core``, ``marts``) is built by a refresh
under the suffix ``__next``, beside the live schemas that readers keep using. Once the
next generation has passed every audit, one transaction renames the live schemas to
``<schema>__prev``, the next ones to their plain names, applies the simulated cohort to
``app`` and makes the recommendations run trained on the new generation current.
PostgreSQL's ``ALTER SCHEMA ... RENAME`` is transactional and locks no table, so readers
see the old generation until the commit and the new one after it; a failure or a kill
before the commit leaves the live generation as it was. A refused generation is renamed
``<schema>__refused`` for inspection and dropped by the next refresh, as are the leftovers
of a killed one. ``rollback`` swaps the previous generation back, with its run.

Each generation carries its identity (export folder, fingerprint, run, titles) as JSON in
the comment of its ``raw`` schema, so the record moves with the schemas it describes.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from psycopg2 import errors, sql
from psycopg2.extensions import TRANSACTION_STATUS_IDLE, connection, cursor

from recommender.errors import ConflictError
from recommender.ml import publish
from recommender.warehouse import sql_files
from recommender.warehouse.dbt import LIVE_EXPORT
from recommender.warehouse.targets import PROJECT_ROOT, Target, count_rows, lock_holders

LAYERS = ("raw", "staging", "core", "marts")
NEXT, PREVIOUS, REFUSED = "__next", "__prev", "__refused"
COHORT, PENDING = "app__cohort", "app__next"  # the refresh's cohort, and app as it will be (sql/cohort.sql)
EXPORTS_DIR = LIVE_EXPORT.parent  # the checked copies of the exports of the live and previous generations
EXAMPLES = 5  # values shown in a reason
SWITCH_LOCK_TIMEOUT = "30s"  # how long the switch waits for app's writers (and old readers of __prev) to finish
# the advisory lock one refresh at a time holds (a positive bigint, so pg_locks shows it as two oids)
REFRESH_LOCK = int.from_bytes(hashlib.sha256(b"netflix_warehouse.refresh").digest()[:8], "big") >> 1


class GenerationError(ConflictError, RuntimeError):
    """A generation cannot be switched or rolled back; the message says why and what to do."""


@dataclass(frozen=True)
class Generation:
    """What a generation was built from, recorded on its ``raw`` schema."""

    id: str
    export: str  # the folder the export was read from
    fingerprint: str  # sha256 over the six files' bytes
    seed_dir: str  # the checked copy dbt seeded from, relative to the project
    built_at: str
    run_id: str | None = None  # the recommendations run that went live with it
    titles: int | None = None
    catalogue: str | None = None  # digest of core.titles: two copies of one export have the same

    @classmethod
    def new(cls, export: Path, files: dict[str, Path]) -> Generation:
        """A generation of the export ``files`` (in folder ``export``); its ``seed_dir`` is the caller's to set."""
        digest = hashlib.sha256()
        for seed in sorted(files):
            digest.update(seed.encode())
            with files[seed].open("rb") as fh:
                while block := fh.read(1 << 20):
                    digest.update(block)
        now = datetime.now(UTC)
        return cls(
            id=f"gen-{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}",
            export=str(export.resolve()),
            fingerprint=digest.hexdigest(),
            seed_dir="",
            built_at=now.isoformat(timespec="seconds"),
        )


def schema(layer: str, suffix: str = "") -> str:
    return f"{layer}{suffix}"


def _record(cur: cursor, suffix: str) -> Generation | None:
    cur.execute(
        "select obj_description(oid, 'pg_namespace') from pg_namespace where nspname = %s", (schema("raw", suffix),)
    )
    row = cur.fetchone()
    if row is None:
        return None
    try:
        return Generation(**json.loads(row[0]))
    except (TypeError, ValueError):  # a warehouse built before generations were recorded
        return Generation(id="unrecorded", export="", fingerprint="", seed_dir="", built_at="")


def live(conn: connection) -> Generation | None:
    """The live generation, None before the first build."""
    with conn, conn.cursor() as cur:
        return _record(cur, "")


def previous(conn: connection) -> Generation | None:
    """The generation kept for ``rollback``, None if there is none."""
    with conn, conn.cursor() as cur:
        return _record(cur, PREVIOUS)


def _existing(cur: cursor, names: list[str]) -> list[str]:
    cur.execute("select nspname from pg_namespace where nspname = any(%s)", (names,))
    found = {name for (name,) in cur.fetchall()}
    return [name for name in names if name in found]


def drop_schemas(cur: cursor, names: list[str]) -> None:
    for name in _existing(cur, names):
        cur.execute(sql.SQL("drop schema {} cascade").format(sql.Identifier(name)))


def hold_refresh_lock(conn: connection) -> None:
    """Take the warehouse's refresh lock for ``conn``'s session, or GenerationError if another refresh holds it.

    Two refreshes would build into the same ``__next`` schemas. The lock is a session's:
    it goes when the refresh's connection closes, or its process dies.
    """
    with conn, conn.cursor() as cur:
        cur.execute("select pg_try_advisory_lock(%s)", (REFRESH_LOCK,))
        if not cur.fetchone()[0]:
            cur.execute(
                "select string_agg('pid ' || pid || ' (' || usename || ', since ' || backend_start || ')', '; ')"
                " from pg_stat_activity where pid in (select pid from pg_locks where locktype = 'advisory'"
                " and classid = %s and objid = %s and granted)",
                (REFRESH_LOCK >> 32 & 0xFFFFFFFF, REFRESH_LOCK & 0xFFFFFFFF),
            )
            holder = cur.fetchone()[0] or "another session"
            raise GenerationError(f"another refresh of this warehouse is running ({holder}); wait for it to end")


def clear_leftovers(conn: connection) -> None:
    """Drop what an earlier refresh left beside the live generation: a refused or killed one, a staged cohort."""
    with conn, conn.cursor() as cur:
        drop_schemas(cur, [schema(layer, s) for s in (NEXT, REFUSED) for layer in LAYERS] + [PENDING, COHORT])


def refuse(conn: connection) -> list[str]:
    """Rename the next generation's schemas ``<schema>__refused`` (kept until the next refresh); their names."""
    if conn.get_transaction_status() != TRANSACTION_STATUS_IDLE:
        conn.rollback()
    with conn, conn.cursor() as cur:
        drop_schemas(cur, [schema(layer, REFUSED) for layer in LAYERS] + [PENDING, COHORT])
        names = _existing(cur, [schema(layer, NEXT) for layer in LAYERS])
        for name in names:
            cur.execute(
                sql.SQL("alter schema {} rename to {}").format(
                    sql.Identifier(name), sql.Identifier(name.removesuffix(NEXT) + REFUSED)
                )
            )
    return [name.removesuffix(NEXT) + REFUSED for name in names]


def catalogue(conn: connection, suffix: str = NEXT) -> str:
    """A digest of a generation's ``core.titles``, row by row in key order."""
    with conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL("select md5(string_agg(titles::text, E'\\n' order by content_id)) from {}.titles as titles").format(
                sql.Identifier(schema("core", suffix))
            )
        )
        return cur.fetchone()[0] or ""


def table_counts(conn: connection, suffix: str = "") -> dict[str, int]:
    """Rows of every table of a generation, keyed by its live name ("core.titles")."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "select n.nspname, c.relname from pg_class as c join pg_namespace as n on n.oid = c.relnamespace"
            " where n.nspname = any(%s) and c.relkind in ('r', 'p') order by 1, 2",
            ([schema(layer, suffix) for layer in LAYERS],),
        )
        relations = cur.fetchall()
        rows = count_rows(cur, relations)
    return {f"{namespace.removesuffix(suffix)}.{name}": n for (namespace, name), n in zip(relations, rows, strict=True)}


# ---------------------------------------------------------------------------------------------------------------------
# the simulated cohort, staged beside app


# ---------------------------------------------------------------------------------------------------------------------
# the audit


def shown(values: list[object]) -> str:
    more = f" and {len(values) - EXAMPLES:,} more" if len(values) > EXAMPLES else ""
    return ", ".join(map(repr, values[:EXAMPLES])) + more


# ---------------------------------------------------------------------------------------------------------------------
# switching and rolling back


@contextmanager
def _bounded(conn: connection, what: str, schemas: list[str]) -> Iterator[cursor]:
    """A transaction on ``conn`` whose lock waits end after SWITCH_LOCK_TIMEOUT with a GenerationError
    naming the sessions that held locks in ``schemas``."""
    try:
        with conn, conn.cursor() as cur:
            cur.execute(sql.SQL("set local lock_timeout = {}").format(sql.Literal(SWITCH_LOCK_TIMEOUT)))
            yield cur
    except errors.LockNotAvailable as exc:
        with conn, conn.cursor() as cur:
            holders = lock_holders(cur, schemas)
        raise GenerationError(
            f"{what} gave up after waiting {SWITCH_LOCK_TIMEOUT} for sessions holding tables of"
            f" {', '.join(schemas)}: {holders}. Nothing changed; end them (or wait) and run again"
        ) from exc


def drop_previous(conn: connection) -> None:
    """Drop the generation kept for rollback, before a new one is switched in (its own transaction).

    Waits at most SWITCH_LOCK_TIMEOUT for transactions still reading it.
    """
    names = [schema(layer, PREVIOUS) for layer in LAYERS]
    with _bounded(conn, "dropping the previous generation", names) as cur:
        drop_schemas(cur, names)


def _rename(cur: cursor, renames: list[tuple[str, str]]) -> None:
    for old, new in renames:
        cur.execute(sql.SQL("alter schema {} rename to {}").format(sql.Identifier(old), sql.Identifier(new)))


def _comment(cur: cursor, generation: Generation) -> None:
    cur.execute(
        sql.SQL("comment on schema raw is {}").format(sql.Literal(json.dumps(asdict(generation), sort_keys=True)))
    )


def switch(conn: connection, generation: Generation, *, cohort_pending: bool) -> None:
    """Make the next generation live, in one transaction: the live one becomes ``__prev``.

    With ``cohort_pending`` the staged cohort replaces its user ids in app; with
    ``generation.run_id`` that staged run becomes current. Readers are never blocked.
    """
    held = [*LAYERS, "app", "predictions"]
    with _bounded(conn, "the switch", held) as cur:
        if cohort_pending:
            cur.execute(sql_files.read(__package__, "apply_cohort.sql"))
        live_names = _existing(cur, list(LAYERS))
        _rename(cur, [(name, schema(name, PREVIOUS)) for name in live_names])
        _rename(cur, [(schema(layer, NEXT), layer) for layer in LAYERS])
        _comment(cur, generation)
        if generation.run_id:
            publish.make_current(cur, generation.run_id)


def rollback(conn: connection) -> Generation:
    """Make the previous generation live again with its recommendations run; the live one becomes the previous.

    Refused (GenerationError) when there is no previous generation, when its catalogue
    lacks titles that app's activity names, or when its run's recommendations were pruned.
    """
    before = previous(conn)
    if before is None:
        raise GenerationError("there is no previous generation to return to (a refresh keeps one once it has two)")
    with conn, conn.cursor() as cur:
        cur.execute(
            sql.SQL(
                "select distinct content_id from ("
                " select content_id from app.viewing_events union all select content_id from app.ratings) as activity"
                " where not exists (select from {}.titles as titles where titles.content_id = activity.content_id)"
                " order by 1"
            ).format(sql.Identifier(schema("core", PREVIOUS)))
        )
        missing = [value for (value,) in cur.fetchall()]
    if missing:
        raise GenerationError(
            f"the previous generation ({before.export or 'unrecorded export'}) lacks {len(missing):,} title(s) that"
            f" app's activity names, e.g. {shown(missing)}: its catalogue was replaced since. Refresh from that"
            " export instead (make run RAW_DATA_DIR=...)"
        )
    swap = "__swap"
    with _bounded(conn, "the rollback", [*LAYERS, "predictions"]) as cur:
        _rename(cur, [(layer, schema(layer, swap)) for layer in LAYERS])
        _rename(cur, [(schema(layer, PREVIOUS), layer) for layer in LAYERS])
        _rename(cur, [(schema(layer, swap), schema(layer, PREVIOUS)) for layer in LAYERS])
        if before.run_id:
            publish.restore(cur, before.run_id)
    return before


# ---------------------------------------------------------------------------------------------------------------------
# the export copy plain dbt reads


def export_copies(exports_dir: Path, target: Target) -> Path:
    """The folder of ``target``'s export copies: one per warehouse, so two warehouses never remove each other's."""
    key = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{target.host}-{target.port}-{target.database}")
    return exports_dir / key


def _point(link: Path, folder: Path) -> None:
    """Point ``link`` at ``folder``, atomically: readers of the link see the old folder or the new one."""
    temporary = link.with_name(f".{link.name}-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(os.path.relpath(folder.absolute(), link.parent.absolute()))
    temporary.replace(link)


def next_export(copy: Path) -> Path:
    """The link ``next`` beside a refresh's export copy, pointed at it: dbt reads the export through
    one path in every refresh of a warehouse, where a new folder each time (a variable that
    dbt_project.yml reads) would make dbt parse the whole project again."""
    link = copy.with_name("next")
    _point(link, copy)
    return link


def link_live_export(conn: connection, exports_dir: Path) -> None:
    """Point ``<exports_dir>/live`` at the live generation's export copy; drop the copies of this warehouse's
    generations that are neither live nor previous.

    dbt's default seed path is this link, so plain ``dbt seed`` / ``dbt build`` reload the
    export the warehouse was built from, never the sample in its place.
    """
    current = live(conn)
    if current is None or not current.seed_dir:
        return
    copy = PROJECT_ROOT / current.seed_dir
    _point(exports_dir / LIVE_EXPORT.name, copy)
    keep = {Path(g.seed_dir).name for g in (current, previous(conn)) if g}
    for folder in copy.parent.glob("gen-*"):
        if folder.name not in keep:
            shutil.rmtree(folder)
