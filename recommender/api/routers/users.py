"""Users and their activity: read one user, write users, viewing events and ratings, read recommendations.

Writes go through ``recommender.activity``, as the simulator's do: the whole request is
checked (pydantic here for types and ranges, then the references to titles, countries
and users in the warehouse) before anything is written, in one transaction. A bad item
rejects the request with a 422 whose ``loc`` names the item and the field. The same
batch written twice is written once; an ``Idempotency-Key`` header also replays the
first answer, and refuses (409) a different request under the same key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Body, Depends, Header, HTTPException, Path, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response
from psycopg2.extensions import connection

from recommender import activity
from recommender.api.auth import Caller, needs, require
from recommender.api.database import Database, Reader, database
from recommender.api.limits import short_errors
from recommender.api.popular import popular_answer
from recommender.api.run_cache import VERSION
from recommender.api.schemas import (
    Event,
    EventFields,
    EventIn,
    Offset,
    Page,
    RatingIn,
    Recommendation,
    Recommendations,
    UserDetail,
    UserIn,
    WriteResult,
)
from recommender.spark import lake
from recommender.warehouse.jsonable import plain

router = APIRouter(tags=["users"])

UserIdPath = Annotated[int, Path(gt=0, le=2**63 - 1)]
IdempotencyKey = Annotated[
    str | None,
    Header(max_length=200, description="a key of the client's choosing: a retry with it returns the first answer"),
]
MAX_BATCH = 50_000
WRITE_RESPONSES = {
    200: {"model": WriteResult, "description": "this exact batch was already written; nothing changed"},
    409: {"description": "an id is taken by other content, or the Idempotency-Key was used for another request"},
    422: {"description": "an item is invalid; `loc` names it (body, index, field) and nothing was written"},
}
Writer = Annotated[Caller, Depends(require("data_scientist"))]
# what a server with an activity lake (serve --lake) writes there rather than into app.*
LAKE_KINDS = {
    activity.prepare_users: "users",
    activity.prepare_events: "viewing_events",
    activity.prepare_ratings: "ratings",
}
# what every write route declares: 201 with a WriteResult, data_scientist (or admin), its other answers
WRITE_ROUTE = {"status_code": 201, "response_model": WriteResult, **needs("data_scientist", responses=WRITE_RESPONSES)}


def refusal(exc: activity.BatchError, location: Callable[[Any, str], list[Any]]) -> HTTPException:
    """A BatchError as FastAPI's own 422: one entry per problem, ``loc`` naming the item and field, short as
    every 422 is (``limits.short_errors``)."""
    unique_clash = exc.problems["reason"].eq("already written").any()
    detail = [
        {
            "loc": location(None if pd.isna(row.row) else int(row.row), str(row.column)),
            "msg": str(row.reason),
            "input": plain(row.value),
            "type": "value_error",
        }
        for row in exc.problems.itertuples()
    ]
    return HTTPException(409 if unique_clash else 422, short_errors(detail))


def in_list(index: int | None, column: str) -> list[Any]:
    # a check of several columns together ("experiment_id,user_id,arm") names the last, the one that did not fit
    return ["body", *([] if index is None else [index]), column.rsplit(",", 1)[-1]]


def _in_body(index: int | None, column: str) -> list[Any]:
    return ["path", "user_id"] if column == "user_id" else ["body", column]


@contextmanager
def advisory_lock(conn: connection, name: str) -> Iterator[None]:
    """One holder of the session lock ``name`` at a time on the warehouse (released at the end, or with the
    connection)."""
    with conn.cursor() as cur:
        cur.execute("select pg_advisory_lock(hashtextextended(%s, 0))", (name,))
    try:
        yield
    finally:
        if not conn.closed:
            conn.rollback()
            with conn.cursor() as cur:
                cur.execute("select pg_advisory_unlock(hashtextextended(%s, 0))", (name,))
            conn.rollback()


@contextmanager
def _idempotency_lock(conn: connection, caller: Caller, idempotency_key: str | None) -> Iterator[None]:
    """Requests under one Idempotency-Key, one at a time: the second finds the first's answer."""
    if idempotency_key is None:
        yield
        return
    with advisory_lock(conn, f"{caller.key_id}:{idempotency_key}"):
        yield


