"""A warehouse refresh by write-audit-publish (``pipeline.run``) beside an in-place build, and readers at its switch.

On a throw-away embedded PostgreSQL, from the committed sample (or ``--raw-data-dir``, a
real export), after a first ``pipeline.run`` that creates the live generation:

1. ``--repeats`` times, alternately, a refresh of the same export and its baseline:
   - write-audit-publish: ``pipeline.run`` builds the next generation under ``__next``,
     simulates the default cohort (``--users``), trains and stages the recommendations,
     runs Great Expectations, audits and switches the schemas in one transaction;
   - in place, as the project refreshed before generations, from the same building
     blocks with no suffix: the export check, ``dbt build --exclude source:app+``,
     ``simulate_into(replace=True)``, ``dbt build --select source:app+`` (with
     ``--full-refresh`` only if the simulation wrote rows), ``train`` (publishes current),
     ``quality.validate``, then what the old ``pipeline.run`` did last (logins, session
     protection, row counts).
   Each mode keeps its own dbt target folder, so dbt parses partially, as in daily use.
2. One more write-audit-publish refresh with readers: 2 threads, each on its own
   autocommit connection, query ``marts.catalogue`` (count) and one user's rows of
   ``marts.user_recommendations`` (count) in a loop, timing each query. The switch
   window runs from the pipeline's "refresh: switch" line to the end of the refresh
   (dropping the previous generation, the switch itself, logins, pruning old runs).
   Latencies are measured in Python, so they include any wait for the GIL.

    python bench/refresh_speed.py [--raw-data-dir DIR] [--repeats 3] [--users 3000]

Prints `name: value unit` lines: medians of the repeats and of each step, the ratio
write-audit-publish / in place (target: at most 1.3), and the readers' query count,
median and maximum latency, the maximum among queries that overlapped the switch
(target: at most 50 ms) and their errors (must be 0: the run fails otherwise).
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, redirect_stdout
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import TextIO

import psycopg2

from recommender.activity.simulate import SimulationConfig, simulate_into
from recommender.ml.train import train
from recommender.refresh import pipeline
from recommender.warehouse import access, exports, quality
from recommender.warehouse.dbt import run_dbt
from recommender.warehouse.targets import PROJECT_ROOT, Target, throwaway_warehouse

WORK = PROJECT_ROOT / "target" / "bench-refresh"  # inside the project, as dbt's seed path must be
WAP_DIR, IN_PLACE_DIR, EXPORTS_DIR = WORK / "wap", WORK / "in-place", WORK / "exports"
STEPS = ("check", "catalogue", "simulate", "activity", "train", "quality", "audit", "switch", "finish")
CATALOGUE_SQL = "select count(*) from marts.catalogue"
USER_SQL = "select count(*) from marts.user_recommendations where user_id = %s"


class StageClock(io.TextIOBase):
    """The pipeline's stdout: passed through, with the time of each "refresh: <stage>: ..." line (a start) kept."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.stages: list[tuple[str, float]] = []  # (first word of the stage, perf_counter)
        self._line = ""

    def write(self, text: str) -> int:
        now = time.perf_counter()
        self.out.write(text)
        *lines, self._line = (self._line + text).split("\n")
        for line in lines:
            first = line.removeprefix("refresh: ").split()[0] if line.startswith("refresh: ") else ""
            if first.endswith(":"):  # not "refresh: <stage> done in 1.2 s"
                self.stages.append((first.rstrip(":"), now))
        return len(text)

    def flush(self) -> None:
        self.out.flush()


@dataclass(frozen=True)
class Timeline:
    """When each stage of one refresh began (perf_counter): "check" first (before the pipeline's first stage
    line), then the pipeline's stages; the last mark, "end", is when ``pipeline.run`` returned."""

    marks: list[tuple[str, float]]

    @property
    def seconds(self) -> float:
        return self.marks[-1][1] - self.marks[0][1]

    def steps(self) -> dict[str, float]:
        """Seconds per stage; the "switch" stage runs to the end of the refresh."""
        return {name: after - began for (name, began), (_, after) in pairwise(self.marks)}

    def began(self, stage: str) -> float:
        return next(began for name, began in self.marks if name == stage)

    def stage_at(self, instant: float) -> str:
        return [name for name, began in self.marks if began <= instant][-1] if instant >= self.marks[0][1] else "-"


