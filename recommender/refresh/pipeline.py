"""The main job: load the raw export, build the warehouse with dbt, simulate, train, print what it holds."""

from __future__ import annotations

import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path

from recommender import activity
from recommender.activity.simulate import SimulationConfig
from recommender.errors import BadInputError
from recommender.ml import publish
from recommender.ml.train import TrainResult, train
from recommender.refresh import audit, generations
from recommender.refresh.cohort import Cohort, stage_cohort
from recommender.warehouse import access, exports, progress, quality
from recommender.warehouse.dbt import failures, results, run_dbt
from recommender.warehouse.targets import PROJECT_ROOT, Target, count_rows

LAYERS = ("raw", "staging", "core", "marts", "app")
ACTIVITY = "source:app+"  # the dbt nodes built from the simulated activity
PREDICTIONS = "source:predictions+"  # the views on the published recommendations
DEFAULT_COHORT = SimulationConfig()
# a folder of its own: beside plain dbt's target/, whose saved parse a refresh's variables would spoil
DEFAULT_WORK_DIR = PROJECT_ROOT / "target" / "refresh"


class PipelineError(BadInputError, RuntimeError):
    """A step failed; the message says which and where to look."""


class RefusedError(PipelineError):
    """The next generation failed its build or its audit; ``reasons`` lists every reason. Nothing live changed."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        shown = "\n  ".join(reasons[:20])
        more = f"\n  ... and {len(reasons) - 20} more" if len(reasons) > 20 else ""
        super().__init__(f"the new warehouse generation was refused, {len(reasons)} reason(s):\n  {shown}{more}")


@dataclass(frozen=True)
class Summary:
    source: str
    row_counts: dict[str, int]  # "schema.table" -> rows
    dbt_counts: dict[tuple[str, str], int]  # (resource type, status) -> nodes
    unmatched_rankings: int
    simulated: list[activity.WriteResult]
    trained: TrainResult | None
    quality: quality.QualityReport
    seconds: float
    target: Target
    changes: list[str] = field(default_factory=list)

    def render(self) -> str:
        width = max(map(len, self.row_counts), default=0)
        lines = [f"netflix_warehouse built from {self.source} in {self.seconds:.1f} s"]
        lines += [f"  {name:<{width}}  {rows:>9,}" for name, rows in self.row_counts.items()]
        lines += [f"  {change}" for change in self.changes]
        tests = {kind: self.dbt_counts.get((kind, "pass"), 0) for kind in ("test", "unit_test")}
        warned = self.dbt_counts.get(("test", "warn"), 0)
        built = {
            kind: n
            for (kind, status), n in self.dbt_counts.items()
            if kind in ("model", "seed") and status == "success"
        }
        lines.append(
            f"  dbt build: {tests['test']} data tests and {tests['unit_test']} unit tests passed, {warned} warned; "
            + ", ".join(f"{n} {kind}s built" for kind, n in sorted(built.items()))
        )
        lines.append(f"  best-of entries matching no title: {self.unmatched_rankings} (kept in core.title_rankings)")
        lines += [f"  simulation: {result}" for result in self.simulated]
        if self.trained:
            lines.append(f"  recommender: {self.trained}")
        lines.append(f"  {self.quality.render()}")
        lines.append(f"  connect: psql {self.target.uri(with_password=False)}  (or: make psql, make dsn)")
        lines.append(
            "  people: python -m recommender access add NAME --role analyst|data_scientist"
            " gives each a login of their own (see README)"
        )
        return "\n".join(lines)


def row_counts(target: Target, schemas: tuple[str, ...] = LAYERS) -> dict[str, int]:
    """Rows of every table and view in ``schemas``, keyed "schema.name", in schema then name order."""
    with closing(target.connect()) as conn, conn.cursor() as cur:
        cur.execute(
            "select table_schema, table_name from information_schema.tables"
            " where table_schema = any(%s) order by array_position(%s, table_schema::text), table_name",
            (list(schemas), list(schemas)),
        )
        relations = cur.fetchall()
        return {
            f"{schema}.{name}": rows for (schema, name), rows in zip(relations, count_rows(cur, relations), strict=True)
        }


def run(
    target: Target,
    raw_data_dir: Path | None = None,
    work_dir: Path = DEFAULT_WORK_DIR,
    simulation: SimulationConfig | None = DEFAULT_COHORT,
    *,
    max_shrink: float = 0.1,
    allow_shrink: bool = False,
    exports_dir: Path | None = None,
) -> Summary:
    """Refresh the warehouse, all or nothing: check the export, build, audit and switch the next generation.

    ``raw_data_dir`` is a folder holding the six export files (original Kaggle names or
    seed names); without it the committed sample in ``seeds/netflix`` is loaded. Nothing
    readers see changes until the next generation (``recommender.refresh.generations``) has been
    built (``dbt build``), given its simulated cohort, trained on (``simulation``: the
    default cohort, replacing an earlier one; None skips both) and audited: every dbt
    test, the Great Expectations suites, no table becoming empty or shrinking by more than
    ``max_shrink`` against a live generation of the same export folder (``allow_shrink``
    accepts it), no activity or recommendation left without its title. Then one
    transaction makes it live. Any failure raises PipelineError listing every reason and
    keeps the refused generation as ``<schema>__refused``.

    ``work_dir`` is dbt's target folder. The checked export is copied into ``exports_dir``
    (inside the project; by default ``.exports`` for the project's own target folder, else
    ``<work_dir>/exports``), whose link ``live`` names the copy of the live generation.
    """
    started = time.perf_counter()
    folder = raw_data_dir or exports.SAMPLE_DIR
    files = exports.locate(folder)
    with closing(target.connect()) as guard:
        generations.hold_refresh_lock(guard)  # held by this session until the refresh ends, or its process dies
        return _run(target, folder, files, work_dir, simulation, max_shrink, allow_shrink, exports_dir, started)


def _run(
    target: Target,
    folder: Path,
    files: dict[str, Path],
    work_dir: Path,
    simulation: SimulationConfig | None,
    max_shrink: float,
    allow_shrink: bool,
    exports_dir: Path | None,
    started: float,
) -> Summary:
    exports_dir = exports_dir or (generations.EXPORTS_DIR if work_dir == DEFAULT_WORK_DIR else work_dir / "exports")
    stages = _Stages()
    stages.next("check", "the export, the Python side's schemas, leftovers of an earlier refresh")
    with closing(target.connect()) as conn:
        exports.check(conn, files)
        activity.ensure_schema(conn)
        publish.ensure_schema(conn)  # dbt reads predictions as a source
        publish.prune(conn)  # runs whose process died are marked failed, their partitions dropped
        generations.clear_leftovers(conn)
        before = generations.live(conn)
        live_counts = generations.table_counts(conn)
    generation = generations.Generation.new(folder, files)
    seed_dir = exports.prepare(files, generations.export_copies(exports_dir, target) / generation.id)
    generation = replace(generation, seed_dir=str(seed_dir.relative_to(PROJECT_ROOT)))
    refresh = _Refresh(target, work_dir, generations.next_export(seed_dir))
    run_id = None
    try:
        stages.next("catalogue", "seeds, staging, core and marts with their tests")
        refresh.build("--exclude", ACTIVITY, PREDICTIONS)
        cohort = None
        with closing(target.connect()) as conn:
            if simulation is not None:
                stages.next("simulate", "the default cohort on the new catalogue")
                cohort = stage_cohort(conn, simulation)
            pending = cohort is not None and cohort.pending  # app changes at the switch
            refresh.refuse_if(audit.orphaned_activity(conn, pending=pending))
        stages.next("activity", "users, viewing events and their marts with their tests")
        # and the views on predictions, their data untested here: until the switch they show the live
        # generation's run (the audit below checks the staged run); unit tests read no data and run
        app_schema = generations.PENDING if pending else "app"
        refresh.build(
            "--select", ACTIVITY, PREDICTIONS, "--exclude", f"{PREDICTIONS},resource_type:test", app_schema=app_schema
        )
        if pending:  # the views on app read app as it will be; once live they read app itself
            refresh.dbt("run", "--select", "path:models/staging/app")
        with closing(target.connect()) as conn:
            if simulation is not None:
                stages.next("train", "fit, evaluate and stage the recommendations")
            trained = train(conn, schema_suffix=generations.NEXT) if simulation is not None else None
            run_id = trained.run_id if trained else None
            stages.next("quality", "Great Expectations")
            try:
                report = quality.validate(target, work_dir, schema_suffix=generations.NEXT)
            except quality.QualityError as exc:
                report = exc.report
                refresh.reasons += [f"Great Expectations: {failure}" for failure in exc.report.failures]
            stages.next("audit", "empty or shrinking tables, orphaned activity and recommendations")
            next_counts = generations.table_counts(conn, generations.NEXT)
            same_export = before is not None and before.export == generation.export
            refresh.reasons += audit.shrinkage(
                live_counts, next_counts, max_shrink=max_shrink, same_export=same_export and not allow_shrink
            )
            refresh.reasons += audit.orphaned_recommendations(conn, run_id)
            refresh.refuse_if(refresh.reasons)
            generation = replace(
                generation, run_id=run_id, titles=next_counts.get("core.titles"), catalogue=generations.catalogue(conn)
            )
            stages.next("switch", "the new generation goes live")
            generations.drop_previous(conn)
            generations.switch(conn, generation, cohort_pending=pending)
    except BaseException as exc:
        stages.end(failed=True)
        _refused(target, run_id, exc)
        raise
    with closing(target.connect()) as conn:
        generations.link_live_export(conn, exports_dir)
        access.close_group_logins(conn)
        access.prepare_python_schemas(conn)
        access.protect_sessions(conn)
        publish.prune(conn)
    summary = Summary(
        source=str(folder),
        row_counts=row_counts(target),
        dbt_counts=dict(Counter(refresh.nodes.values())),
        unmatched_rankings=_scalar(target, "select count(*) from core.title_rankings where content_id is null"),
        simulated=cohort.written if cohort else [],
        trained=trained,
        quality=report,
        seconds=time.perf_counter() - started,
        target=target,
        changes=_changes(before, generation, live_counts, next_counts, cohort),
    )
    stages.end()
    return summary


@dataclass
class _Stages:
    """The refresh's phases, one after another: each says when it starts and how long it took."""

    current: progress.phase | None = None

    def next(self, name: str, detail: str) -> None:
        # a heartbeat in dbt's phases too: dbt is silent while it starts, parses and writes its artifacts
        self.end()
        self.current = progress.phase("refresh", name, detail, always=True, heartbeat=True).start()

    def end(self, failed: bool = False) -> None:
        if self.current is not None:
            self.current.end(failed)
            self.current = None


