"""An example of every request and response schema of the API (``schemas``), shown by its docs.

``schemas.Schema`` puts ``example(model)`` into each model's JSON schema, so Swagger UI and
ReDoc show it beside the schema and prefill "Try it out" with it. The titles are the real
export's; ``tests/test_api_docs.py`` checks that each schema has one and accepts it.
"""

from __future__ import annotations

from typing import Any

TITLE_SUMMARY = {
    "content_id": "tm84618",
    "title": "Taxi Driver",
    "content_type": "movie",
    "release_year": 1976,
    "age_certification": "R",
    "runtime_minutes": 114,
    "seasons": None,
    "imdb_score": 8.2,
    "imdb_votes": 808582,
    "genre_ids": ["drama", "crime"],
    "country_codes": ["US"],
    "best_of_rank": 37,
}
CREDIT = {
    "person_id": 3748,
    "person_name": "Robert De Niro",
    "credit_role": "actor",
    "character_names": ["Travis Bickle"],
    "billing_order": 1,
}
EVENT_FIELDS = {
    "event_id": None,
    "content_id": "tm84618",
    "started_at": "2024-05-01T20:15:00Z",
    "seconds_watched": 6480,
    "completion_ratio": 0.95,
    "rating": 5,
    "device": "tv",
    "impression_id": 7001,
}
EVENT = {
    **{key: value for key, value in EVENT_FIELDS.items() if key != "impression_id"},
    "event_id": 8412337761,
    "title": "Taxi Driver",
}
RECOMMENDATION = {
    "rank": 1,
    "content_id": "tm127384",
    "title": "Monty Python and the Holy Grail",
    "content_type": "movie",
    "release_year": 1975,
    "score": 0.93,
    "reason": "because you watched Taxi Driver",
}
FILMOGRAPHY_ENTRY = {
    **{key: TITLE_SUMMARY[key] for key in ("content_id", "title", "content_type", "release_year", "imdb_score")},
    "credit_role": "actor",
    "character_names": ["Travis Bickle"],
}
USER_IN = {
    "user_id": 1001,
    "age_band": "25-34",
    "country_code": "US",
    "signup_date": "2024-01-15",
    "plan": "standard",
    "device": "tv",
    "language": "en",
    "attributes": {"referrer": "friend"},
}
RUN = "run-20240501T101500"
MODEL_RUN = {
    "run_id": RUN,
    "model": "ease",
    "status": "published",
    "is_current": True,
    "user_count": 2000,
    "row_count": 40000,
    "metrics": {"precision_at_10": 0.21, "ndcg_at_10": 0.27},
    "parameters": {"l2": 500.0},
    "error": None,
    "started_at": "2024-05-01T10:15:00Z",
    "finished_at": "2024-05-01T10:16:02Z",
    "published_at": "2024-05-01T10:16:02Z",
}
KEY = {"key_id": "3f9a1c0b7d2e", "name": "alice", "role": "analyst"}
ARMS = [
    {"arm": "control", "model": "popularity", "run_id": None, "parameters": {}, "share": 1.0, "is_control": True},
    {"arm": "ease", "model": "ease", "run_id": None, "parameters": {"l2": 500.0}, "share": 1.0, "is_control": False},
]
EXPERIMENT_IN = {
    "experiment_id": 1,
    "name": "ease against popularity",
    "seed": 42,
    "first_day": "2024-05-01",
    "days": 28,
    "configuration": {"users": 2000, "slate_size": 10},
    "arms": ARMS,
}
EXPERIMENT_OUT = {
    **EXPERIMENT_IN,
    "status": "running",
    "arms": [{**arm, "share": 0.5} for arm in ARMS],
}
ARM_SUMMARY = {
    "arm": "ease",
    "is_control": False,
    "users": 1003,
    "watch_minutes_per_user": 412.5,
    "watch_minutes_ci_low": 398.1,
    "watch_minutes_ci_high": 426.9,
    "lift_watch_minutes": 0.062,
    "lift_ci_low": 0.021,
    "lift_ci_high": 0.104,
    "click_through": 0.071,
    "completions_per_user": 5.4,
    "retention_last_day": 0.81,
    "churn_rate": 0.19,
    "slate_share": 0.5,
    "catalogue_coverage": 0.34,
    "exposure_gini": 0.72,
    "intra_list_diversity": 0.58,
    "homogenization_last_day": 0.12,
    "regret_per_slate": 0.31,
}