def write_batch(
    db: Database,
    caller: Caller,
    idempotency_key: str | None,
    request: Any,
    prepare: Callable[[connection, pd.DataFrame], activity.PreparedBatch],
    frame: pd.DataFrame,
    location: Callable[[Any, str], list[Any]],
) -> JSONResponse:
    request_hash = hashlib.sha256(json.dumps(jsonable_encoder(request), sort_keys=True).encode()).digest()
    with db.writer() as conn, _idempotency_lock(conn, caller, idempotency_key):
        if idempotency_key is not None:
            with conn.cursor() as cur:
                cur.execute(
                    "select request_hash, status_code, response from api.idempotency"
                    " where key_id = %s and idempotency_key = %s",
                    (caller.key_id, idempotency_key),
                )
                stored = cur.fetchone()
            conn.rollback()
            if stored is not None:
                if bytes(stored[0]) != request_hash:
                    raise HTTPException(409, "this Idempotency-Key was used for a different request; use a new key")
                return JSONResponse(stored[2], status_code=stored[1])
        try:
            if db.settings.lake_dir is not None and prepare in LAKE_KINDS:
                result = lake.LakeWriter(conn, db.settings.lake_dir).write(LAKE_KINDS[prepare], frame)
            else:
                result = activity.write_prepared(conn, prepare(conn, frame))
        except activity.BatchError as exc:
            raise refusal(exc, location) from None
        body = WriteResult(kind=result.kind, batch_id=result.batch_id, rows=result.rows, written=result.written)
        status = 201 if result.written else 200
        if idempotency_key is not None:
            # after the batch's own commit: were this lost, a retry would find the batch written (200, not a copy)
            with conn, conn.cursor() as cur:
                cur.execute(
                    "insert into api.idempotency (key_id, idempotency_key, request_hash, status_code, response)"
                    " values (%s, %s, %s, %s, %s) on conflict do nothing",
                    (caller.key_id, idempotency_key, request_hash, status, body.model_dump_json()),
                )
    return JSONResponse(body.model_dump(), status_code=status)


def with_nullable_ids(frame: pd.DataFrame, rows: list[dict[str, Any]], *columns: str) -> pd.DataFrame:
    """``frame`` with its ``columns`` (ids that may be null) as Int64: exact, where pandas would make floats."""
    return frame.assign(**{column: pd.array([row[column] for row in rows], dtype="Int64") for column in columns})


def _events_frame(events: list[dict[str, Any]]) -> pd.DataFrame:
    # one instant, one derived id: mixed UTC offsets would otherwise hash as different text
    frame = pd.DataFrame(events).assign(started_at=lambda f: pd.to_datetime(f.started_at, utc=True))
    frame = with_nullable_ids(frame, events, "impression_id")
    missing = frame["event_id"].isna()
    if missing.all():
        return frame.drop(columns="event_id")  # activity derives them
    if missing.any():
        frame.loc[missing, "event_id"] = activity.derive_event_ids(frame[missing])
    return frame.astype({"event_id": "int64"})