def wap_refresh(target: Target, folder: Path | None, config: SimulationConfig) -> Timeline:
    """One write-audit-publish refresh (``pipeline.run``), timed stage by stage."""
    clock = StageClock(sys.stdout)
    started = time.perf_counter()
    with redirect_stdout(clock):
        pipeline.run(target, folder, work_dir=WAP_DIR, simulation=config, exports_dir=EXPORTS_DIR)
    # "check" from the start, as the in-place refresh counts it (the pipeline's own check line comes later)
    stages = [mark for mark in clock.stages if mark[0] != "check"]
    return Timeline([("check", started), *stages, ("end", time.perf_counter())])


@contextmanager
def step(steps: dict[str, float], name: str) -> Iterator[None]:
    started = time.perf_counter()
    yield
    steps[name] = time.perf_counter() - started


def dbt(target: Target, raw_dir: Path, *args: str) -> None:
    result = run_dbt([*args, "--quiet"], target, raw_dir=raw_dir, target_path=IN_PLACE_DIR)
    if result.returncode != 0:
        raise RuntimeError(f"dbt {' '.join(args)} failed (exit {result.returncode}); its log is above")


def in_place_refresh(
    target: Target, files: dict[str, Path], config: SimulationConfig
) -> tuple[float, dict[str, float], bool]:
    """Seconds of one in-place refresh (the live schemas rebuilt where readers read them), per step, and
    whether the simulation wrote rows (then the activity models were rebuilt whole, else incrementally)."""
    steps: dict[str, float] = {}
    started = time.perf_counter()
    with step(steps, "check"), closing(target.connect()) as conn:
        exports.check(conn, files)
        raw_dir = exports.prepare(files, WORK / "raw_export")
    with step(steps, "catalogue"):
        dbt(target, raw_dir, "build", "--exclude", pipeline.ACTIVITY)
    with step(steps, "simulate"), closing(target.connect()) as conn:
        _, written = simulate_into(conn, config, replace=True)
    # rows the cohort replaced are gone from app: then the incremental models are rebuilt whole
    full_refresh = ["--full-refresh"] if any(result.written for result in written) else []
    with step(steps, "activity"):
        dbt(target, raw_dir, "build", "--select", pipeline.ACTIVITY, *full_refresh)
    with step(steps, "train"), closing(target.connect()) as conn:
        train(conn)
    with step(steps, "quality"):
        quality.validate(target, IN_PLACE_DIR)
    with step(steps, "finish"), closing(target.connect()) as conn:
        access.close_group_logins(conn)
        access.prepare_python_schemas(conn)
        access.protect_sessions(conn)
        pipeline.row_counts(target)
    return time.perf_counter() - started, steps, bool(full_refresh)


