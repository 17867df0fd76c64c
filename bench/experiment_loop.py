"""The closed loop's price (``recommender.experiments.loop``) against today's open-loop simulator, same run.

On the warehouse the libpq environment names (PGHOST, PGDATABASE ...; build it once with
``python -m recommender run --raw-data-dir ../shared/data/netflix``), for each size in --sizes:

- open loop: ``simulate(features, config)`` alone, for the ``SimulationConfig`` the experiment
  uses (``warmup_days + days`` days), and ``population()`` of the same config, timed in-process
  (medians of --repeats for sizes up to --repeat-up-to users);
- closed loop: ``run_experiment`` with arms popularity,random,oracle and ``retrain_every`` 0 (the
  popularity arm trained once, on day 0). It calls ``simulate()`` and ``population()`` itself
  before its timed loop, so its simulation cost is those two (as timed above) plus
  ``LoopResult.seconds["simulate"]``; its dbt run and training are reported, not counted;
- writes: the loop's validated writes (``seconds["write"]``: users, assignments, impressions,
  slate utilities, events) against today's ``simulate`` command's write
  (``recommender.activity.simulate.write`` of the same simulation's users and events, into a
  fresh block of user ids);

each as seconds per simulated user-day (users x (warmup_days + days)), the ratio closed / open,
the growth of every figure against the smallest size (1.0: linear), and the peak RSS so far.

Then the incremental dbt build after one simulated day: a 1-day experiment of --dbt-users users,
then ``dbt build --select source:app+`` (incremental) and the same selection with
``--full-refresh`` (the baseline), in a dbt target folder of the script's own under target/.

Experiments take ids from --first-experiment and users from --first-user up; everything the
script wrote is deleted at the end and the activity models fully rebuilt (untimed), so the
warehouse is left as found (the popularity arm's published runs, never current, stay in
predictions' history).

    PGHOST=127.0.0.1 PGUSER=postgres PGDATABASE=bench15 python bench/experiment_loop.py \\
        [--sizes 1000 10000 100000] [--days 14] [--dbt-users 10000] [--repeats 3]

On a 2-core machine 10,000 users take about 3.5 minutes (the experiment) and 100,000 users, by
linear extrapolation, over half an hour: pass a smaller largest size to --sizes where that is too long.
Prints `name: value unit` lines.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import statistics
import time
import uuid
from collections.abc import Callable
from contextlib import closing
from typing import TypeVar

from recommender import activity
from recommender.activity.simulate import population, simulate, write
from recommender.experiments.arms import parse_arms
from recommender.experiments.config import LoopConfig, LoopResult
from recommender.experiments.loop import run_experiment
from recommender.warehouse import progress
from recommender.warehouse.dbt import run_dbt
from recommender.warehouse.targets import PROJECT_ROOT, Target, read_table, target_from_env

ARMS = "popularity,random,oracle"
T = TypeVar("T")


def timed(action: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = action()
    return time.perf_counter() - started, result


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


class Cleanup:
    """Deletes what the bench writes (experiments from ``first_experiment``, users from ``first_user``) through
    ``activity.delete_experiment`` and ``activity.delete_users``: at the start (a broken run's leftovers),
    between sizes and at the end."""

    def __init__(self, target: Target, first_experiment: int, first_user: int) -> None:
        self.target, self.first_experiment, self.first_user = target, first_experiment, first_user

    def delete(self) -> float:
        started = time.perf_counter()
        with closing(self.target.connect()) as conn:
            with conn, conn.cursor() as cur:
                cur.execute(
                    "select experiment_id from app.experiments where experiment_id between %s and %s",
                    (self.first_experiment, self.first_experiment + 999),
                )
                experiments = [experiment for (experiment,) in cur.fetchall()]
                cur.execute("select user_id from app.users where user_id >= %s order by 1", (self.first_user,))
                users = [user for (user,) in cur.fetchall()]
            if not experiments and not users:
                return 0.0
            activity.ensure_schema(conn)  # app's indexes on every referring column keep the deletes linear
            for experiment_id in experiments:
                activity.delete_experiment(conn, experiment_id)
            for begin in range(0, len(users), 50_000):
                activity.delete_users(conn, users[begin : begin + 50_000])
        return time.perf_counter() - started


def dbt_build(target: Target, work_dir: object, *extra: str) -> float:
    seconds, result = timed(
        lambda: run_dbt(["build", "--quiet", "--select", "source:app+", *extra], target, target_path=work_dir)
    )
    if result.returncode != 0:
        raise SystemExit(f"dbt build {' '.join(extra)} failed; see {work_dir}/logs")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--warmup-days", type=int, default=LoopConfig.warmup_days)
    parser.add_argument("--dbt-users", type=int, default=10_000, help="users of the 1-day experiment; 0: skip it")
    parser.add_argument("--repeats", type=int, default=3, help="of the in-process simulate() and population()")
    parser.add_argument("--repeat-up-to", type=int, default=10_000, help="larger sizes are timed once")
    parser.add_argument("--first-experiment", type=int, default=5000)
    parser.add_argument("--first-user", type=int, default=5_000_000)
    args = parser.parse_args()

    target = target_from_env()
    work_dir = PROJECT_ROOT / "target" / f"bench-loop-{uuid.uuid4().hex[:8]}"
    cleanup = Cleanup(target, args.first_experiment, args.first_user)
    next_experiment, next_user = args.first_experiment, args.first_user
    with closing(target.connect()) as conn:
        features = read_table(conn, "marts.ml_title_features")
    print(f"warehouse: {target.database} on {target.host}:{target.port}; {len(features):,} titles")
    print(f"arms: {ARMS}; retrain_every 0; {args.warmup_days} warm-up days + {args.days} days")
    rows: list[dict[str, float]] = []
    if leftovers := cleanup.delete():
        print(f"deleted a previous run's leftovers: {leftovers:.1f} s")
    try:
        for size in sorted(args.sizes):
            config = LoopConfig(
                arms=parse_arms(ARMS), users=size, days=args.days, warmup_days=args.warmup_days, retrain_every=0
            )
            user_days = size * (config.warmup_days + config.days)
            repeats = args.repeats if size <= args.repeat_up_to else 1
            # open loop: the same SimulationConfig but for the user ids, into a block of its own for the write
            open_config = config.simulation(next_user)
            next_user += size
            with progress.shown(False):
                sim_times, pop_times = [], []
                for _ in range(repeats):
                    seconds, simulation = timed(lambda c=open_config: simulate(features, c))
                    sim_times.append(seconds)
                    pop_times.append(timed(lambda c=open_config: population(features, c))[0])
                with closing(target.connect()) as conn:
                    open_write, _ = timed(lambda conn=conn, s=simulation: write(conn, s))
                open_events = len(simulation.events)
                del simulation
                sim_s, pop_s = statistics.median(sim_times), statistics.median(pop_times)

                experiment_id, first_user = next_experiment, next_user
                next_experiment, next_user = next_experiment + 1, next_user + size
                total, result = timed(
                    lambda c=config, e=experiment_id, u=first_user: run_experiment(
                        target, c, experiment_id=e, first_user_id=u, target_path=work_dir
                    )
                )
            rows.append(report(size, user_days, sim_s, pop_s, open_write, open_events, total, result, repeats))
            print(f"  cleanup_{size}: {cleanup.delete():.1f} s (delete_experiment and delete_users)")
        growth(rows)
        if args.dbt_users:
            incremental_build(target, work_dir, args, next_experiment, next_user)
    finally:
        print(f"cleanup: {cleanup.delete():.1f} s")
        # untimed: the activity models without the bench's rows again
        print(f"dbt_build_app_full_refresh_after_cleanup: {dbt_build(target, work_dir, '--full-refresh'):.1f} s")
        shutil.rmtree(work_dir, ignore_errors=True)


def report(
    size: int,
    user_days: int,
    sim_s: float,
    pop_s: float,
    open_write: float,
    open_events: int,
    total: float,
    result: LoopResult,
    repeats: int,
) -> dict[str, float]:
    loop_s = result.seconds.get("simulate", 0.0)
    closed = sim_s + pop_s + loop_s
    write_s = result.seconds.get("write", 0.0)
    us = 1e6 / user_days  # seconds -> microseconds per user-day
    median = f"median of {repeats}" if repeats > 1 else "one run"
    print(f"users_{size}: {user_days:,} user-days; experiment {result}; wall {total:.1f} s")
    print(f"  open_simulate_{size}: {sim_s:.2f} s ({median}); population {pop_s:.2f} s; {open_events:,} events")
    print(f"  open_sim_per_user_day_{size}: {sim_s * us:.1f} us")
    print(
        f"  closed_sim_per_user_day_{size}: {closed * us:.1f} us"
        f" (simulate+population {(sim_s + pop_s) * us:.1f} + loop {loop_s * us:.1f})"
    )
    print(f"  closed_over_open_sim_{size}: {closed / sim_s:.2f} x (target at most 3, retraining excluded)")
    print(
        f"  closed_write_per_user_day_{size}: {write_s * us:.1f} us ({write_s:.1f} s:"
        f" {result.events:,} events, {result.slates:,} slates and their impressions)"
    )
    print(f"  open_write_per_user_day_{size}: {open_write * us:.1f} us ({open_write:.1f} s: {open_events:,} events)")
    print(f"  closed_over_open_write_{size}: {write_s / open_write:.2f} x")
    print(
        f"  excluded_{size}: dbt {result.seconds.get('dbt', 0.0):.1f} s, train {result.seconds.get('train', 0.0):.1f} s"
    )
    print(f"  peak_rss_after_{size}: {peak_rss_gib():.2f} GiB")
    return {
        "size": size,
        "open_sim": sim_s * us,
        "closed_sim": closed * us,
        "open_write": open_write * us,
        "closed_write": write_s * us,
    }


def growth(rows: list[dict[str, float]]) -> None:
    base = rows[0]
    for row in rows[1:]:
        ratios = ", ".join(f"{name} x{row[name] / base[name]:.2f}" for name in row if name != "size")
        print(f"growth_per_user_day_{base['size']:.0f}_to_{row['size']:.0f}: {ratios} (1.0: linear)")


def incremental_build(
    target: Target, work_dir: object, args: argparse.Namespace, experiment_id: int, first_user: int
) -> None:
    """A 1-day experiment, then the incremental build of the activity models against a full refresh."""
    dbt_build(target, work_dir)  # untimed: the activity models up to date, dbt's partial parse saved
    config = LoopConfig(
        arms=parse_arms(ARMS), users=args.dbt_users, days=1, warmup_days=args.warmup_days, retrain_every=0
    )
    with progress.shown(False):
        result = run_experiment(
            target, config, experiment_id=experiment_id, first_user_id=first_user, target_path=work_dir
        )
    print(f"dbt_experiment: {result}")
    incremental = dbt_build(target, work_dir)
    full = dbt_build(target, work_dir, "--full-refresh")
    print(f"dbt_build_app_incremental_after_1_day_{args.dbt_users}_users: {incremental:.1f} s")
    print(f"dbt_build_app_full_refresh: {full:.1f} s")
    print(f"dbt_incremental_over_full: {incremental / full:.2f}")


if __name__ == "__main__":
    main()
