"""What a batch of users, viewing events or ratings looks like: the vocabularies and pandera models.

The app tables (``sql/app.sql``) check the same vocabularies; ``schema.ensure_schema`` renders them there.
"""

from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from recommender.warehouse.identifiers import CONTENT_ID_PATTERN

AGE_BANDS = ("18-24", "25-34", "35-44", "45-54", "55-64", "65+")
PLANS = ("basic", "standard", "premium")
DEVICES = ("tv", "mobile", "tablet", "web")
RATINGS = (1, 2, 3, 4, 5)  # stars
# when a viewing or a rating may be: the years 1900 to 2100 of UTC, as the HTTP API's schemas check them
EARLIEST, TOO_LATE = pd.Timestamp("1900-01-01", tz="UTC"), pd.Timestamp("2101-01-01", tz="UTC")
BATCH_KINDS = ("users", "viewing_events", "ratings")  # also the app table each kind is written to


class UserBatch(pa.DataFrameModel):
    """One row per user. ``attributes`` holds extra fields (a dict per row, or None for none)."""

    user_id: Series[int] = pa.Field(gt=0, unique=True)
    age_band: Series[str] = pa.Field(isin=AGE_BANDS)
    country_code: Series[str] = pa.Field(str_matches=r"^[A-Z]{2}$")
    signup_date: Series[pa.DateTime]
    plan: Series[str] = pa.Field(isin=PLANS)
    device: Series[str] = pa.Field(isin=DEVICES)
    language: Series[str] = pa.Field(str_matches=r"^[a-z]{2}$")
    attributes: Series[object] = pa.Field(nullable=True)

    class Config:
        strict = True
        coerce = True
        ordered = False


class EventBatch(pa.DataFrameModel):
    """One row per viewing session. ``started_at`` is UTC; ``rating`` is optional (1 to 5)."""

    event_id: Series[int] = pa.Field(unique=True)
    user_id: Series[int] = pa.Field(gt=0)
    content_id: Series[str] = pa.Field(str_matches=CONTENT_ID_PATTERN)
    started_at: Series[pd.DatetimeTZDtype] = pa.Field(
        ge=EARLIEST, lt=TOO_LATE, dtype_kwargs={"unit": "us", "tz": "UTC"}
    )
    seconds_watched: Series[int] = pa.Field(ge=0)
    completion_ratio: Series[float] = pa.Field(ge=0, le=1)
    rating: Series[pd.Int16Dtype] = pa.Field(ge=1, le=5, nullable=True)
    device: Series[str] = pa.Field(isin=DEVICES)

    class Config:
        strict = True
        coerce = True
        ordered = False


class RatingBatch(pa.DataFrameModel):
    """One row per rating: user ``user_id`` gave title ``content_id`` ``rating`` stars (1 to 5) at ``rated_at`` (UTC).

    ``rating_id`` is optional when writing (a hash of user, title and ``rated_at``), and so is
    ``rated_at`` (the database's ``now()``). A user may rate a title several times; the
    rating with the latest ``rated_at`` counts.
    """

    rating_id: Series[int] = pa.Field(unique=True)
    user_id: Series[int] = pa.Field(gt=0)
    content_id: Series[str] = pa.Field(str_matches=CONTENT_ID_PATTERN)
    rating: Series[pd.Int16Dtype] = pa.Field(isin=RATINGS)  # isin, not a range: 4.5 stars is refused, not cut to 4
    rated_at: Series[pd.DatetimeTZDtype] = pa.Field(ge=EARLIEST, lt=TOO_LATE, dtype_kwargs={"unit": "us", "tz": "UTC"})

    class Config:
        strict = True
        coerce = True
        ordered = False


USER_COLUMNS = list(UserBatch.to_schema().columns)
EVENT_COLUMNS = list(EventBatch.to_schema().columns)
RATING_COLUMNS = list(RatingBatch.to_schema().columns)
