"""The closed loop: simulated users are shown slates by their arm's recommender, respond, and feed its training.

``run_experiment`` invents ``users`` users with hidden tastes (``activity.simulate``), registers
an experiment with its arms and assigns every user to one by a hash, then simulates
``warmup_days`` of organic viewing (the open-loop simulator's) followed by ``days`` days where

1. every ``retrain_every`` days (and on day 0) each trained arm is fitted on what its own users
   did, read from the warehouse after an incremental ``dbt run`` of the activity models, and
   published (not current) through ``recommender.ml.publish``: the feedback loop;
2. each active user is shown a slate: the first ``slate_size`` titles the user has not watched
   of the arm's latest run (``oracle``: by hidden taste, ``random``: random titles);
3. the user picks a title of the slate or nothing (``choice.ChoiceModel``) and watches it
   (``simulate.watch``), beside the organic viewing the open-loop simulator gives that day;
4. a user who keeps passing over slates may leave for good (churn).

Every day's impressions, slate utilities (slate and oracle, by the hidden taste) and viewing
events are written through ``recommender.activity``, validated and idempotent, so the
warehouse's marts (``marts.experiment_daily_metrics``, ``marts.experiment_summary``) judge the
arms on what users did. With ``slate_size`` 0 the loop shows nothing and writes exactly the
open-loop simulator's users and events for the same seed.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from psycopg2.extensions import connection

from recommender import activity
from recommender.activity.simulate import Population, population, simulate, watch
from recommender.errors import ConflictError, MissingError, WarehouseError
from recommender.experiments.arms import ORACLE, RANDOM, ArmSpec, first_unseen, random_candidates
from recommender.experiments.config import LoopConfig, LoopResult
from recommender.experiments.state import LoopState
from recommender.experiments.writer import DailyWriter
from recommender.ml import publish
from recommender.ml.train import train
from recommender.warehouse import progress
from recommender.warehouse.dbt import failures, run_dbt
from recommender.warehouse.targets import PROJECT_ROOT, Target, read_table

# the activity models a retraining reads: app's events and ratings into marts.ml_interactions, and core.users
TRAINING_INPUTS = ("source:app+,+ml_interactions", "users")
DAY_S = 86_400


class ExperimentError(WarehouseError, RuntimeError):
    """The loop could not go on (a dbt run or a training failed); the experiment is marked failed."""


def _ids(columns: dict[str, np.ndarray]) -> np.ndarray:
    return activity.writes.derive_ids(pd.DataFrame(columns), list(columns)).to_numpy()


def run_experiment(
    target: Target,
    config: LoopConfig,
    *,
    experiment_id: int | None = None,
    first_user_id: int | None = None,
    name: str | None = None,
    replace_existing: bool = False,
    target_path: Path | None = None,
) -> LoopResult:
    """Run ``config`` as experiment ``experiment_id`` (default: the next free id) on the warehouse ``target``.

    Its users take ids from ``first_user_id`` (default: after the largest in app.users). With
    ``replace_existing`` an experiment of that id is deleted first, with its users. ``target_path``
    is dbt's target folder for the retraining's runs (default: the project's ``target``).
    """
    with closing(target.connect()) as conn:
        return _run(conn, target, config, experiment_id, first_user_id, name, replace_existing, target_path)


def _run(
    conn: connection,
    target: Target,
    config: LoopConfig,
    experiment_id: int | None,
    first_user_id: int | None,
    name: str | None,
    replace_existing: bool,
    target_path: Path | None,
) -> LoopResult:
    activity.ensure_schema(conn)
    publish.ensure_schema(conn)
    features = read_table(conn, "marts.ml_title_features")
    if features.empty:
        raise MissingError("marts.ml_title_features is empty: run `make run` (or dbt build) first")
    replaced = replace_existing and experiment_id is not None and _drop_experiment(conn, experiment_id)
    experiment_id = experiment_id or _next(conn, "app.experiments", "experiment_id")
    first_user_id = first_user_id or _next(conn, "app.users", "user_id")
    _refuse_taken(conn, experiment_id, first_user_id, config.users)
    simulation = simulate(features, config.simulation(first_user_id))
    people = population(features, config.simulation(first_user_id))
    experiment = activity.Experiment(
        experiment_id=experiment_id,
        name=name or f"{','.join(arm.name for arm in config.arms)}: {config.users:,} users, {config.days} days",
        seed=config.seed,
        first_day=config.first_day,
        days=config.days,
        arms=tuple(
            activity.Arm(arm.name, arm.model, run_id=arm.run_id, is_control=arm.name == config.control)
            for arm in config.arms
        ),
        configuration=config.configuration(),
    )
    activity.create_experiment(conn, experiment)
    try:
        result = _simulate_days(conn, target, config, experiment, simulation, people, target_path, replaced)
    except BaseException as exc:
        try:
            activity.set_status(conn, experiment_id, "failed")
        except Exception as marking:  # e.g. the connection broke: the original error is the one to see
            exc.add_note(f"(experiment {experiment_id} could not be marked failed: {marking})")
        raise
    activity.set_status(conn, experiment_id, "finished")
    return result


def _simulate_days(
    conn: connection,
    target: Target,
    config: LoopConfig,
    experiment: activity.Experiment,
    simulation: Any,
    people: Population,
    target_path: Path | None,
    replaced: bool,
) -> LoopResult:
    seconds: dict[str, float] = defaultdict(float)
    users = people.users
    arms = list(config.arms)
    assigned = activity.assign(experiment, users.user_id.to_numpy())
    arm_of = pd.Index([arm.name for arm in arms]).get_indexer(assigned.to_numpy())
    writer = DailyWriter(conn, seconds)
    writer.users(users)
    writer.add(
        "assignments",
        assigned.reset_index().assign(
            experiment_id=experiment.experiment_id, assigned_at=pd.Timestamp(config.first_day, tz="UTC")
        ),
    )
    writer.flush()

    clock = time.perf_counter()
    organic = simulation.events
    catalogue = people.catalogue
    organic_rows = organic["user_id"].to_numpy() - users.user_id.iloc[0]
    organic_titles = pd.Index(catalogue.content_ids).get_indexer(organic["content_id"])
    organic_day = (
        (organic["started_at"] - pd.Timestamp(config.first_day, tz="UTC")).dt.total_seconds().to_numpy() // DAY_S
    ).astype(np.int64)
    organic_day = np.minimum(organic_day, config.days - 1)
    loop = LoopState(people, arm_of, config)
    for day in range(-config.warmup_days, 0):
        loop.satiety *= config.choice.satiation_decay
        today = organic_day == day
        loop.consume(organic_rows[today], organic_titles[today])
    writer.add("viewing_events", organic[organic_day < 0])
    seconds["simulate"] += time.perf_counter() - clock

    runs: dict[str, list[str]] = {arm.name: [] for arm in arms}
    slates_shown = clicks = 0
    for day in progress.bar(range(config.days), "experiment", "days"):
        retraining = [arm.retrains(day, config.retrain_every) for arm in arms] if config.slate_size else []
        if any(retraining):
            writer.flush()
            _refresh_training_inputs(target, target_path, seconds, full=replaced and day == 0)
            for index, arm in enumerate(arms):
                if retraining[index]:
                    runs[arm.name].append(_retrain(conn, loop, arm, np.flatnonzero(arm_of == index), config, seconds))
        clock = time.perf_counter()
        loop.satiety *= config.choice.satiation_decay
        today = (organic_day == day) & loop.active[organic_rows]
        kept_today = organic[today]
        loop.consume(organic_rows[today], organic_titles[today])
        writer.add("viewing_events", kept_today)
        if config.slate_size:
            for index, arm in enumerate(arms):
                rows = np.flatnonzero((arm_of == index) & loop.active)
                shown, clicked = _show(writer, loop, experiment, arm, index, rows, day, runs[arm.name])
                slates_shown, clicks = slates_shown + shown, clicks + clicked
        seconds["simulate"] += time.perf_counter() - clock
        writer.flush()
    return LoopResult(
        experiment_id=experiment.experiment_id,
        users=len(users),
        slates=slates_shown,
        clicks=clicks,
        events=writer.counts["viewing_events"],
        churned=int((~loop.active).sum()),
        runs=runs,
        seconds=dict(seconds),
    )


def _show(
    writer: DailyWriter,
    loop: LoopState,
    experiment: activity.Experiment,
    arm: ArmSpec,
    index: int,
    rows: np.ndarray,
    day: int,
    runs: list[str],
) -> tuple[int, int]:
    """Show today's slates of ``arm`` to its active users ``rows``, simulate their choices; (slates, clicks)."""
    config, choice = loop.config, loop.config.choice
    rng = np.random.default_rng([config.seed, 15, config.warmup_days + day, index])
    k, titles = config.slate_size, len(loop.people.catalogue.content_ids)
    if arm.model == RANDOM:
        candidates = random_candidates(rng, len(rows), titles, k)
    elif arm.model == ORACLE:
        candidates = loop.oracle[rows]
    else:
        candidates = loop.run_candidates[rows]
    slates = first_unseen(candidates, loop.seen, rows, k)
    has_slate = (slates >= 0).any(axis=1)  # a user who has watched every candidate is shown nothing today
    rows, slates = rows[has_slate], slates[has_slate]
    if not len(rows):
        return 0, 0
    shown = slates >= 0
    value = loop.utility(rows, slates)
    best = loop.utility(rows, first_unseen(loop.oracle[rows], loop.seen, rows, k))
    slate_utility = np.nanmean(value, axis=1)
    # the oracle's slate, its first k unwatched titles (were all its candidates watched, the slate itself)
    oracle_utility = np.nanmean(np.where(np.isnan(best).all(axis=1, keepdims=True), value, best), axis=1)
    pick = choice.choose(rng, np.nan_to_num(value, nan=0.0), loop.sated(rows, slates), shown)

    user_ids = loop.people.users.user_id.to_numpy()[rows]
    day_s = day * DAY_S + rng.uniform(8 * 3600, 22 * 3600, size=len(rows))
    first_day = pd.Timestamp(experiment.first_day, tz="UTC")
    slate_ids = _ids({"experiment_id": np.full(len(rows), experiment.experiment_id), "user_id": user_ids,
                      "day": np.full(len(rows), day)})  # fmt: skip
    slot_row, slot = np.nonzero(shown)
    impression_ids = _ids({"slate_id": slate_ids[slot_row], "position": slot + 1})
    writer.add(
        "impressions",
        pd.DataFrame(
            {
                "impression_id": impression_ids,
                "user_id": user_ids[slot_row],
                "content_id": loop.people.catalogue.content_ids[slates[slot_row, slot]],
                "experiment_id": experiment.experiment_id,
                "arm": arm.name,
                "run_id": runs[-1] if runs else arm.run_id,
                "slate_id": slate_ids[slot_row],
                "position": slot + 1,
                "shown_at": first_day + pd.to_timedelta(day_s[slot_row].round(), unit="s"),
            }
        ),
    )
    writer.add(
        "slate_utilities",
        pd.DataFrame(
            {
                "slate_id": slate_ids,
                "experiment_id": experiment.experiment_id,
                "user_id": user_ids,
                "slate_utility": slate_utility,
                "oracle_utility": oracle_utility,
            }
        ),
    )

    chose = pick >= 0
    chosen_rows, chosen_titles = rows[chose], slates[chose, pick[chose]]
    start_s = day_s[chose] + 60
    events, event_row = watch(
        rng,
        loop.people.users,
        chosen_rows,
        chosen_titles,
        loop.people.affinity(chosen_rows, chosen_titles),
        loop.people.catalogue,
        experiment.first_day,
        (start_s, start_s + 60),
    )
    impression_at = np.full(slates.shape, -1, dtype=np.int64)
    impression_at[slot_row, slot] = impression_ids
    cited = impression_at[np.flatnonzero(chose), pick[chose]]
    # watch() repeats each choice for its sessions, in the order of chosen_rows (ascending, one per user)
    events["impression_id"] = pd.array(cited[np.searchsorted(chosen_rows, event_row)], dtype="Int64")
    events.insert(0, "event_id", activity.derive_event_ids(events))
    writer.add("viewing_events", events)
    loop.consume(chosen_rows, chosen_titles)

    loop.streak[rows] = np.where(chose, 0, loop.streak[rows] + 1)
    leaving = ~chose & choice.churns(rng, loop.streak[rows])
    loop.active[rows[leaving]] = False
    return len(rows), int(chose.sum())


def _retrain(
    conn: connection, loop: LoopState, arm: ArmSpec, rows: np.ndarray, config: LoopConfig, seconds: dict[str, float]
) -> str:
    """Fit ``arm``'s model on its users' activity, publish it (not current), load its candidates; the run id."""
    clock = time.perf_counter()
    user_ids = loop.people.users.user_id.to_numpy()[rows]
    with progress.shown(False):
        trained = train(conn, arm.model, k=config.candidates, users=user_ids.tolist(), holdout=False, current=False)
    with conn, conn.cursor() as cur:
        cur.execute(
            "select user_id, content_id, rank from predictions.recommendations where run_id = %s",
            (trained.run_id,),
        )
        recs = pd.DataFrame(cur.fetchall(), columns=["user_id", "content_id", "rank"])
    row = pd.Index(loop.people.users.user_id).get_indexer(recs["user_id"])
    title = pd.Index(loop.people.catalogue.content_ids).get_indexer(recs["content_id"])
    loop.run_candidates[rows] = -1
    keep = (row >= 0) & (recs["rank"].to_numpy() <= config.candidates)
    loop.run_candidates[row[keep], recs["rank"].to_numpy()[keep] - 1] = title[keep]  # -1: a title never watched
    seconds["train"] += time.perf_counter() - clock
    return trained.run_id


def _refresh_training_inputs(target: Target, target_path: Path | None, seconds: dict[str, float], full: bool) -> None:
    """Bring marts.ml_interactions and core.users up to date with app (incrementally; fully after a replace)."""
    clock = time.perf_counter()
    path = target_path or PROJECT_ROOT / "target"
    args = ["run", "--select", *TRAINING_INPUTS, *(["--full-refresh"] if full else [])]
    if run_dbt(args, target, target_path=target_path, capture=True).returncode != 0:
        raise ExperimentError(f"dbt {' '.join(args)} failed: " + "; ".join(failures(path)))
    seconds["dbt"] += time.perf_counter() - clock


def _next(conn: connection, table: str, column: str) -> int:
    with conn.cursor() as cur:
        cur.execute(f"select coalesce(max({column}), 0) + 1 from {table}")  # our own constants
        (found,) = cur.fetchone()
    conn.commit()
    return int(found)


def _refuse_taken(conn: connection, experiment_id: int, first_user_id: int, users: int) -> None:
    """ConflictError, before anything is written, if the experiment's id or its users' ids are taken."""
    with conn.cursor() as cur:
        cur.execute("select 1 from app.experiments where experiment_id = %s", (experiment_id,))
        if cur.fetchone():
            raise ConflictError(f"experiment {experiment_id} exists: --replace runs it again in its place")
        cur.execute(
            "select min(user_id) from app.users where user_id between %s and %s",
            (first_user_id, first_user_id + users - 1),
        )
        (taken,) = cur.fetchone()
    conn.commit()
    if taken is not None:
        raise ConflictError(
            f"user {taken} exists: the experiment's users would take ids {first_user_id} to"
            f" {first_user_id + users - 1}; choose another --first-user-id (default: after the largest)"
        )


def _drop_experiment(conn: connection, experiment_id: int) -> bool:
    """Delete the experiment ``experiment_id`` and its users; True if there was one."""
    with conn.cursor() as cur:
        cur.execute("select user_id from app.assignments where experiment_id = %s", (experiment_id,))
        user_ids = [user for (user,) in cur.fetchall()]
    conn.commit()
    deleted = activity.delete_experiment(conn, experiment_id)
    activity.delete_users(conn, user_ids)
    return bool(deleted)
