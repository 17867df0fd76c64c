"""Model runs of the recommender: status, parameters, holdout metrics; and publishing one, through the same door.

A data scientist's client publishes as ``recommender.ml.publish`` does on a connection:
``POST /runs`` starts a run, ``PUT /runs/{run_id}/recommendations`` uploads its rows (CSV or
Parquet; checked whole, then attached as the run's partition, not yet current), ``POST
/runs/{run_id}/publish`` makes it current; ``POST /runs/{run_id}/fail`` and ``POST
/runs/rollback`` as their names say. The database work logs in as the calling key's own
login, so predictions' door knows who started each run: another key's run is refused (403).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from tempfile import SpooledTemporaryFile
from typing import IO, Annotated

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pyarrow_csv
import pyarrow.parquet as pq
from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request
from psycopg2 import errors
from psycopg2.extensions import connection
from starlette.concurrency import run_in_threadpool

from recommender.api.auth import Caller, needs, require
from recommender.api.database import Database, Reader, database
from recommender.api.examples import RECOMMENDATIONS_CSV
from recommender.api.routers.marts import PARQUET
from recommender.api.schemas import ModelRun, Offset, Page, RunFail, RunPublish, RunRows, RunStart
from recommender.errors import UnavailableError
from recommender.ml import publish
from recommender.warehouse import logins

router = APIRouter(prefix="/runs", tags=["model runs"])

COLUMNS = """run_id, model, status, is_current, user_count, row_count, metrics, parameters, error, started_at,
    finished_at, published_at"""
RunId = Annotated[str, Path(pattern="^[A-Za-z0-9_.:-]{1,100}$")]
Publisher = Annotated[Caller, Depends(require("data_scientist"))]
Db = Annotated[Database, Depends(database)]
CSV = "text/csv"
# as the warehouse types them; a value that is not one is named by column and row
CSV_TYPES = {
    "user_id": pa.int64(),
    "content_id": pa.string(),
    "score": pa.float64(),
    "rank": pa.int64(),
    "reason": pa.string(),
}
SPOOL_BYTES = 8 * 2**20  # an upload is held in memory up to this size, then in a temporary file
READER_WAIT_S = 30.0  # an upload waits this long for readers that planned before its attach (its client waits too)
# the door's refusals (publish.REFUSALS), and a wait that ran out
PUBLISH_RESPONSES = {
    403: {"description": "the key's role may not publish, or the run is another key's"},
    404: {"description": "no such run"},
    409: {"description": "the run is not in a state for this (e.g. published, failed, its rows already uploaded)"},
    422: {"description": "a bad argument, or rows refused: the message names each bad column and rows"},
    503: {"description": "a lock or a reader was waited for too long (the message names the sessions); the run failed"},
}


@router.get("", response_model=Page[ModelRun], summary="Model runs, newest first", **needs("analyst", "data_scientist"))
async def list_runs(
    db: Reader,
    status: Annotated[str | None, Query(pattern="^(running|published|failed|rolled_back)$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Offset = 0,
) -> Page[ModelRun]:
    total = await db.fetchval(
        "select count(*) from predictions.model_runs where $1::text is null or status = $1", status
    )
    rows = await db.fetch(
        f"select {COLUMNS} from predictions.model_runs where $1::text is null or status = $1"
        " order by started_at desc, run_id desc limit $2 offset $3",
        status,
        limit,
        offset,
    )
    return Page(total=total, limit=limit, offset=offset, items=[ModelRun(**dict(r)) for r in rows])


@router.get("/{run_id}", response_model=ModelRun, summary="One model run", **needs("analyst", "data_scientist"))
async def get_run(db: Reader, run_id: RunId) -> ModelRun:
    row = await db.fetchrow(f"select {COLUMNS} from predictions.model_runs where run_id = $1", run_id)
    if row is None:
        raise HTTPException(404, f"no model run {run_id!r}")
    return ModelRun(**dict(row))


# ---------------------------------------------------------------------------------------------------------------------
# publishing


@contextmanager
def _door(db: Database, caller: Caller) -> Iterator[connection]:
    """A connection as the key's own database login, and the door's refusals as HTTP errors."""
    try:
        with closing(logins.key_target(db.settings.target, caller.key_id).connect()) as conn:
            yield conn
    except errors.LockNotAvailable as exc:  # the door's refusals (PublishError) map as every WarehouseError does
        raise UnavailableError(str(exc).strip()) from None


def _run(conn: connection, run_id: str) -> ModelRun:
    with conn, conn.cursor() as cur:
        cur.execute(f"select {COLUMNS} from predictions.model_runs where run_id = %s", (run_id,))
        return ModelRun(**dict(zip([column.name for column in cur.description], cur.fetchone(), strict=True)))


@router.post(
    "",
    status_code=201,
    response_model=ModelRun,
    summary="Start a model run; then upload its recommendations and publish it",
    **needs("data_scientist", responses=PUBLISH_RESPONSES),
)
def start_run(db: Db, caller: Publisher, run: RunStart) -> ModelRun:
    with _door(db, caller) as conn:
        # not bound to this request's session, which ends with it: the client fails the run if it gives up
        run_id = publish.start_run(conn, run.model, run.parameters, run.data_snapshot, session_bound=False)
        return _run(conn, run_id)


def _frame(body: IO[bytes], media_type: str) -> pd.DataFrame:
    try:
        if media_type == PARQUET:
            table = pq.read_table(body)
        else:
            table = pyarrow_csv.read_csv(body, convert_options=pyarrow_csv.ConvertOptions(column_types=CSV_TYPES))
    except (pa.ArrowException, OSError) as exc:
        raise HTTPException(422, f"the body is not {media_type} rows: {exc}".strip()) from None
    return table.to_pandas()


def _stage(db: Database, caller: Caller, run_id: str, body: IO[bytes], media_type: str) -> RunRows:
    frame = _frame(body, media_type)
    with _door(db, caller) as conn:
        staged = publish.stage(conn, run_id, frame, reader_wait_s=READER_WAIT_S)
    return RunRows(run_id=run_id, rows=staged.rows, users=staged.users)


UPLOAD_ROUTE = needs(
    "data_scientist",
    responses={
        **PUBLISH_RESPONSES,
        413: {"description": "the body is larger than NETFLIX_API_MAX_UPLOAD_BYTES"},
        415: {"description": "the body is neither CSV nor Parquet"},
    },
)
# the body is read as a stream, not declared as a parameter: say what it is
UPLOAD_ROUTE["openapi_extra"]["requestBody"] = {
    "required": True,
    "content": {
        CSV: {"schema": {"type": "string"}, "example": RECOMMENDATIONS_CSV},
        PARQUET: {"schema": {"type": "string", "format": "binary"}},
    },
}


@router.put(
    "/{run_id}/recommendations",
    response_model=RunRows,
    summary="Upload a running run's recommendations (CSV or Parquet), attached but not current",
    description=(
        f"The body is `{CSV}` with the header `user_id,content_id,score,rank,reason`, or `{PARQUET}` with those"
        " columns: one row per user and rank (1 is best). They are checked whole (a 422 names each bad column and"
        " its rows, counted from 0, the first after a CSV's header) and become the run's partition; the run stays"
        " running, not current, until `POST /runs/{run_id}/publish`. Rows refused fail the run (start another); a"
        " body that is not CSV or Parquet at all, or a second upload (409), changes nothing. Bodies up to"
        " `NETFLIX_API_MAX_UPLOAD_BYTES`."
    ),
    **UPLOAD_ROUTE,
)
async def upload_recommendations(
    request: Request, db: Db, caller: Publisher, run_id: RunId, content_type: Annotated[str, Header()] = ""
) -> RunRows:
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type not in (CSV, PARQUET):
        raise HTTPException(415, f"send the rows as {CSV} or {PARQUET}, not {media_type or 'no Content-Type'}")
    with SpooledTemporaryFile(max_size=SPOOL_BYTES) as body:
        async for chunk in request.stream():  # RequestLimits stops the stream past NETFLIX_API_MAX_UPLOAD_BYTES: 413
            body.write(chunk)
        body.seek(0)
        return await run_in_threadpool(_stage, db, caller, run_id, body, media_type)


@router.post(
    "/{run_id}/publish",
    response_model=ModelRun,
    summary="Record a run's metrics and make its uploaded recommendations current",
    **needs("data_scientist", responses=PUBLISH_RESPONSES),
)
def publish_run(db: Db, caller: Publisher, run_id: RunId, results: RunPublish) -> ModelRun:
    with _door(db, caller) as conn:
        publish.finish(conn, run_id, metrics=results.metrics, timings=results.timings, current=results.current)
        return _run(conn, run_id)


@router.post(
    "/{run_id}/fail",
    response_model=ModelRun,
    summary="Mark a running run failed (a run that failed already keeps its first error)",
    **needs("data_scientist", responses=PUBLISH_RESPONSES),
)
def fail_run(db: Db, caller: Publisher, run_id: RunId, failure: RunFail) -> ModelRun:
    with _door(db, caller) as conn:
        publish.fail_run(conn, run_id, failure.error)
        return _run(conn, run_id)


@router.post(
    "/rollback",
    response_model=ModelRun,
    summary="Make the run published before the current one current again; the run now current",
    **needs("data_scientist", responses=PUBLISH_RESPONSES),
)
def rollback(db: Db, caller: Publisher) -> ModelRun:
    with _door(db, caller) as conn:
        return _run(conn, publish.rollback(conn))
