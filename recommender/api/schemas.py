"""Request and response schemas of the HTTP API (pydantic models).

They are separate from the tables: a response says what a client may rely on, and a
request says what it may send, with the same ranges the database checks.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from recommender.activity import AGE_BANDS, DEVICES, EARLIEST, PLANS, TOO_LATE
from recommender.activity.frames import ARM_PATTERN
from recommender.api.examples import example
from recommender.api.keys import ROLES
from recommender.warehouse.identifiers import CONTENT_ID_PATTERN

Item = TypeVar("Item")
AgeBand = Literal[AGE_BANDS]  # type: ignore[valid-type]
Plan = Literal[PLANS]  # type: ignore[valid-type]
Device = Literal[DEVICES]  # type: ignore[valid-type]
ContentId = Annotated[str, Field(pattern=CONTENT_ID_PATTERN, max_length=20, examples=["tm84618"])]


def _no_nul(value: Any) -> Any:
    try:
        text = json.dumps(value, allow_nan=False)
    except ValueError:
        raise ValueError("numbers must be finite: JSON (and PostgreSQL's jsonb) has no NaN or Infinity") from None
    if "\\u0000" in text:
        raise ValueError("text may not contain NUL (\\u0000) characters: PostgreSQL cannot store them")
    return value


def _plausible(moment: datetime) -> datetime:
    # the instant's year in UTC, as recommender.activity and the database see it, whatever offset it came with
    if not EARLIEST <= moment < TOO_LATE:
        raise ValueError("must be in the years 1900 to 2100 of UTC")
    return moment


# an instant with its UTC offset, in the years a viewing or a rating can have
Instant = Annotated[AwareDatetime, AfterValidator(_plausible)]

# free text from clients, checked for what PostgreSQL refuses in text and jsonb
Text = Annotated[str, AfterValidator(_no_nul)]
Attributes = Annotated[dict[str, Any], AfterValidator(_no_nul)]

# rows to skip in a paged list; bounded so no value overflows the database's bigint
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="items to skip")]
UserId = Annotated[int, Field(gt=0, le=2**63 - 1, examples=[1])]
ExperimentId = Annotated[int, Field(gt=0, le=2**63 - 1, examples=[1])]
ArmName = Annotated[str, Field(pattern=ARM_PATTERN, max_length=40, examples=["control"])]
BigInt = Annotated[int, Field(ge=-(2**63), le=2**63 - 1)]
ImpressionId = Annotated[
    int | None,
    Field(
        ge=0,
        le=2**63 - 1,
        description="the impression (POST /impressions) this followed: shown to this user, of this title; or none",
    ),
]


def _with_example(schema: dict[str, Any], model: type) -> None:
    if (found := example(model)) is not None:
        schema["examples"] = [found]


class Schema(BaseModel):
    """The base of every request and response schema: rows and dataclasses validate by their attributes; the
    JSON schema of each shows its example (``examples``)."""

    model_config = ConfigDict(from_attributes=True, json_schema_extra=_with_example)


class Page(Schema, Generic[Item]):
    """One page of a list: ``items`` from ``offset``, and how many match in all."""

    total: int
    limit: int
    offset: int
    items: list[Item]


class TitleSummary(Schema):
    content_id: str
    title: str | None
    content_type: str
    release_year: int | None
    age_certification: str | None
    runtime_minutes: int | None
    seasons: int | None
    imdb_score: float | None
    imdb_votes: int | None
    genre_ids: list[str]
    country_codes: list[str]
    best_of_rank: int | None


class Credit(Schema):
    person_id: int
    person_name: str
    credit_role: str
    character_names: list[str] | None
    billing_order: int | None


class Ranking(Schema):
    ranking_list: str
    list_rank: int


class NamedCode(Schema):
    code: str
    name: str | None


class TitleDetail(TitleSummary):
    imdb_id: str | None
    genres: list[NamedCode]
    countries: list[NamedCode]
    credits: list[Credit]
    rankings: list[Ranking]


class SimilarTitle(Schema):
    content_id: str
    title: str | None
    content_type: str
    release_year: int | None
    similarity: float
    co_viewers: int = Field(description="users who watched both titles")


class PersonSummary(Schema):
    person_id: int
    person_name: str
    titles: int


class FilmographyEntry(Schema):
    content_id: str
    title: str | None
    content_type: str
    release_year: int | None
    credit_role: str
    character_names: list[str] | None
    imdb_score: float | None


class PersonDetail(Schema):
    person_id: int
    person_name: str
    filmography: list[FilmographyEntry]


class Genre(Schema):
    genre_id: str
    genre_name: str
    titles: int


class Country(Schema):
    country_code: str
    country_name: str | None
    titles: int
    movies: int
    shows: int
    avg_imdb_score: float | None


class UserIn(Schema):
    """A new user, as the simulator writes them."""

    model_config = ConfigDict(extra="forbid")

    user_id: UserId
    age_band: AgeBand
    country_code: str = Field(pattern=r"^[A-Z]{2}$", examples=["US"])
    signup_date: date
    plan: Plan
    device: Device
    language: str = Field(pattern=r"^[a-z]{2}$", examples=["en"])
    attributes: Attributes | None = None


class EventFields(Schema):
    model_config = ConfigDict(extra="forbid")

    event_id: int | None = Field(
        default=None, ge=0, le=2**63 - 1, description="derived from user, title and start when omitted"
    )
    content_id: ContentId
    started_at: Instant
    seconds_watched: int = Field(ge=0, le=2**31 - 1)
    completion_ratio: float = Field(ge=0, le=1)
    rating: int | None = Field(default=None, ge=1, le=5)
    device: Device
    impression_id: ImpressionId = None


class EventIn(EventFields):
    """One viewing session of a user (bulk form: the user is in the body)."""

    user_id: UserId


class RatingIn(Schema):
    model_config = ConfigDict(extra="forbid")

    content_id: ContentId
    rating: int = Field(ge=1, le=5)
    rated_at: Instant | None = Field(default=None, description="when the user rated; omitted: now (the server's clock)")
    impression_id: ImpressionId = None


class WriteResult(Schema):
    kind: str
    batch_id: str
    rows: int
    written: bool = Field(description="false: this exact batch was already written")


class Event(Schema):
    event_id: int
    content_id: str
    title: str | None
    started_at: datetime
    seconds_watched: int
    completion_ratio: float
    rating: int | None
    device: str


class UserDetail(Schema):
    user_id: int
    age_band: str
    country_code: str
    signup_date: date
    plan: str
    device: str
    language: str
    attributes: dict[str, Any]
    sessions: int
    titles_watched: int
    hours_watched: float
    ratings_given: int = Field(
        description="ratings given while viewing plus explicit ratings (app.ratings), re-ratings included"
    )
    last_session_at: datetime | None
    recent_events: list[Event]


class Recommendation(Schema):
    rank: int
    content_id: str
    title: str | None
    content_type: str | None
    release_year: int | None
    score: float
    reason: str


class Recommendations(Schema):
    user_id: int
    run_id: str | None
    model: str | None
    published_at: datetime | None
    items: list[Recommendation]


class ModelRun(Schema):
    run_id: str
    model: str
    status: str
    is_current: bool
    user_count: int | None
    row_count: int | None
    metrics: dict[str, Any]
    parameters: dict[str, Any]
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    published_at: datetime | None


# A run's own checks (model name, sizes, states) are the database's, in predictions' door: one set of rules.


class RunStart(Schema):
    """A new model run: what it is, its parameters and what it trained on."""

    model_config = ConfigDict(extra="forbid")

    model: Text = Field(examples=["ease"], description="1 to 64 letters, digits, _ . : or -")
    parameters: Attributes = {}
    data_snapshot: Attributes = {}


class RunRows(Schema):
    """A run's rows, checked and attached as its partition: ready to publish, not yet current."""

    run_id: str
    rows: int
    users: int


