"""Model runs of the recommender: status, parameters, holdout metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from recommender.api.auth import needs
from recommender.api.database import Reader
from recommender.api.schemas import ModelRun, Offset, Page

router = APIRouter(prefix="/runs", tags=["model runs"])

COLUMNS = """run_id, model, status, is_current, user_count, row_count, metrics, parameters, error, started_at,
    finished_at, published_at"""


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
async def get_run(db: Reader, run_id: Annotated[str, Path(pattern="^[A-Za-z0-9_.:-]{1,100}$")]) -> ModelRun:
    row = await db.fetchrow(f"select {COLUMNS} from predictions.model_runs where run_id = $1", run_id)
    if row is None:
        raise HTTPException(404, f"no model run {run_id!r}")
    return ModelRun(**dict(row))
