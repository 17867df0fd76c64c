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
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from psycopg2 import errors, sql
from psycopg2.extensions import TRANSACTION_STATUS_IDLE, connection, cursor

from recommender import activity
from recommender.activity.simulate import SimulationConfig, simulate
from recommender.errors import ConflictError
from recommender.ml import publish
from recommender.warehouse.dbt import LIVE_EXPORT
from recommender.warehouse.targets import PROJECT_ROOT, Target, count_rows, lock_holders, read_table

LAYERS = ("raw", "staging", "core", "marts")
NEXT, PREVIOUS, REFUSED = "__next", "__prev", "__refused"
COHORT, PENDING = "app__cohort", "app__next"  # the refresh's cohort, and app as it will be (sql/cohort.sql)
SQL_DIR = Path(__file__).with_name("sql")
EXPORTS_DIR = LIVE_EXPORT.parent  # the checked copies of the exports of the live and previous generations
SWITCH_LOCK_TIMEOUT = "30s"  # how long the switch waits for app's writers (and old readers of __prev) to finish
EXAMPLES = 5  # values shown in a reason
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


def _drop_schemas(cur: cursor, names: list[str]) -> None:
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
        _drop_schemas(cur, [schema(layer, s) for s in (NEXT, REFUSED) for layer in LAYERS] + [PENDING, COHORT])


def refuse(conn: connection) -> list[str]:
    """Rename the next generation's schemas ``<schema>__refused`` (kept until the next refresh); their names."""
    if conn.get_transaction_status() != TRANSACTION_STATUS_IDLE:
        conn.rollback()
    with conn, conn.cursor() as cur:
        _drop_schemas(cur, [schema(layer, REFUSED) for layer in LAYERS] + [PENDING, COHORT])
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


@dataclass(frozen=True)
class Cohort:
    pending: bool  # True: app changes at the switch (the cohort is new, or its catalogue changed)
    written: list[activity.WriteResult]


def stage_cohort(conn: connection, config: SimulationConfig, *, progress: bool = False) -> Cohort:
    """Simulate ``config`` on the next generation's catalogue and stage it in ``app__cohort``.

    When app already holds exactly this cohort (same catalogue, same configuration) nothing
    is staged and app is read as it is; else the refresh reads ``app__next`` (app with these
    user ids replaced by the cohort) and ``switch`` applies the cohort to app.
    """
    features = read_table(conn, f"{schema('marts', NEXT)}.ml_title_features")
    if features.empty:
        raise GenerationError("the next generation's marts.ml_title_features is empty: there is nothing to watch")
    simulation = simulate(features, config, progress=progress)
    with conn, conn.cursor() as cur:
        _drop_schemas(cur, [PENDING, COHORT])
        cur.execute((SQL_DIR / "cohort.sql").read_text())
    place = activity.Place(
        titles=f"{schema('core', NEXT)}.titles",
        countries=f"{schema('core', NEXT)}.countries",
        users=f"{COHORT}.users",
        schema=COHORT,
    )
    users = activity.prepare_users(conn, simulation.users, place)
    written = [activity.write_prepared(conn, users, place)]
    events = activity.prepare_events(conn, simulation.events, place)
    if activity.is_written(conn, users.batch_id) and activity.is_written(conn, events.batch_id):
        with conn, conn.cursor() as cur:
            _drop_schemas(cur, [PENDING, COHORT])
        return Cohort(pending=False, written=[replace(w, written=False) for w in written] + _skipped(events))
    written.append(activity.write_prepared(conn, events, place))
    return Cohort(pending=True, written=written)


def _skipped(batch: activity.PreparedBatch) -> list[activity.WriteResult]:
    return [activity.WriteResult(batch.kind, batch.batch_id, batch.table.num_rows, written=False)]


# ---------------------------------------------------------------------------------------------------------------------
# the audit


def _shown(values: list[object]) -> str:
    more = f" and {len(values) - EXAMPLES:,} more" if len(values) > EXAMPLES else ""
    return ", ".join(map(repr, values[:EXAMPLES])) + more


