"""The activity build and ALS on PostgreSQL + implicit against Spark local[2] and a two-worker cluster, same run.

On a throw-away embedded PostgreSQL holding the sample catalogue, for each size N users over ``--days`` days
(31 unless told):
- simulate N users (not timed against anything: the input of both sides);
- PostgreSQL: write the users and events through ``recommender.activity`` (COPY), then
  ``dbt run --selector activity --full-refresh`` (staging, core viewing events, ratings and users,
  ml_interactions, user_activity_summary); implicit's ALS fit on ml_interactions;
- Spark: the same frames written straight into the lake (date-partitioned Parquet, as a writer
  at scale would), then the same dbt models by dbt's spark target, and ``spark_als``'s fit on the
  Spark-built interactions; in local[2] and on a standalone master with two workers (1 core,
  ``--worker-memory`` each) on 127.0.0.1, each session started afresh (its start-up reported apart).
Peak memory is the peak resident set of each side's processes, sampled every 0.2 s: the embedded
server's processes and dbt's for PostgreSQL; this process (its JVM included) for implicit and
local Spark; and the master's, workers' and executors' JVMs too for the cluster.

    python bench/spark_scale.py [--sizes 10000 100000 1000000] [--days 31] [--driver-memory 3g] [--worker-memory 2g]

Prints `name: value unit` lines, the ratio Spark/PostgreSQL of each step at each size, each
engine's seconds per million events, and an extrapolation from the measured slope (seconds per
million events between the two largest sizes) to 100M users.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pandas as pd
import psutil

from recommender.activity.simulate import SimulationConfig, simulate, write
from recommender.ml.algorithms import build_model
from recommender.ml.data import warehouse_interactions
from recommender.ml.spark_run import spark_table
from recommender.refresh import pipeline
from recommender.spark import dbt_build, lake, session
from recommender.spark.cluster import StandaloneCluster
from recommender.warehouse.dbt import run_dbt
from recommender.warehouse.targets import PROJECT_ROOT, Target, read_table, throwaway_warehouse

COHORT = 100_000  # users simulated at once


class PeakMemory:
    """Peak resident memory (bytes) of the processes ``roots()`` names and their descendants, sampled."""

    def __init__(self, roots: Callable[[], list[int]], every_s: float = 0.2) -> None:
        self.roots, self.every_s, self.peak = roots, every_s, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            total = 0
            for pid in self.roots():
                try:
                    parent = psutil.Process(pid)
                    total += sum(p.memory_info().rss for p in [parent, *parent.children(recursive=True)])
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@contextmanager
def measured(results: dict[str, tuple[float, int]], name: str, roots: Callable[[], list[int]]) -> Iterator[None]:
    with PeakMemory(roots) as memory:
        started = time.perf_counter()
        yield
        seconds = time.perf_counter() - started
    results[name] = (seconds, memory.peak)
    print(f"{name}: {seconds:.1f} s; peak memory {memory.peak / 2**30:.2f} GiB", flush=True)


def postgres_pids(target: Target) -> list[int]:
    """The embedded server's postmaster (its children are the backends)."""
    return [
        p.pid
        for p in psutil.process_iter(["name", "cmdline"])
        if p.info["name"] == "postgres" and str(target.port) in " ".join(p.info["cmdline"] or []) and p.ppid() != 0
    ][:1]


def cluster_pids(cluster: StandaloneCluster) -> list[int]:
    """The master's and workers' JVMs (executors are the workers' children)."""
    folder = cluster.folder / "pids"
    return [int(path.read_text()) for path in folder.glob("*.pid")] if folder.is_dir() else []


def lake_write(sim_users: pd.DataFrame, events: pd.DataFrame, catalogue: pd.DataFrame, folder: Path) -> None:
    """The simulated frames straight into the lake, as a writer at scale would (no PostgreSQL)."""
    now = pd.Timestamp.now(tz="UTC")
    stamp = {"batch_id": "bench", "written_at": now}
    tables = {table.name: table for table in lake.TABLES}
    lake.write_partitioned(sim_users.assign(**stamp), folder, tables["app.users"])
    for start in range(0, len(events), lake.CHUNK_ROWS * 4):
        part = events.iloc[start : start + lake.CHUNK_ROWS * 4].assign(**stamp)
        lake.write_partitioned(part, folder, tables["app.viewing_events"])
    empty = pd.DataFrame(
        {
            "rating_id": pd.Series(dtype="int64"),
            "user_id": pd.Series(dtype="int64"),
            "content_id": pd.Series(dtype="str"),
            "rating": pd.Series(dtype="int16"),
            "rated_at": pd.Series(dtype="datetime64[us, UTC]"),
            "impression_id": pd.Series(dtype="float64"),
            "batch_id": pd.Series(dtype="str"),
            "written_at": pd.Series(dtype="datetime64[us, UTC]"),
        }
    )
    lake.write_partitioned(empty, folder, tables["app.ratings"])
    lake.write_partitioned(catalogue, folder, tables["marts.catalogue"])