class RunPublish(Schema):
    """What the run measured; ``current`` false leaves it staged (running) for a later publish."""

    model_config = ConfigDict(extra="forbid")

    metrics: Attributes = {}
    timings: Attributes = {}
    current: bool = True


class RunFail(Schema):
    model_config = ConfigDict(extra="forbid")

    error: Text = Field(min_length=1, description="why the run failed (its first 10,000 characters are kept)")


class SqlQuery(Schema):
    model_config = ConfigDict(extra="forbid")

    sql: str = Field(min_length=1, max_length=100_000, examples=["select title, imdb_score from marts.catalogue"])
    format: Literal["json", "csv"] = "json"


class SqlColumn(Schema):
    name: str
    type: str


class SqlResult(Schema):
    columns: list[SqlColumn]
    rows: list[list[Any]]
    row_count: int
    truncated: bool = Field(description="true: there were more rows than the caps let through; the first ones are here")
    truncated_by: Literal["rows", "bytes"] | None = Field(
        default=None,
        description="the cap that cut the answer: rows (NETFLIX_SQL_MAX_ROWS) or bytes (NETFLIX_SQL_MAX_BYTES)",
    )
    elapsed_ms: float


class Health(Schema):
    status: str
    database: str
    current_run: str | None


class KeyCreate(Schema):
    model_config = ConfigDict(extra="forbid")

    role: Literal[ROLES]  # type: ignore[valid-type]
    name: Text = Field(min_length=1, max_length=200)


class KeyCreated(Schema):
    key_id: str
    role: str
    name: str
    key: str = Field(description="shown once: only its hash is stored")


class KeyInfo(Schema):
    key_id: str
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None
