"""Experiments in schema ``app``: arms, who sees which (assignments), what was shown (impressions) and,
for simulated experiments, what the shown slates were worth to their users (slate utilities).

``create_experiment`` registers an experiment with its arms (idempotent: the same definition
again changes nothing, another one under the same id is refused); ``assign`` splits users
between the arms by a hash of the experiment and the user, so a user's arm never depends on
who else takes part; ``prepare_*`` / ``write_*`` validate and write batches of assignments,
impressions and slate utilities exactly as ``writes`` does users and events (checked whole,
one COPY, idempotent by digest). Viewing events and ratings cite an impression by
``impression_id``; ``writes`` checks that it was shown to that user, of that title.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pyarrow_lib
from psycopg2 import sql
from psycopg2.extensions import connection

from recommender.activity.checks import LIVE, Place, _no_problems, _refuse_if_any, _unknown_references, _validate
from recommender.activity.frames import (
    ARM_PATTERN,
    ASSIGNMENT_COLUMNS,
    EXPERIMENT_STATUSES,
    IMPRESSION_COLUMNS,
    SLATE_UTILITY_COLUMNS,
    AssignmentBatch,
    ImpressionBatch,
    SlateUtilityBatch,
)
from recommender.activity.writes import PreparedBatch, WriteResult, write_prepared
from recommender.errors import ConflictError, InvalidArgumentError, MissingError


@dataclass(frozen=True)
class Arm:
    """A variant: a model (``model`` and its ``parameters``), or a fixed published run (``run_id``).

    ``share`` is its weight in the split (the shares of an experiment are normalised);
    ``is_control`` marks the arm the others are compared with (one per experiment).
    """

    arm: str
    model: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None
    share: float = 1.0
    is_control: bool = False


@dataclass(frozen=True)
class Experiment:
    experiment_id: int
    name: str
    seed: int
    first_day: date
    days: int
    arms: tuple[Arm, ...]
    configuration: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        problems = []
        if self.experiment_id <= 0:
            problems.append(f"experiment_id must be positive, not {self.experiment_id}")
        if not 1 <= len(self.name) <= 200:
            problems.append("name must have 1 to 200 characters")
        if not 1 <= self.days <= 3660:
            problems.append(f"days must be 1 to 3660, not {self.days}")
        names = [arm.arm for arm in self.arms]
        if not names:
            problems.append("an experiment needs at least one arm")
        if len(set(names)) != len(names):
            problems.append(f"arm names must differ: {names}")
        for arm in self.arms:
            if not pd.Series([arm.arm]).str.fullmatch(ARM_PATTERN[1:-1]).all():
                problems.append(f"arm {arm.arm!r} must match {ARM_PATTERN} (lower case, digits, _)")
            if (arm.model is None) == (arm.run_id is None):
                problems.append(f"arm {arm.arm!r} needs a model or a run_id, not both")
            if not arm.share > 0:
                problems.append(f"arm {arm.arm!r}: share must be positive, not {arm.share}")
        if sum(arm.is_control for arm in self.arms) > 1:
            problems.append("at most one arm is the control")
        if problems:
            raise InvalidArgumentError("experiment refused: " + "; ".join(problems))

    @property
    def shares(self) -> dict[str, float]:
        total = sum(arm.share for arm in self.arms)
        return {arm.arm: arm.share / total for arm in self.arms}

    @property
    def control(self) -> str:
        return next((arm.arm for arm in self.arms if arm.is_control), self.arms[0].arm)


def create_experiment(conn: connection, experiment: Experiment) -> bool:
    """Register ``experiment`` and its arms (status 'running'), in one transaction; False if it was already there.

    The same definition registered again changes nothing; another definition under the same
    id is a ConflictError (delete the experiment first).
    """
    shares = experiment.shares
    with conn, conn.cursor() as cur:
        cur.execute(
            "insert into app.experiments (experiment_id, name, configuration, seed, first_day, days)"
            " values (%s, %s, %s, %s, %s, %s) on conflict (experiment_id) do nothing returning experiment_id",
            (
                experiment.experiment_id,
                experiment.name,
                json.dumps(experiment.configuration, sort_keys=True),
                experiment.seed,
                experiment.first_day,
                experiment.days,
            ),
        )
        if cur.fetchone() is None:
            if _definition(cur, experiment.experiment_id) != _definition_of(experiment):
                raise ConflictError(
                    f"experiment {experiment.experiment_id} exists with another definition:"
                    " delete it first (delete_experiment, or `experiment run --replace`)"
                )
            return False
        for arm in experiment.arms:
            cur.execute(
                "insert into app.experiment_arms (experiment_id, arm, model, parameters, run_id, share, is_control)"
                " values (%s, %s, %s, %s, %s, %s, %s)",
                (
                    experiment.experiment_id,
                    arm.arm,
                    arm.model,
                    json.dumps(arm.parameters, sort_keys=True),
                    arm.run_id,
                    shares[arm.arm],
                    arm.arm == experiment.control,
                ),
            )
    return True


def _definition_of(experiment: Experiment) -> dict[str, Any]:
    shares = experiment.shares
    return {
        "name": experiment.name,
        "configuration": json.loads(json.dumps(experiment.configuration, sort_keys=True)),
        "seed": experiment.seed,
        "first_day": experiment.first_day.isoformat(),
        "days": experiment.days,
        "arms": sorted(
            (arm.arm, arm.model, arm.parameters, arm.run_id, round(shares[arm.arm], 9), arm.arm == experiment.control)
            for arm in experiment.arms
        ),
    }


def _definition(cur: Any, experiment_id: int) -> dict[str, Any]:
    cur.execute(
        "select name, configuration, seed, first_day, days from app.experiments where experiment_id = %s",
        (experiment_id,),
    )
    name, configuration, seed, first_day, days = cur.fetchone()
    cur.execute(
        "select arm, model, parameters, run_id, share, is_control from app.experiment_arms where experiment_id = %s",
        (experiment_id,),
    )
    arms = sorted((a, m, p, r, round(s, 9), c) for a, m, p, r, s, c in cur.fetchall())
    return {
        "name": name,
        "configuration": configuration,
        "seed": seed,
        "first_day": first_day.isoformat(),
        "days": days,
        "arms": arms,
    }


def read_experiment(conn: connection, experiment_id: int) -> Experiment:
    """The registered experiment ``experiment_id``; MissingError if there is none."""
    with conn.cursor() as cur:
        cur.execute("select 1 from app.experiments where experiment_id = %s", (experiment_id,))
        if cur.fetchone() is None:
            raise MissingError(f"no experiment {experiment_id} in app.experiments")
        definition = _definition(cur, experiment_id)
    arms = tuple(
        Arm(arm, model, parameters, run_id, share, is_control)
        for arm, model, parameters, run_id, share, is_control in definition["arms"]
    )
    return Experiment(
        experiment_id,
        definition["name"],
        definition["seed"],
        date.fromisoformat(definition["first_day"]),
        definition["days"],
        arms,
        definition["configuration"],
    )


def set_status(conn: connection, experiment_id: int, status: str) -> None:
    """Mark the experiment ``status`` ('running', 'finished' or 'failed'); finishing stamps ``finished_at``."""
    if status not in EXPERIMENT_STATUSES:
        raise InvalidArgumentError(f"status must be one of {EXPERIMENT_STATUSES}, not {status!r}")
    with conn, conn.cursor() as cur:
        cur.execute(
            "update app.experiments set status = %s,"
            " finished_at = case when %s = 'running' then null else now() end where experiment_id = %s",
            (status, status, experiment_id),
        )
        if cur.rowcount == 0:
            raise MissingError(f"no experiment {experiment_id} in app.experiments")


def delete_experiment(conn: connection, experiment_id: int) -> int:
    """Delete the experiment with its arms, assignments, impressions and slate utilities, and the events and
    ratings that cite its impressions, in one transaction; returns the experiments deleted (0 or 1).
    The users stay (``activity.delete_users`` removes them)."""
    cited = "impression_id in (select impression_id from app.impressions where experiment_id = %s)"
    with conn, conn.cursor() as cur:
        cur.execute(f"delete from app.viewing_events where {cited}", (experiment_id,))
        cur.execute(f"delete from app.ratings where {cited}", (experiment_id,))
        cur.execute("delete from app.impressions where experiment_id = %s", (experiment_id,))
        cur.execute("delete from app.experiments where experiment_id = %s", (experiment_id,))
        return cur.rowcount


def assign(experiment: Experiment, user_ids: Sequence[int]) -> pd.Series:
    """Each user's arm, indexed by user_id: by a hash of the experiment and the user into the arms' shares.

    Deterministic and independent of the other users: the same user in the same experiment
    always gets the same arm, and the arms' sizes follow their shares. The arms are taken in
    the order of their names, so the experiment as defined and as ``read_experiment`` reads it
    back (arms by name) assign alike.
    """
    users = np.asarray(user_ids, dtype=np.int64)
    digests = [hashlib.blake2b(f"{experiment.experiment_id}:{user}".encode(), digest_size=8).digest() for user in users]
    unit = np.frombuffer(b"".join(digests), dtype=">u8").astype(np.float64) / 2.0**64
    shares = dict(sorted(experiment.shares.items()))
    bounds = np.cumsum(list(shares.values()))
    bounds[-1] = 1.0
    arms = np.array(list(shares))[np.searchsorted(bounds, unit, side="right")]
    return pd.Series(arms, index=pd.Index(users, name="user_id"), name="arm")


def prepare_assignments(conn: connection, assignments: pd.DataFrame, place: Place = LIVE) -> PreparedBatch:
    """Validate a batch of assignments (``AssignmentBatch``): users in app.users, arms of their experiment."""
    frame, problems = _validate(AssignmentBatch, assignments.reset_index(drop=True))
    _refuse_if_any(
        "assignments",
        [
            problems,
            _unknown_references(conn, frame, "user_id", place.users),
            _unknown_keys(
                conn, frame, ["experiment_id", "arm"], place.table("experiment_arms"), "arm of the experiment"
            ),
        ],
    )
    return PreparedBatch("assignments", _table(frame, ASSIGNMENT_COLUMNS))


def prepare_impressions(conn: connection, impressions: pd.DataFrame, place: Place = LIVE) -> PreparedBatch:
    """Validate a batch of impressions (``ImpressionBatch``): users and titles known; in an experiment, each user
    assigned to the arm that showed the title."""
    frame = impressions.reset_index(drop=True)
    frame = frame.assign(**{column: None for column in ("experiment_id", "arm", "run_id") if column not in frame})
    frame, problems = _validate(ImpressionBatch, frame)
    in_experiment = frame[frame["experiment_id"].notna()] if not len(problems) else frame.iloc[:0]
    _refuse_if_any(
        "impressions",
        [
            problems,
            _unknown_references(conn, frame, "user_id", place.users),
            _unknown_references(conn, frame, "content_id", place.titles),
            _unknown_keys(
                conn, in_experiment, ["experiment_id", "user_id", "arm"], place.table("assignments"), "user's arm"
            ),
        ],
    )
    return PreparedBatch("impressions", _table(frame, IMPRESSION_COLUMNS))


def prepare_slate_utilities(conn: connection, utilities: pd.DataFrame, place: Place = LIVE) -> PreparedBatch:
    """Validate a batch of slate utilities (``SlateUtilityBatch``): each slate shown to its user in the experiment."""
    frame, problems = _validate(SlateUtilityBatch, utilities.reset_index(drop=True))
    known = frame if not len(problems) else frame.iloc[:0]
    _refuse_if_any(
        "slate_utilities",
        [
            problems,
            _unknown_keys(conn, known, ["slate_id", "experiment_id", "user_id"], place.table("impressions"), "slate"),
        ],
    )
    return PreparedBatch("slate_utilities", _table(frame, SLATE_UTILITY_COLUMNS))


def write_assignments(conn: connection, assignments: pd.DataFrame) -> WriteResult:
    return write_prepared(conn, prepare_assignments(conn, assignments))


def write_impressions(conn: connection, impressions: pd.DataFrame) -> WriteResult:
    return write_prepared(conn, prepare_impressions(conn, impressions))


def write_slate_utilities(conn: connection, utilities: pd.DataFrame) -> WriteResult:
    return write_prepared(conn, prepare_slate_utilities(conn, utilities))


def _table(frame: pd.DataFrame, columns: list[str]) -> pyarrow_lib.Table:
    return pyarrow_lib.Table.from_pandas(frame[columns], preserve_index=False)


def _unknown_keys(conn: connection, frame: pd.DataFrame, columns: list[str], table: str, what: str) -> pd.DataFrame:
    """Rows whose values of ``columns`` are not a row of ``table`` (schema.table), one problem each."""
    if frame.empty:
        return _no_problems()
    keys = frame[columns].drop_duplicates()
    lead = columns[0]
    query = sql.SQL("select distinct {columns} from {table} where {lead} = any(%s)").format(
        columns=sql.SQL(", ").join(map(sql.Identifier, columns)),
        table=sql.Identifier(*table.split(".")),
        lead=sql.Identifier(lead),
    )
    with conn.cursor() as cur:
        cur.execute(query, ([int(v) if isinstance(v, np.integer) else v for v in pd.unique(keys[lead])],))
        known = pd.DataFrame(cur.fetchall(), columns=columns)
    typed = frame[columns].astype({c: known[c].dtype for c in columns if len(known)} if len(known) else {})
    matched = typed.reset_index().merge(known.drop_duplicates(), on=columns, how="left", indicator=True)
    bad = matched[matched["_merge"] == "left_only"]
    return pd.DataFrame(
        {
            "row": bad["index"].to_numpy(),
            "column": ",".join(columns),
            "value": [tuple(row) for row in bad[columns].itertuples(index=False)],
            "reason": f"unknown {what} (not in {table})",
        }
    )