@dataclass
class _Refresh:
    """The dbt invocations of one refresh, into the next generation, and the reasons to refuse it."""

    target: Target
    work_dir: Path
    seed_dir: Path
    nodes: dict[str, tuple[str, str]] = field(default_factory=dict)  # unique_id -> (type, status), latest
    reasons: list[str] = field(default_factory=list)

    def dbt(self, command: str, *selection: str, app_schema: str = "app") -> None:
        result = run_dbt(
            # dbt's line per node where progress is shown (python -m recommender run), else only its errors
            [command, *(() if progress.enabled() else ("--quiet",)), *selection],
            self.target,
            raw_dir=self.seed_dir,
            target_path=self.work_dir,
            schema_suffix=generations.NEXT,
            app_schema=app_schema,
        )
        self.nodes.update(results(self.work_dir))
        if result.returncode != 0:
            found = failures(self.work_dir) or [f"dbt {command} failed (exit {result.returncode}); its log is above"]
            raise RefusedError(found)

    def build(self, *selection: str, app_schema: str = "app") -> None:
        self.dbt("build", *selection, app_schema=app_schema)

    def refuse_if(self, reasons: list[str]) -> None:
        if reasons:
            raise RefusedError(reasons)


def _refused(target: Target, run_id: str | None, exc: BaseException) -> None:
    """After a failed refresh: fail its staged run, keep its generation as __refused, say so in ``exc``."""
    try:
        with closing(target.connect()) as conn:
            if run_id is not None:
                publish.fail_run(conn, run_id, f"its warehouse generation was refused: {exc}"[:2000])
            kept = generations.refuse(conn)
    except Exception as also:  # the original error is the one to see; the next refresh clears up
        exc.add_note(f"(clearing up after it failed too: {also})")
        return
    if kept and isinstance(exc, RefusedError):
        exc.add_note(
            f"The live warehouse is unchanged. The refused generation is kept until the next refresh as"
            f" {', '.join(kept)} (e.g. psql -c 'select count(*) from {kept[0]}.raw_titles')."
        )


