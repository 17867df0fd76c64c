"""Experiments: register one with its arms, assign users to its arms, record what was shown, read its summary.

Definitions and assignments go through ``recommender.activity`` (``create_experiment``,
``assign``, ``write_assignments``), impressions as a batch like events (checked whole, one
COPY, idempotent by digest; ``Idempotency-Key`` replays the first answer). Events and
ratings cite an impression by ``impression_id`` (``POST /events``, ``/users/{id}/events``,
``/users/{id}/ratings``). ``GET /experiments/{id}`` adds the arms' rows of
``marts.experiment_summary``, which ``dbt build`` makes from what was written.
"""

from __future__ import annotations

from typing import Annotated

import asyncpg
import pandas as pd
from fastapi import APIRouter, Body, Depends, HTTPException, Path
from fastapi.responses import JSONResponse
from psycopg2.extensions import connection

from recommender import activity
from recommender.api.auth import needs
from recommender.api.database import Database, Reader, database
from recommender.api.experiment_schemas import (
    ArmOut,
    ArmSummary,
    Assignments,
    ExperimentDetail,
    ExperimentIn,
    ExperimentOut,
    ImpressionIn,
    UserArm,
)
from recommender.api.limits import short_errors
from recommender.api.routers.users import (
    MAX_BATCH,
    WRITE_ROUTE,
    IdempotencyKey,
    Writer,
    advisory_lock,
    in_list,
    refusal,
    with_nullable_ids,
    write_batch,
)
from recommender.api.schemas import UserId

router = APIRouter(tags=["experiments"])

ExperimentIdPath = Annotated[int, Path(gt=0, le=2**63 - 1, description="the experiment's id")]
SUMMARY = "marts.experiment_summary"
MAX_SUMMARY_ROWS = 1000  # one per arm (at most 100): a mart that holds more is cut, not read whole
EXPERIMENT = """select experiment_id, name, seed, first_day, days, status, configuration
from app.experiments where experiment_id = {}"""
ARMS = """select arm, model, run_id, parameters, share, is_control
from app.experiment_arms where experiment_id = {} order by is_control desc, arm"""
NOT_FOUND = {404: {"description": "no such experiment"}}


def _read(conn: connection, experiment_id: int) -> ExperimentOut:
    """The registered experiment, as the API answers it (psycopg2, inside a write)."""
    with conn.cursor() as cur:
        cur.execute(EXPERIMENT.format("%s"), (experiment_id,))
        names = [column.name for column in cur.description]
        experiment = dict(zip(names, cur.fetchone(), strict=True))
        cur.execute(ARMS.format("%s"), (experiment_id,))
        names = [column.name for column in cur.description]
        arms = [ArmOut(**dict(zip(names, row, strict=True))) for row in cur.fetchall()]
    conn.rollback()
    return ExperimentOut(**experiment, arms=arms)


@router.post(
    "/experiments",
    status_code=201,
    response_model=ExperimentOut,
    summary="Register an experiment with its arms",
    description="The same definition again answers 200 and changes nothing; another definition under a taken"
    " experiment_id answers 409 (delete the experiment first). The arms' shares are normalised to add up to 1.",
    **needs(
        "data_scientist",
        responses={
            200: {"model": ExperimentOut, "description": "this exact experiment was already registered"},
            409: {"description": "another experiment has this experiment_id"},
            422: {"description": "the definition is invalid; `loc` names the field"},
        },
    ),
)
def create_experiment(
    db: Annotated[Database, Depends(database)], caller: Writer, experiment: ExperimentIn
) -> JSONResponse:
    definition = activity.Experiment(
        experiment_id=experiment.experiment_id,
        name=experiment.name,
        seed=experiment.seed,
        first_day=experiment.first_day,
        days=experiment.days,
        arms=tuple(activity.Arm(**arm.model_dump()) for arm in experiment.arms),
        configuration=experiment.configuration,
    )
    with db.writer() as conn:
        created = activity.create_experiment(conn, definition)  # ConflictError: 409
        body = _read(conn, experiment.experiment_id)
    return JSONResponse(body.model_dump(mode="json"), status_code=201 if created else 200)


