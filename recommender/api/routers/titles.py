"""The catalogue's titles: search with filters and paging, one title in full, similar titles."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from recommender.api.auth import public
from recommender.api.database import Reader
from recommender.api.schemas import (
    CONTENT_ID_PATTERN,
    Credit,
    NamedCode,
    Offset,
    Page,
    Ranking,
    SimilarTitle,
    Text,
    TitleDetail,
    TitleSummary,
)

router = APIRouter(prefix="/titles", tags=["titles"])

SUMMARY_COLUMNS = """content_id, title, content_type, release_year, age_certification, runtime_minutes, seasons,
    imdb_score, imdb_votes, genre_ids, country_codes, best_of_rank"""
MATCHES = f"""
with matches as (
    select {SUMMARY_COLUMNS}, title_rank.rank
    from marts.catalogue
    cross join lateral (
        select ts_rank(to_tsvector('simple', coalesce(title, '')), websearch_to_tsquery('simple', $1)) as rank
    ) as title_rank
    where ($1::text is null or to_tsvector('simple', coalesce(title, '')) @@ websearch_to_tsquery('simple', $1))
        and ($2::text is null or content_type = $2)
        and ($3::text is null or $3 = any(genre_ids))
        and ($4::text is null or $4 = any(country_codes))
        and ($5::int is null or release_year >= $5)
        and ($6::int is null or release_year <= $6)
        and ($7::numeric is null or imdb_score >= $7)
        and ($8::numeric is null or imdb_score <= $8)
)
"""
ContentIdPath = Annotated[str, Path(pattern=CONTENT_ID_PATTERN, max_length=20, examples=["tm84618"])]


class Sort(StrEnum):
    relevance = "relevance"
    title = "title"
    release_year = "release_year"
    newest = "-release_year"
    imdb_score = "-imdb_score"
    imdb_votes = "-imdb_votes"
    best_of_rank = "best_of_rank"


# each sort key's ORDER BY; content_id last makes the order total, so pages never overlap
ORDER_BY = {
    Sort.relevance: "rank desc, imdb_votes desc nulls last",
    Sort.title: "title",
    Sort.release_year: "release_year",
    Sort.newest: "release_year desc",
    Sort.imdb_score: "imdb_score desc nulls last",
    Sort.imdb_votes: "imdb_votes desc nulls last",
    Sort.best_of_rank: "best_of_rank nulls last",
}


@router.get("", response_model=Page[TitleSummary], summary="Search titles", **public())
async def list_titles(
    db: Reader,
    q: Annotated[Text | None, Query(max_length=200, description="full-text search in titles")] = None,
    content_type: Annotated[str | None, Query(alias="type", pattern="^(movie|show)$")] = None,
    genre: Annotated[str | None, Query(pattern="^[a-z0-9_-]{1,50}$", description="a genre_id, e.g. drama")] = None,
    country: Annotated[str | None, Query(pattern="^[A-Z]{2}$", description="a production country code")] = None,
    year_min: Annotated[int | None, Query(ge=1800, le=2100)] = None,
    year_max: Annotated[int | None, Query(ge=1800, le=2100)] = None,
    score_min: Annotated[float | None, Query(ge=0, le=10, description="lowest IMDb score")] = None,
    score_max: Annotated[float | None, Query(ge=0, le=10)] = None,
    sort: Sort = Sort.relevance,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Offset = 0,
) -> Page[TitleSummary]:
    params = (q, content_type, genre, country, year_min, year_max, score_min, score_max)
    rows = await db.fetch(
        f"{MATCHES} select *, count(*) over () as total from matches"
        f" order by {ORDER_BY[sort]}, content_id limit $9 offset $10",
        *params,
        limit,
        offset,
    )
    # past the last page no row carries the total: count it alone
    total = rows[0]["total"] if rows else await db.fetchval(f"{MATCHES} select count(*) from matches", *params)
    return Page(total=total, limit=limit, offset=offset, items=[TitleSummary.model_validate(dict(r)) for r in rows])


@router.get("/{content_id}", response_model=TitleDetail, summary="One title in full", **public())
async def get_title(db: Reader, content_id: ContentIdPath) -> TitleDetail:
    row = await db.fetchrow(f"select {SUMMARY_COLUMNS}, imdb_id from marts.catalogue where content_id = $1", content_id)
    if row is None:
        raise HTTPException(404, f"no title {content_id!r} in the catalogue")
    genres = await db.fetch(
        """select genres.genre_id as code, genres.genre_name as name
        from core.title_genres inner join core.genres using (genre_id)
        where content_id = $1 order by genre_position""",
        content_id,
    )
    countries = await db.fetch(
        """select countries.country_code as code, countries.country_name as name
        from core.title_production_countries inner join core.countries using (country_code)
        where content_id = $1 order by country_position""",
        content_id,
    )
    credits = await db.fetch(
        """select people.person_id, people.person_name, credits.credit_role, credits.character_names,
            credits.billing_order
        from core.credits inner join core.people using (person_id)
        where content_id = $1
        order by credits.credit_role desc, credits.billing_order nulls last, people.person_name""",
        content_id,
    )
    rankings = await db.fetch(
        "select ranking_list, list_rank from core.title_rankings where content_id = $1 order by ranking_list",
        content_id,
    )
    return TitleDetail(
        **dict(row),
        genres=[NamedCode(**dict(r)) for r in genres],
        countries=[NamedCode(**dict(r)) for r in countries],
        credits=[Credit(**dict(r)) for r in credits],
        rankings=[Ranking(**dict(r)) for r in rankings],
    )


@router.get(
    "/{content_id}/similar",
    response_model=list[SimilarTitle],
    summary="Titles watched by the same people",
    description="Cosine similarity of the sets of users who watched or rated each title (marts.ml_interactions);"
    " titles of the same main genre fill the list when co-viewing is too thin.",
    **public(),
)
async def similar_titles(
    db: Reader, content_id: ContentIdPath, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> list[SimilarTitle]:
    if await db.fetchval("select 1 from marts.catalogue where content_id = $1", content_id) is None:
        raise HTTPException(404, f"no title {content_id!r} in the catalogue")
    rows = await db.fetch(
        """
        with viewers as (
            select user_id from marts.ml_interactions where content_id = $1
        ),
        co_viewed as (
            select interactions.content_id, count(*) as co_viewers
            from marts.ml_interactions as interactions
            inner join viewers using (user_id)
            where interactions.content_id <> $1
            group by interactions.content_id
        ),
        audience as (
            select content_id, count(*) as viewers
            from marts.ml_interactions
            where content_id in (select content_id from co_viewed)
            group by content_id
        ),
        scored as (
            select co_viewed.content_id, co_viewed.co_viewers,
                co_viewed.co_viewers / sqrt(audience.viewers * (select count(*) from viewers)) as similarity
            from co_viewed inner join audience using (content_id)
        ),
        same_genre as (
            select catalogue.content_id, 0 as co_viewers, 0.0 as similarity
            from marts.catalogue
            where catalogue.main_genre_id = (select main_genre_id from marts.catalogue where content_id = $1)
                and catalogue.content_id <> $1
                and catalogue.content_id not in (select content_id from scored)
            order by catalogue.imdb_votes desc nulls last
            limit $2
        ),
        candidates as (
            select * from scored
            union all
            select * from same_genre
        )
        select candidates.content_id, catalogue.title, catalogue.content_type, catalogue.release_year,
            candidates.similarity::float8 as similarity, candidates.co_viewers
        from candidates inner join marts.catalogue using (content_id)
        order by candidates.similarity desc, catalogue.imdb_votes desc nulls last, candidates.content_id
        limit $2
        """,
        content_id,
        limit,
    )
    return [SimilarTitle(**dict(r)) for r in rows]