def _changes(
    before: generations.Generation | None,
    after: generations.Generation,
    live_counts: dict[str, int],
    next_counts: dict[str, int],
    cohort: Cohort | None,
) -> list[str]:
    """What the refresh changed for readers, in words."""
    titles = next_counts.get("core.titles", 0)
    if before is None:
        return [f"first generation {after.id}: {titles:,} titles"]
    if before.fingerprint == after.fingerprint:
        lines = [f"generation {after.id}: the same export as before ({titles:,} titles)"]
    elif before.catalogue == after.catalogue:
        lines = [
            f"generation {after.id}: another copy of the same catalogue ({before.export} -> {after.export},"
            f" {titles:,} titles): nothing depending on the catalogue changed"
        ]
    else:
        was = live_counts.get("core.titles", 0)
        lines = [
            f"generation {after.id}: catalogue changed ({before.export or 'an unrecorded export'}, {was:,} titles"
            f" -> {after.export}, {titles:,} titles); raw, staging, core and marts rebuilt"
        ]
    if cohort is not None:
        lines.append(
            "simulated cohort: simulated again on the new catalogue and replaced in app"
            if cohort.pending
            else "simulated cohort: unchanged (app already held it)"
        )
    lines.append(
        f"previous generation {before.id} kept as raw__prev, staging__prev, core__prev, marts__prev"
        " (python -m recommender warehouse rollback makes it live again)"
    )
    return lines


def _scalar(target: Target, query: str) -> int:
    with closing(target.connect()) as conn, conn.cursor() as cur:
        cur.execute(query)
        return cur.fetchone()[0]