@router.post(
    "/experiments/{experiment_id}/assignments",
    status_code=201,
    response_model=Assignments,
    summary="Assign users to the experiment's arms (by a hash of experiment and user)",
    description="Each user's arm depends only on the experiment and the user, never on who else takes part;"
    " a user assigned before keeps their arm (200 when every user was). The users must exist (POST /users).",
    **needs(
        "data_scientist",
        responses={
            200: {"model": Assignments, "description": "every user was assigned before; nothing changed"},
            404: NOT_FOUND[404],
            422: {"description": "a user id is unknown or given twice; `loc` names its index"},
        },
    ),
)
def assign_users(
    db: Annotated[Database, Depends(database)],
    caller: Writer,
    experiment_id: ExperimentIdPath,
    user_ids: Annotated[
        list[UserId],
        Body(min_length=1, max_length=MAX_BATCH, examples=[[1001, 1002]], description="the users' ids"),
    ],
) -> JSONResponse:
    first = {user_id: n for n, user_id in reversed(list(enumerate(user_ids)))}
    repeated = [n for n, user_id in enumerate(user_ids) if first[user_id] != n]
    if repeated:
        detail = [
            {"loc": ["body", n], "msg": "this user is asked for twice", "input": user_ids[n], "type": "value_error"}
            for n in repeated
        ]
        raise HTTPException(422, short_errors(detail))
    # one request per experiment at a time: two that assign the same new user must not both write them
    with db.writer() as conn, advisory_lock(conn, f"experiment assignments:{experiment_id}"):
        experiment = activity.read_experiment(conn, experiment_id)  # MissingError: 404
        with conn.cursor() as cur:
            cur.execute(
                "select user_id, arm from app.assignments where experiment_id = %s and user_id = any(%s)",
                (experiment_id, user_ids),
            )
            known = dict(cur.fetchall())
        conn.rollback()
        arms = activity.assign(experiment, user_ids)
        new = [n for n, user_id in enumerate(user_ids) if user_id not in known]
        if new:
            with conn.cursor() as cur:
                cur.execute("select now()")
                (now,) = cur.fetchone()
            conn.rollback()
            frame = pd.DataFrame(
                {
                    "experiment_id": experiment_id,
                    "user_id": [user_ids[n] for n in new],
                    "arm": arms.iloc[new].to_numpy(),
                    "assigned_at": pd.Timestamp(now).tz_convert("UTC"),
                }
            )
            try:
                activity.write_assignments(conn, frame)
            except activity.BatchError as exc:
                raise refusal(exc, lambda row, column: ["body", *([] if row is None else [new[row]])]) from None
    body = Assignments(
        experiment_id=experiment_id,
        written=len(new),
        users=[UserArm(user_id=u, arm=known.get(u, arm)) for u, arm in zip(user_ids, arms, strict=True)],
    )
    return JSONResponse(body.model_dump(), status_code=201 if new else 200)


@router.post(
    "/impressions",
    summary="Record titles shown to users (one request is one batch: all written or none)",
    description="In an experiment, each impression names it and the arm the user is assigned to."
    " Viewing events and ratings that followed an impression cite its `impression_id`.",
    **WRITE_ROUTE,
)
def add_impressions(
    db: Annotated[Database, Depends(database)],
    caller: Writer,
    impressions: Annotated[list[ImpressionIn], Body(min_length=1, max_length=MAX_BATCH)],
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    rows = [impression.model_dump() for impression in impressions]
    frame = pd.DataFrame(rows).assign(shown_at=lambda f: pd.to_datetime(f.shown_at, utc=True))
    frame = with_nullable_ids(frame, rows, "experiment_id")
    return write_batch(db, caller, idempotency_key, impressions, activity.prepare_impressions, frame, in_list)


def _summary_row(row: asyncpg.Record) -> ArmSummary:
    """A row of the mart as ``ArmSummary``: its columns by name; those it lacks are null, others ignored."""
    found = dict(row)
    return ArmSummary(**{name: found[name] for name in ArmSummary.model_fields if name in found})


@router.get(
    "/experiments/{experiment_id}",
    response_model=ExperimentDetail,
    summary="An experiment, its arms and their summary (what users did in each arm)",
    description="`summary` holds one row per arm of marts.experiment_summary: empty until `dbt build`"
    " (or `make run`) has summarised the experiment's activity.",
    **needs("analyst", "data_scientist", responses=NOT_FOUND),
)
async def get_experiment(db: Reader, experiment_id: ExperimentIdPath) -> ExperimentDetail:
    row = await db.fetchrow(EXPERIMENT.format("$1"), experiment_id)
    if row is None:
        raise HTTPException(404, f"no experiment {experiment_id}; POST /experiments registers one")
    arms = [ArmOut(**dict(arm)) for arm in await db.fetch(ARMS.format("$1"), experiment_id)]
    summary: list[ArmSummary] = []
    if await db.fetchval("select to_regclass($1) is not null", SUMMARY):
        found = await db.fetch(
            f"select * from {SUMMARY} where experiment_id = $1 limit {MAX_SUMMARY_ROWS}", experiment_id
        )
        summary = sorted(map(_summary_row, found), key=lambda arm: (not arm.is_control, arm.arm))
    return ExperimentDetail(**dict(row), arms=arms, summary=summary)
