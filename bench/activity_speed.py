"""Simulating and writing activity, and the incremental dbt build after it, each beside a baseline.

On a throw-away embedded PostgreSQL holding the catalogue (the real export when
--raw-data-dir is given or ../shared/data/netflix exists, else the sample), for each size:
- simulate N users (30 days) and write them through ``recommender.activity``;
- baselines, same rows, same run (sizes up to one cohort): a bare psycopg2 COPY of the
  pre-rendered CSV into a copy of app.viewing_events with the same keys and checks
  ("constrained"), and into a table with none ("bare");
then, at the largest size that fits ``--dbt-at``, a full ``dbt build`` of the activity
models, 1 % more events appended, and the incremental ``dbt build`` that follows.

    python bench/activity_speed.py [--raw-data-dir DIR] [--sizes 10000 100000 1000000] [--dbt-at 100000]

Sizes above 100,000 users are simulated and written in cohorts of 100,000.
Prints `name: value unit` lines.
"""

from __future__ import annotations

import argparse
import io
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import TypeVar

import pandas as pd
import pyarrow as pyarrow_lib
import pyarrow.csv as pyarrow_csv
from psycopg2.extensions import connection

from recommender import activity
from recommender.activity.simulate import SimulationConfig, simulate, write
from recommender.refresh import pipeline
from recommender.warehouse.dbt import run_dbt
from recommender.warehouse.targets import PROJECT_ROOT, Target, read_table, throwaway_warehouse

COHORT = 100_000
DAYS = 31  # about 50 sessions a user: 100,000 users make over 5 million events
REAL_EXPORT = PROJECT_ROOT.parent / "shared" / "data" / "netflix"
T = TypeVar("T")


def timed(action: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def bare_copy(conn: connection, events: pd.DataFrame, *, constraints: bool) -> float:
    """Seconds for a bare COPY of the same rows (CSV rendered beforehand), rolled back afterwards."""
    table = pyarrow_lib.Table.from_pandas(events[activity.EVENT_COLUMNS], preserve_index=False)
    buffer = io.BytesIO()
    pyarrow_csv.write_csv(table, buffer, pyarrow_csv.WriteOptions(include_header=False))
    columns = ", ".join(activity.EVENT_COLUMNS)
    with conn.cursor() as cur:  # a logged table like ours, in a transaction rolled back afterwards
        if constraints:
            cur.execute("create table app.bare (like app.viewing_events including all)")
            cur.execute("alter table app.bare alter batch_id drop not null")
            cur.execute("alter table app.bare add foreign key (user_id) references app.users")
        else:
            cur.execute(f"create table app.bare as select {columns} from app.viewing_events limit 0")
        buffer.seek(0)
        seconds, _ = timed(lambda: cur.copy_expert(f"copy app.bare ({columns}) from stdin with (format csv)", buffer))
    conn.rollback()
    return seconds


def dbt_build(target: Target, work_dir: Path, *extra: str) -> float:
    seconds, result = timed(
        lambda: run_dbt(["build", "--quiet", "--select", "source:app+", *extra], target, target_path=work_dir)
    )
    if result.returncode != 0:
        raise SystemExit(f"dbt build failed; see {work_dir}/logs")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--dbt-at", type=int, default=100_000)
    parser.add_argument("--raw-data-dir", type=Path, default=REAL_EXPORT if REAL_EXPORT.is_dir() else None)
    args = parser.parse_args()

    work_dir = PROJECT_ROOT / "target" / f"bench-{uuid.uuid4().hex[:8]}"
    with throwaway_warehouse("activity_bench") as target:
        try:
            pipeline.run(target, args.raw_data_dir, work_dir=work_dir, simulation=None)
            print(f"catalogue: {args.raw_data_dir or 'the generated sample'}")
            with closing(target.connect()) as conn:
                features = read_table(conn, "marts.ml_title_features")
            first_user = 1
            rows = []
            for size in sorted(args.sizes):
                sim_s = write_s = events = 0.0
                baselines = {"constrained": [], "bare": []}
                for begin in range(0, size, COHORT):
                    config = SimulationConfig(
                        users=min(COHORT, size - begin), days=DAYS, seed=begin, first_user_id=first_user
                    )
                    first_user += config.users
                    seconds, cohort = timed(lambda config=config: simulate(features, config))
                    sim_s += seconds
                    with closing(target.connect()) as conn:
                        write_s += timed(lambda conn=conn, cohort=cohort: write(conn, cohort))[0]
                        if size <= COHORT:  # the baselines of one cohort are the baselines of each
                            baselines["constrained"].append(bare_copy(conn, cohort.events, constraints=True))
                            baselines["bare"].append(bare_copy(conn, cohort.events, constraints=False))
                    events += len(cohort.events)
                rows.append((size, events, sim_s, write_s, sum(baselines["constrained"]), sum(baselines["bare"])))
                print(
                    f"users_{size}: {events:,.0f} events; simulate {sim_s:.1f} s; write {write_s:.1f} s;"
                    f" simulate+write {sim_s + write_s:.1f} s"
                )
                for name, seconds in baselines.items():
                    if seconds:
                        print(
                            f"  bare_copy_{name}_{size}: {sum(seconds):.1f} s;"
                            f" throughput ratio ours/bare {sum(seconds) / write_s:.2f}"
                        )
                if size == args.dbt_at:
                    full = dbt_build(target, work_dir, "--full-refresh")
                    dbt_build(target, work_dir)  # no new events: warms the partial parse and the caches
                    extra = SimulationConfig(users=max(1, size // 100), days=DAYS, seed=99, first_user_id=first_user)
                    first_user += extra.users
                    more = simulate(features, extra)
                    with closing(target.connect()) as conn:
                        write(conn, more)
                    incremental = dbt_build(target, work_dir)
                    print(f"dbt_build_activity_full_refresh_{size}: {full:.1f} s")
                    print(
                        f"dbt_build_activity_incremental_after_{len(more.events) / events:.1%}_more_events: "
                        f"{incremental:.1f} s; ratio incremental/full {incremental / full:.2f}"
                    )
            base = rows[0]
            for size, events, sim_s, write_s, *_ in rows[1:]:
                print(
                    f"growth_{base[0]}_to_{size}: users x{size / base[0]:.0f}, events x{events / base[1]:.1f},"
                    f" simulate x{sim_s / base[2]:.1f}, write x{write_s / base[3]:.1f}"
                )
            print(f"median_write_rate: {statistics.median(r[1] / r[3] for r in rows):,.0f} events/s")
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