@dataclass
class Reader:
    """A thread's loop of one query on its own autocommit connection: (start, end) of each, and the errors."""

    target: Target
    query: str
    params: tuple[object, ...]
    stop: threading.Event
    queries: list[tuple[float, float]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        with closing(self.target.connect()) as conn:
            conn.autocommit = True
            with conn.cursor() as cur:
                while not self.stop.is_set() and not conn.closed:
                    began = time.perf_counter()
                    try:
                        cur.execute(self.query, self.params)
                        cur.fetchone()
                    except psycopg2.Error as exc:
                        self.errors.append(f"{type(exc).__name__}: {str(exc).strip()}")
                        continue
                    self.queries.append((began, time.perf_counter()))


def refresh_with_readers(
    target: Target, folder: Path | None, config: SimulationConfig
) -> tuple[list[Reader], Timeline]:
    """One write-audit-publish refresh while two readers poll; the readers and the refresh's timeline."""
    with closing(target.connect()) as conn, conn.cursor() as cur:
        cur.execute("select min(user_id) from marts.user_recommendations")
        user_id = cur.fetchone()[0]
    stop = threading.Event()
    readers = [Reader(target, CATALOGUE_SQL, (), stop), Reader(target, USER_SQL, (user_id,), stop)]
    threads = [threading.Thread(target=reader.run, name=reader.query) for reader in readers]
    for thread in threads:
        thread.start()
    try:
        timeline = wap_refresh(target, folder, config)
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    return readers, timeline


def report_readers(readers: list[Reader], timeline: Timeline) -> int:
    """Print the readers' figures, those of the queries that overlapped the switch apart; return the errors."""
    switch_at, ended = timeline.began("switch"), timeline.began("end")
    queries = [query for reader in readers for query in reader.queries]
    latencies = [(end - began) * 1000 for began, end in queries]
    at_switch = [(end - began) * 1000 for began, end in queries if began < ended and end > switch_at]
    slowest, slow_reader = max(
        ((query, reader) for reader in readers for query in reader.queries), key=lambda pair: pair[0][1] - pair[0][0]
    )
    errors = [error for reader in readers for error in reader.errors]
    print(f"reader_queries: {len(queries):,} (2 threads: {', '.join(f'{len(r.queries):,}' for r in readers)})")
    print(f"reader_latency_median: {statistics.median(latencies):.2f} ms")
    print(
        f"reader_latency_max: {max(latencies):.1f} ms ({slow_reader.query.split(' from ')[1].split()[0]},"
        f" began in the refresh's {timeline.stage_at(slowest[0])} stage)"
    )
    print(
        f"reader_latency_max_at_switch: {max(at_switch, default=float('nan')):.1f} ms ({len(at_switch):,} queries"
        f" overlapped the {ended - switch_at:.2f} s from 'refresh: switch' to the end of the refresh;"
        " target: at most 50 ms)"
    )
    print(f"reader_errors: {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    return len(errors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw-data-dir", type=Path, help="a real export (default: the committed sample)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--users", type=int, default=SimulationConfig().users, help="the simulated cohort")
    args = parser.parse_args()

    folder, config = args.raw_data_dir, SimulationConfig(users=args.users)
    files = exports.locate(folder or exports.SAMPLE_DIR)
    shutil.rmtree(WORK, ignore_errors=True)
    wap_s, in_place_s, wap_steps, in_place_steps = [], [], [], []
    try:
        with throwaway_warehouse("refresh_bench") as target:
            with closing(target.connect()) as conn:
                counts = exports.check(conn, files)
            wap_refresh(target, folder, config)  # the live generation, with its cohort and current run
            dbt(target, exports.prepare(files, WORK / "raw_export"), "parse")  # so the first build parses partially
            for _ in range(args.repeats):
                timeline = wap_refresh(target, folder, config)
                wap_s.append(timeline.seconds)
                wap_steps.append(timeline.steps())
                seconds, steps, wrote = in_place_refresh(target, files, config)
                in_place_s.append(seconds)
                in_place_steps.append(steps)
                activity = "simulation wrote rows, --full-refresh" if wrote else "simulation wrote nothing, incremental"
                print(f"  write-audit-publish {wap_s[-1]:.2f} s, in place {seconds:.2f} s ({activity})", flush=True)
            readers, timeline = refresh_with_readers(target, folder, config)
    finally:
        shutil.rmtree(WORK, ignore_errors=True)

    median = statistics.median
    print(f"export: {folder or exports.SAMPLE_DIR} ({', '.join(f'{name} {rows:,}' for name, rows in counts.items())})")
    print(f"cohort: {args.users:,} simulated users")
    print(f"wap_refresh: {median(wap_s):.2f} s (median of {args.repeats})")
    print(f"in_place_refresh: {median(in_place_s):.2f} s (median of {args.repeats})")
    for name in STEPS:
        wap = [s[name] for s in wap_steps if name in s]
        in_place = [s[name] for s in in_place_steps if name in s]
        shown = [
            f"{label} {median(values):.2f} s" for label, values in (("wap", wap), ("in_place", in_place)) if values
        ]
        print(f"  step_{name}: {', '.join(shown)}")  # wap's switch step runs to the end of the refresh
    print(f"ratio_wap_over_in_place: {median(wap_s) / median(in_place_s):.2f} x (target: at most 1.3)")
    if report_readers(readers, timeline):
        sys.exit("readers saw errors during the refresh")


if __name__ == "__main__":
    main()
