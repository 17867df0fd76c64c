"""Genres and production countries, with how many titles each has."""

from __future__ import annotations

from fastapi import APIRouter

from recommender.api.auth import public
from recommender.api.database import Reader
from recommender.api.schemas import Country, Genre

router = APIRouter(tags=["reference"])


@router.get("/genres", response_model=list[Genre], summary="Genres and their title counts", **public())
async def list_genres(db: Reader) -> list[Genre]:
    rows = await db.fetch(
        """select genres.genre_id, genres.genre_name, count(title_genres.content_id) as titles
        from core.genres left join core.title_genres using (genre_id)
        group by genres.genre_id, genres.genre_name
        order by titles desc, genres.genre_id"""
    )
    return [Genre(**dict(r)) for r in rows]


@router.get("/countries", response_model=list[Country], summary="Production countries and their titles", **public())
async def list_countries(db: Reader) -> list[Country]:
    rows = await db.fetch(
        """select country_code, country_name, titles, movies, shows, avg_imdb_score
        from marts.country_summary order by titles desc, country_code"""
    )
    return [Country(**dict(r)) for r in rows]
