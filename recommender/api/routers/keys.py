"""API keys, for admins (the command line does the same: ``python -m recommender keys``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from recommender.api import keys
from recommender.api.auth import needs
from recommender.api.database import Database, database
from recommender.api.schemas import KeyCreate, KeyCreated, KeyInfo

router = APIRouter(prefix="/keys", tags=["API keys"])
DB = Annotated[Database, Depends(database)]


@router.get("", response_model=list[KeyInfo], summary="Every key (never the key itself)", **needs("admin"))
def list_keys(db: DB) -> list[KeyInfo]:
    with db.writer() as conn:
        return [KeyInfo(**vars(info)) for info in keys.list_keys(conn)]


@router.post("", status_code=201, response_model=KeyCreated, summary="Create a key", **needs("admin"))
def create_key(db: DB, request: KeyCreate) -> KeyCreated:
    with db.writer() as conn:
        key = keys.create_key(conn, request.role, request.name)
    return KeyCreated(key_id=keys.parse_key_id(key), role=request.role, name=request.name, key=key)


@router.delete("/{key_id}", status_code=204, summary="Revoke a key at once", **needs("admin"))
def revoke_key(db: DB, key_id: Annotated[str, Path(pattern=keys.KEY_ID.pattern)]) -> None:
    with db.writer() as conn:
        keys.revoke_key(conn, key_id)  # an unknown key: 404, as every NotFoundError
