"""The current run's popular titles, for a user it has no rows for (one created after the run).

The models give users without history the titles most users interacted with (share of
users, ``Recommender.recommend``); this is the same ranking over ``marts.ml_interactions``,
drawn once per run and API process (a ``RunCache`` entry: it stays the run's list while
newer activity reaches the mart) and shown with the reason the models give it. Per
request, only the titles the user already has in ``marts.ml_interactions`` are left out
(an indexed lookup): activity written since the last ``dbt build`` is not seen yet.
"""

from __future__ import annotations

import asyncpg

from recommender.api.run_cache import VERSION, RunCache
from recommender.api.schemas import Recommendation, Recommendations
from recommender.ml import POPULAR_REASON

MOST = 1000  # the longest list a request may ask for (the route's limit)

# the version and the list in one statement, so of one snapshot; a run and no interactions: one row, no title
POPULAR = f"""
with version as ({VERSION}),
audience as (
    select content_id, count(*) as users
    from marts.ml_interactions
    group by content_id
    order by users desc, content_id
    limit {MOST}
)
select version.run_id, version.catalogue, model_runs.model, model_runs.published_at,
    audience.content_id, catalogue.title, catalogue.content_type, catalogue.release_year,
    audience.users::float8 / (select count(distinct user_id) from marts.ml_interactions) as score
from version
inner join predictions.model_runs on version.run_id = model_runs.run_id
left join audience on true
left join marts.catalogue on audience.content_id = catalogue.content_id
order by audience.users desc, audience.content_id"""

SEEN = "select content_id from marts.ml_interactions where user_id = $1"


async def popular_answer(
    db: asyncpg.Connection, cache: RunCache[list[asyncpg.Record]], version: tuple, user_id: int, limit: int
) -> Recommendations | None:
    """The run's popular titles the user has not seen, best first; None when no run is current any more."""
    if (rows := cache.get(version, "popular")) is None:
        rows = await db.fetch(POPULAR)
        if rows:
            cache.put((rows[0]["run_id"], rows[0]["catalogue"]), "popular", rows)
    if not rows:
        return None
    seen = {row["content_id"] for row in await db.fetch(SEEN, user_id)}
    unseen = [row for row in rows if row["content_id"] is not None and row["content_id"] not in seen][:limit]
    return Recommendations(
        user_id=user_id,
        run_id=rows[0]["run_id"],
        model=rows[0]["model"],
        published_at=rows[0]["published_at"],
        items=[
            Recommendation(
                **{k: row[k] for k in ("content_id", "title", "content_type", "release_year", "score")},
                rank=rank,
                reason=POPULAR_REASON,
            )
            for rank, row in enumerate(unseen, start=1)
        ],
    )