@router.post(
    "/users",
    summary="Create users (one request is one batch: all written or none)",
    **WRITE_ROUTE,
)
def create_users(
    db: Annotated[Database, Depends(database)],
    caller: Writer,
    users: Annotated[list[UserIn], Body(min_length=1, max_length=MAX_BATCH)],
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    frame = pd.DataFrame([user.model_dump() for user in users])
    return write_batch(db, caller, idempotency_key, users, activity.prepare_users, frame, in_list)


@router.post(
    "/events",
    summary="Add viewing events of any users (one request is one batch)",
    **WRITE_ROUTE,
)
def add_events(
    db: Annotated[Database, Depends(database)],
    caller: Writer,
    events: Annotated[list[EventIn], Body(min_length=1, max_length=MAX_BATCH)],
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    frame = _events_frame([event.model_dump() for event in events])
    return write_batch(db, caller, idempotency_key, events, activity.prepare_events, frame, in_list)


@router.post(
    "/users/{user_id}/events",
    summary="Add one viewing event of a user",
    **WRITE_ROUTE,
)
def add_event(
    db: Annotated[Database, Depends(database)],
    caller: Writer,
    user_id: UserIdPath,
    event: EventFields,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    frame = _events_frame([{**event.model_dump(), "user_id": user_id}])
    return write_batch(db, caller, idempotency_key, (user_id, event), activity.prepare_events, frame, _in_body)


@router.post(
    "/users/{user_id}/ratings",
    summary="Add a user's rating of a title (1 to 5 stars; the latest counts)",
    **WRITE_ROUTE,
)
def add_rating(
    db: Annotated[Database, Depends(database)],
    caller: Writer,
    user_id: UserIdPath,
    rating: RatingIn,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    rows = [{**rating.model_dump(), "user_id": user_id}]
    frame = with_nullable_ids(pd.DataFrame(rows), rows, "impression_id")
    return write_batch(db, caller, idempotency_key, (user_id, rating), activity.prepare_ratings, frame, _in_body)


async def _user_exists(db: Reader, user_id: int) -> None:
    if await db.fetchval("select 1 from app.users where user_id = $1", user_id) is None:
        raise HTTPException(404, f"no user {user_id}")


RECOMMENDATIONS = f"""
with version as ({VERSION})
select version.run_id as current_run_id, version.catalogue, recommendations.*
from version left join lateral (
    select recommendation_rank as rank, content_id, title, content_type, release_year, score, reason,
        run_id, model, published_at
    from marts.user_recommendations where user_id = $1 order by recommendation_rank limit $2
) as recommendations on true"""

EVENTS = """select events.event_id, events.content_id, catalogue.title, events.started_at, events.seconds_watched,
    events.completion_ratio, events.rating, events.device
from app.viewing_events as events left join marts.catalogue using (content_id)
where events.user_id = $1
order by events.started_at desc, events.event_id desc"""


@router.get(
    "/users/{user_id}",
    response_model=UserDetail,
    summary="One user, their activity totals and latest events",
    **needs("analyst", "data_scientist"),
)
async def get_user(db: Reader, user_id: UserIdPath) -> UserDetail:
    row = await db.fetchrow(
        """select users.user_id, users.age_band, users.country_code, users.signup_date, users.plan, users.device,
            users.language, users.attributes,
            count(events.event_id) as sessions,
            count(distinct events.content_id) as titles_watched,
            coalesce(sum(events.seconds_watched), 0) / 3600.0 as hours_watched,
            count(events.rating) + (select count(*) from app.ratings where ratings.user_id = users.user_id)
                as ratings_given,
            max(events.started_at) as last_session_at
        from app.users left join app.viewing_events as events using (user_id)
        where users.user_id = $1
        group by users.user_id""",
        user_id,
    )
    if row is None:
        raise HTTPException(404, f"no user {user_id}")
    events = await db.fetch(f"{EVENTS} limit 20", user_id)
    return UserDetail(**dict(row), recent_events=[Event(**dict(r)) for r in events])


@router.get(
    "/users/{user_id}/events",
    response_model=Page[Event],
    summary="A user's viewing events, newest first",
    **needs("analyst", "data_scientist"),
)
async def list_events(
    db: Reader,
    user_id: UserIdPath,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Offset = 0,
) -> Page[Event]:
    await _user_exists(db, user_id)
    total = await db.fetchval("select count(*) from app.viewing_events where user_id = $1", user_id)
    rows = await db.fetch(f"{EVENTS} limit $2 offset $3", user_id, limit, offset)
    return Page(total=total, limit=limit, offset=offset, items=[Event(**dict(r)) for r in rows])


@router.get(
    "/users/{user_id}/recommendations",
    response_model=Recommendations,
    summary="The current model run's recommendations for a user, best first, with reasons",
    description="A user the run does not know (created after it) gets the run's most popular titles"
    ' they have not watched, with the reason "popular with viewers"; an unknown user id answers 404.',
    **needs("analyst", "data_scientist"),
)
async def get_recommendations(
    db: Reader,
    pools: Annotated[Database, Depends(database)],
    user_id: UserIdPath,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> Response:
    key = (user_id, limit)
    if (answer := pools.recommendations.get(tuple(await db.fetchrow(VERSION)), key)) is not None:
        return Response(answer, media_type="application/json")
    # the version and the rows in one statement, so of one snapshot: the answer is filed under the run it shows
    found = await db.fetch(RECOMMENDATIONS, user_id, limit)
    version, rows = (found[0]["current_run_id"], found[0]["catalogue"]), [r for r in found if r["rank"] is not None]
    if not rows:
        await _user_exists(db, user_id)  # a user of the current run has rows; a newer one gets them at the next run
        # until then, the run's popular titles; not kept per user, so titles that reach their interactions drop out
        if version[0] is not None and (popular := await popular_answer(db, pools.popular, version, user_id, limit)):
            return Response(popular.model_dump_json().encode(), media_type="application/json")
    first = rows[0] if rows else {"run_id": None, "model": None, "published_at": None}
    body = Recommendations(
        user_id=user_id,
        run_id=first["run_id"],
        model=first["model"],
        published_at=first["published_at"],
        items=[Recommendation(**{k: r[k] for k in Recommendation.model_fields}) for r in rows],
    )
    answer = body.model_dump_json().encode()
    pools.recommendations.put(version, key, answer)
    return Response(answer, media_type="application/json")
