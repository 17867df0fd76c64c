"""The main job: load the raw export, build the warehouse with dbt, simulate, train, print what it holds."""

from __future__ import annotations

import time
from collections import Counter
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from psycopg2 import sql

from recommender import access, activity, exports, publish, quality
from recommender.dbt import result_counts, run_dbt
from recommender.simulate import SimulationConfig, simulate_into
from recommender.train import TrainResult, train
from recommender.warehouse import PROJECT_ROOT, Target

LAYERS = ("raw", "staging", "core", "marts", "app")
ACTIVITY = "source:app+"  # the dbt nodes built from the simulated activity
DEFAULT_COHORT = SimulationConfig()


class PipelineError(RuntimeError):
    """A step failed; the message says which and where to look."""


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

    def render(self) -> str:
        width = max(map(len, self.row_counts), default=0)
        lines = [f"netflix_warehouse built from {self.source} in {self.seconds:.1f} s"]
        lines += [f"  {name:<{width}}  {rows:>9,}" for name, rows in self.row_counts.items()]
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
        lines.append(f"  analysts: user analyst, password in {access.password_hint('analyst')} (see README)")
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
        counts = {}
        for schema, name in relations:
            cur.execute(sql.SQL("select count(*) from {}.{}").format(sql.Identifier(schema), sql.Identifier(name)))
            counts[f"{schema}.{name}"] = cur.fetchone()[0]
        return counts


def run(
    target: Target,
    raw_data_dir: Path | None = None,
    work_dir: Path = PROJECT_ROOT / "target",
    simulation: SimulationConfig | None = DEFAULT_COHORT,
) -> Summary:
    """Check the export (nothing is loaded if any file is bad), ``dbt build`` it, simulate, train, check quality.

    ``raw_data_dir`` is a folder holding the six export files (original Kaggle
    names or seed names); without it the committed sample in ``seeds/netflix`` is loaded.
    ``work_dir`` is dbt's target folder; it must lie inside the project, since the
    checked export is copied into it for ``dbt seed``. ``simulation`` is the default
    cohort written to ``app`` (replacing an earlier default cohort), on which the
    default recommender is trained and published; None skips both.
    """
    started = time.perf_counter()
    folder = raw_data_dir or exports.SAMPLE_DIR
    files = exports.locate(folder)
    with closing(target.connect()) as conn:
        exports.check(conn, files)
        activity.ensure_schema(conn)
        publish.ensure_schema(conn)  # dbt reads predictions as a source
    raw_dir = exports.prepare(files, work_dir / "raw_export") if raw_data_dir else None
    dbt_counts: Counter[tuple[str, str]] = Counter()

    def build(*selection: str) -> None:
        print(f"dbt build {' '.join(selection)} into {target.uri(with_password=False)} ...", flush=True)
        result = run_dbt(["build", "--quiet", *selection], target, raw_dir=raw_dir, target_path=work_dir)
        if result.returncode != 0:
            raise PipelineError(f"dbt build failed (exit {result.returncode}); its log is above and in {work_dir}/logs")
        dbt_counts.update(result_counts(work_dir))

    simulated: list[activity.WriteResult] = []
    if simulation is None:
        build()
    else:
        build("--exclude", ACTIVITY)
        with closing(target.connect()) as conn:
            _, simulated = simulate_into(conn, simulation, replace=True, progress=True)
        # rows the new cohort replaced are gone from app: rebuild the incremental model whole
        build("--select", ACTIVITY, *(["--full-refresh"] if any(r.written for r in simulated) else []))
    with closing(target.connect()) as conn:
        access.enable_logins(conn, {role: access.role_password(role) for role in access.PASSWORD_VARIABLES})
        access.prepare_python_schemas(conn)
        access.protect_sessions(conn)
        trained = train(conn) if simulation is not None else None
    try:
        report = quality.validate(target, work_dir)
    except quality.QualityError as exc:
        raise PipelineError(f"data quality checks failed after dbt build; {exc}") from exc
    return Summary(
        source=str(folder),
        row_counts=row_counts(target),
        dbt_counts=dict(dbt_counts),
        unmatched_rankings=_scalar(target, "select count(*) from core.title_rankings where content_id is null"),
        simulated=simulated,
        trained=trained,
        quality=report,
        seconds=time.perf_counter() - started,
        target=target,
    )


def _scalar(target: Target, query: str) -> int:
    with closing(target.connect()) as conn, conn.cursor() as cur:
        cur.execute(query)
        return cur.fetchone()[0]