EXAMPLES: dict[str, dict[str, Any]] = {
    "TitleSummary": TITLE_SUMMARY,
    "TitleDetail": {
        **TITLE_SUMMARY,
        "imdb_id": "tt0075314",
        "genres": [{"code": "drama", "name": "Drama"}, {"code": "crime", "name": "Crime"}],
        "countries": [{"code": "US", "name": "United States"}],
        "credits": [CREDIT],
        "rankings": [{"ranking_list": "best_movies", "list_rank": 37}],
    },
    "Credit": CREDIT,
    "Ranking": {"ranking_list": "best_movies", "list_rank": 37},
    "NamedCode": {"code": "drama", "name": "Drama"},
    "SimilarTitle": {
        "content_id": "tm127384",
        "title": "Monty Python and the Holy Grail",
        "content_type": "movie",
        "release_year": 1975,
        "similarity": 0.41,
        "co_viewers": 57,
    },
    "PersonSummary": {"person_id": 3748, "person_name": "Robert De Niro", "titles": 5},
    "FilmographyEntry": FILMOGRAPHY_ENTRY,
    "PersonDetail": {"person_id": 3748, "person_name": "Robert De Niro", "filmography": [FILMOGRAPHY_ENTRY]},
    "Genre": {"genre_id": "drama", "genre_name": "Drama", "titles": 2968},
    "Country": {
        "country_code": "US",
        "country_name": "United States",
        "titles": 2323,
        "movies": 1598,
        "shows": 725,
        "avg_imdb_score": 6.4,
    },
    "UserIn": USER_IN,
    "EventFields": EVENT_FIELDS,
    "EventIn": {**EVENT_FIELDS, "user_id": 1001},
    "RatingIn": {"content_id": "tm84618", "rating": 5, "rated_at": "2024-05-01T22:10:00Z", "impression_id": 7001},
    "WriteResult": {
        "kind": "viewing_events",
        "batch_id": "viewing_events-5d41402abc4b2a76b9719d91",
        "rows": 1,
        "written": True,
    },
    "Event": EVENT,
    "UserDetail": {
        **USER_IN,
        "sessions": 1,
        "titles_watched": 1,
        "hours_watched": 1.8,
        "ratings_given": 1,
        "last_session_at": "2024-05-01T20:15:00Z",
        "recent_events": [EVENT],
    },
    "Recommendation": RECOMMENDATION,
    "Recommendations": {
        "user_id": 1001,
        "run_id": RUN,
        "model": "ease",
        "published_at": "2024-05-01T10:16:02Z",
        "items": [RECOMMENDATION],
    },
    "ModelRun": MODEL_RUN,
    "RunStart": {"model": "ease", "parameters": {"l2": 500.0}, "data_snapshot": {"events": 412345}},
    "RunRows": {"run_id": RUN, "rows": 40000, "users": 2000},
    "RunPublish": {"metrics": {"precision_at_10": 0.21}, "timings": {"fit_s": 12.5}, "current": True},
    "RunFail": {"error": "training ran out of memory"},
    "SqlQuery": {
        "sql": "select title, imdb_score from marts.catalogue order by imdb_score desc limit 2",
        "format": "json",
    },
    "SqlColumn": {"name": "title", "type": "text"},
    "SqlResult": {
        "columns": [{"name": "title", "type": "text"}, {"name": "imdb_score", "type": "numeric"}],
        "rows": [["Breaking Bad", 9.5], ["Avatar: The Last Airbender", 9.3]],
        "row_count": 2,
        "truncated": False,
        "truncated_by": None,
        "elapsed_ms": 3.1,
    },
    "Health": {"status": "ok", "database": "ok", "current_run": RUN},
    "KeyCreate": {"role": "analyst", "name": "alice"},
    "KeyCreated": {**KEY, "key": "nwk_3f9a1c0b7d2e_Vq3x9mK2cS7pB1nR8tYwZ4hL0aD6fG5jE2uI9oP3kM"},
    "KeyInfo": {**KEY, "created_at": "2024-05-01T09:00:00Z", "revoked_at": None},
    "ArmIn": ARMS[1],
    "ExperimentIn": EXPERIMENT_IN,
    "ArmOut": EXPERIMENT_OUT["arms"][1],
    "ExperimentOut": EXPERIMENT_OUT,
    "ArmSummary": ARM_SUMMARY,
    "ExperimentDetail": {
        **EXPERIMENT_OUT,
        "summary": [{**ARM_SUMMARY, "arm": "control", "is_control": True}, ARM_SUMMARY],
    },
    "ImpressionIn": {
        "impression_id": 7001,
        "user_id": 1001,
        "content_id": "tm84618",
        "experiment_id": 1,
        "arm": "ease",
        "run_id": None,
        "slate_id": 501,
        "position": 1,
        "shown_at": "2024-05-01T20:10:00Z",
    },
    "UserArm": {"user_id": 1001, "arm": "ease"},
    "Assignments": {"experiment_id": 1, "written": 1, "users": [{"user_id": 1001, "arm": "ease"}]},
}
# the body of PUT /runs/{run_id}/recommendations in CSV
RECOMMENDATIONS_CSV = "user_id,content_id,score,rank,reason\n1001,tm127384,0.93,1,because you watched Taxi Driver\n"
PAGE = {"total": 1, "limit": 20, "offset": 0}


def example(model: type) -> dict[str, Any] | None:
    """The example of a schema class; a ``Page[Item]``'s is a page of one item's example (None if it has none)."""
    generic = getattr(model, "__pydantic_generic_metadata__", {"origin": None})
    if generic["origin"] is not None:
        item = EXAMPLES.get(generic["args"][0].__name__)
        return None if item is None else {**PAGE, "items": [item]}
    return EXAMPLES.get(model.__name__)
