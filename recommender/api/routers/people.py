"""People of the credits, with their filmographies."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from recommender.api.auth import public
from recommender.api.database import Reader
from recommender.api.schemas import FilmographyEntry, Offset, Page, PersonDetail, PersonSummary, Text

router = APIRouter(prefix="/people", tags=["people"])

PEOPLE = """
with people as (
    select people.person_id, people.person_name, count(distinct credits.content_id) as titles
    from core.people inner join core.credits using (person_id)
    where $1::text is null or people.person_name ilike '%' || $1 || '%'
    group by people.person_id, people.person_name
)
"""


@router.get("", response_model=Page[PersonSummary], summary="Search people by name", **public())
async def list_people(
    db: Reader,
    q: Annotated[Text | None, Query(max_length=200, description="part of the name, any case")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Offset = 0,
) -> Page[PersonSummary]:
    pattern = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") if q else None
    rows = await db.fetch(
        f"{PEOPLE} select *, count(*) over () as total from people"
        " order by titles desc, person_name, person_id limit $2 offset $3",
        pattern,
        limit,
        offset,
    )
    total = rows[0]["total"] if rows else await db.fetchval(f"{PEOPLE} select count(*) from people", pattern)
    return Page(total=total, limit=limit, offset=offset, items=[PersonSummary(**dict(r)) for r in rows])


@router.get("/{person_id}", response_model=PersonDetail, summary="One person and their filmography", **public())
async def get_person(db: Reader, person_id: Annotated[int, Path(ge=0, le=2**63 - 1)]) -> PersonDetail:
    rows = await db.fetch(
        """select person_name, content_id, title, content_type, release_year, credit_role, character_names, imdb_score
        from marts.person_filmography where person_id = $1
        order by release_year desc nulls last, title, credit_role""",
        person_id,
    )
    if not rows:
        raise HTTPException(404, f"no person {person_id} in the credits")
    return PersonDetail(
        person_id=person_id,
        person_name=rows[0]["person_name"],
        filmography=[FilmographyEntry(**{k: v for k, v in r.items() if k != "person_name"}) for r in rows],
    )