def spark_side(
    label: str, master: str, folder: Path, results: dict, roots: Callable[[], list[int]], args: argparse.Namespace
) -> None:
    """Session start-up, the dbt build on Spark and spark_als's fit, each measured, on ``master``."""
    with measured(results, f"{label}_startup", roots):
        spark = session.get_session(master, driver_memory=args.driver_memory, executor_memory=args.executor_memory)
    with measured(results, f"{label}_dbt_activity", roots):
        dbt_build.build_activity(spark, folder, target_dir=folder / "dbt")
    interactions = spark_table(spark, "marts.ml_interactions", ["user_id", "content_id", "confidence"])
    interactions = interactions.rename(columns={"content_id": "item_id", "confidence": "weight"})
    with measured(results, f"{label}_als_fit", roots):
        build_model("spark_als", master=master).fit(interactions)
    spark.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--days", type=int, default=31, help="days simulated per user (default: %(default)s)")
    parser.add_argument("--driver-memory", default="3g")
    parser.add_argument("--executor-memory", default="1536m")
    parser.add_argument("--worker-memory", default="2g")
    args = parser.parse_args()
    own = [os.getpid()]

    work_dir = PROJECT_ROOT / "target" / f"bench-{uuid.uuid4().hex[:8]}"
    scratch = Path(tempfile.mkdtemp(prefix="spark-scale-", dir=PROJECT_ROOT / "target"))
    cluster = StandaloneCluster(scratch / "cluster", workers=2, cores=1, memory=args.worker_memory).start()
    print(f"cluster: {cluster.url}, 2 workers x 1 core x {args.worker_memory}")
    measured_events: dict[int, int] = {}
    table: dict[int, dict[str, tuple[float, int]]] = {}
    try:
        with throwaway_warehouse("spark_scale") as target:
            pipeline.run(target, None, work_dir=work_dir, simulation=None)
            with closing(target.connect()) as conn:
                features = read_table(conn, "marts.ml_title_features")
                catalogue = read_table(conn, "marts.catalogue", columns=list(lake.TABLES[3].columns))
            first_user = 1
            for size in sorted(args.sizes):
                results: dict[str, tuple[float, int]] = {}
                parts = []
                for begin in range(0, size, COHORT):
                    config = SimulationConfig(
                        users=min(COHORT, size - begin), days=args.days, seed=begin, first_user_id=first_user
                    )
                    first_user += config.users
                    parts.append(simulate(features, config))
                users = pd.concat([p.users for p in parts], ignore_index=True)
                events = pd.concat([p.events for p in parts], ignore_index=True)
                measured_events[size] = len(events)
                print(f"users_{size}: {len(events):,} events", flush=True)
                pg = lambda: postgres_pids(target) + own  # noqa: E731
                with measured(results, "postgres_write", pg), closing(target.connect()) as conn:
                    for part in parts:
                        write(conn, part)
                with measured(results, "postgres_dbt_activity", pg):
                    done = run_dbt(
                        ["run", "--quiet", "--selector", "activity", "--full-refresh"], target, target_path=work_dir
                    )
                    if done.returncode:
                        raise SystemExit(f"dbt failed; see {work_dir}/logs")
                with closing(target.connect()) as conn:
                    interactions = warehouse_interactions(conn)
                with measured(results, "implicit_als_fit", lambda: own):
                    build_model("als").fit(interactions[["user_id", "item_id", "weight"]])
                folder = scratch / f"lake-{size}"
                with measured(results, "lake_write", lambda: own):
                    lake_write(users, events, catalogue, folder)
                spark_side("spark_local2", "local[2]", folder, results, lambda: own, args)
                spark_side("spark_cluster", cluster.url, folder, results, lambda: own + cluster_pids(cluster), args)
                table[size] = results
                del users, events, parts, interactions
                with closing(target.connect()) as conn, conn.cursor() as cur:  # the next size starts empty
                    cur.execute("truncate app.viewing_events, app.users cascade")
                    conn.commit()
                report_size(size, measured_events[size], results)
    finally:
        cluster.stop()
        shutil.rmtree(scratch, ignore_errors=True)
        shutil.rmtree(work_dir, ignore_errors=True)
    extrapolate(table, measured_events)


def report_size(size: int, events: int, results: dict[str, tuple[float, int]]) -> None:
    for step, ours in (("dbt_activity", "postgres_dbt_activity"), ("als_fit", "implicit_als_fit")):
        for label in ("spark_local2", "spark_cluster"):
            ratio = results[f"{label}_{step}"][0] / results[ours][0]
            print(f"ratio_{label}_{step}/{ours}_{size}: {ratio:.2f}")
    for name, (seconds, _) in results.items():
        print(f"cost_per_million_events_{name}_{size}: {seconds / events * 1e6:.2f} s")


def extrapolate(table: dict[int, dict[str, tuple[float, int]]], events: dict[int, int]) -> None:
    """Seconds at 100M users from each step's measured slope between the two largest sizes (linear in events)."""
    if len(table) < 2:
        return
    small, large = sorted(table)[-2:]
    per_user = events[large] / large
    target_events = 100_000_000 * per_user
    print(f"extrapolation: 100M users x {per_user:.0f} events = {target_events / 1e9:.1f}G events")
    for name in (name for name in table[large] if not name.endswith("_startup")):  # a fixed cost, no slope
        slope = (table[large][name][0] - table[small][name][0]) / (events[large] - events[small])
        if slope <= 0:  # the larger size was not slower: noise (or fixed cost) hides the slope
            print(f"extrapolated_{name}_100M_users: no measurable slope between {small} and {large} users")
            continue
        fixed = table[large][name][0] - slope * events[large]
        seconds = fixed + slope * target_events
        print(f"extrapolated_{name}_100M_users: {seconds / 3600:.1f} h (slope {slope * 1e6:.2f} s per M events)")


if __name__ == "__main__":
    main()