def orphaned_activity(conn: connection, pending: bool) -> list[str]:
    """Reasons, one per kind of activity, why the next catalogue cannot take app's activity (titles it lacks)."""
    source = PENDING if pending else "app"
    reasons = []
    with conn, conn.cursor() as cur:
        for table in ("viewing_events", "ratings"):
            cur.execute(
                sql.SQL(
                    "select content_id, count(*) from {}.{} as activity where not exists"
                    " (select from {}.titles as titles where titles.content_id = activity.content_id)"
                    " group by content_id order by count(*) desc, content_id"
                ).format(sql.Identifier(source), sql.Identifier(table), sql.Identifier(schema("core", NEXT)))
            )
            rows = cur.fetchall()
            if rows:
                reasons.append(
                    f"the new catalogue orphans {sum(n for _, n in rows):,} row(s) of app.{table} written by users:"
                    f" {len(rows):,} title(s) it lacks, e.g. {_shown([content_id for content_id, _ in rows])}"
                    " (keep those titles in the export, or delete that activity first)"
                )
    return reasons


def orphaned_recommendations(conn: connection, run_id: str | None) -> list[str]:
    """Why the run that would be current with the next generation cannot be (titles or users it lacks)."""
    with conn, conn.cursor() as cur:
        if run_id is None:
            cur.execute("select run_id from predictions.model_runs where is_current")
            row = cur.fetchone()
            if row is None:
                return []
            run_id = row[0]
        reasons = []
        for column, table in (("content_id", "titles"), ("user_id", "users")):
            cur.execute(
                sql.SQL(
                    "select distinct recommendations.{column} from predictions.recommendations where run_id = %s"
                    " and not exists (select from {schema}.{table} as known"
                    " where known.{column} = recommendations.{column}) order by 1"
                ).format(
                    column=sql.Identifier(column),
                    schema=sql.Identifier(schema("core", NEXT)),
                    table=sql.Identifier(table),
                ),
                (run_id,),
            )
            missing = [value for (value,) in cur.fetchall()]
            if missing:
                reasons.append(
                    f"the recommendations of run {run_id} name {len(missing):,} {column}(s) the new generation"
                    f" lacks, e.g. {_shown(missing)} (train on the new generation: a refresh with a simulation does)"
                )
    return reasons


def shrinkage(
    live_counts: dict[str, int], next_counts: dict[str, int], *, max_shrink: float, same_export: bool
) -> list[str]:
    """Reasons for tables that become empty, or (same export only) shrink by more than ``max_shrink``."""
    reasons = []
    for name, before in live_counts.items():
        after = next_counts.get(name)
        if after is None or before == 0:
            continue
        if after == 0:
            reasons.append(f"{name} would become empty (it holds {before:,} rows now)")
        elif same_export and after < before * (1 - max_shrink):
            reasons.append(
                f"{name} would shrink by {1 - after / before:.0%} ({before:,} -> {after:,} rows), more than the"
                f" {max_shrink:.0%} allowed (--allow-shrink accepts a deliberate shrink, --max-shrink sets the share)"
            )
    return reasons


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
        _drop_schemas(cur, names)


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
            cur.execute((SQL_DIR / "apply_cohort.sql").read_text())
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
            f" app's activity names, e.g. {_shown(missing)}: its catalogue was replaced since. Refresh from that"
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
    link = exports_dir / LIVE_EXPORT.name
    temporary = link.with_name(f".live-{os.getpid()}")
    temporary.unlink(missing_ok=True)
    temporary.symlink_to(copy.relative_to(exports_dir.absolute()))
    temporary.replace(link)  # atomic: readers of the link see the old copy or the new one
    keep = {Path(g.seed_dir).name for g in (current, previous(conn)) if g}
    for folder in copy.parent.glob("gen-*"):
        if folder.name not in keep:
            shutil.rmtree(folder)
