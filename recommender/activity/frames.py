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
# also the app table each kind is written to
BATCH_KINDS = ("users", "viewing_events", "ratings", "assignments", "impressions", "slate_utilities")
EXPERIMENT_STATUSES = ("running", "finished", "failed")
ARM_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"  # an arm's name: lower case, as in a URL or a column
MAX_POSITION = 100  # the longest slate


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
    impression_id: Series[pd.Int64Dtype] = pa.Field(nullable=True, required=False)  # the impression it followed

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
    impression_id: Series[pd.Int64Dtype] = pa.Field(nullable=True, required=False)  # the impression it followed

    class Config:
        strict = True
        coerce = True
        ordered = False


class AssignmentBatch(pa.DataFrameModel):
    """One row per user in an experiment: the arm the user sees (``recommender.activity.experiments.assign``)."""

    experiment_id: Series[int] = pa.Field(gt=0)
    user_id: Series[int] = pa.Field(gt=0)
    arm: Series[str] = pa.Field(str_matches=ARM_PATTERN)
    assigned_at: Series[pd.DatetimeTZDtype] = pa.Field(
        ge=EARLIEST, lt=TOO_LATE, dtype_kwargs={"unit": "us", "tz": "UTC"}
    )

    class Config:
        strict = True
        coerce = True
        ordered = False
        unique = ("experiment_id", "user_id")


class ImpressionBatch(pa.DataFrameModel):
    """One row per title shown: user ``user_id`` saw ``content_id`` at ``position`` (1 = first) of slate ``slate_id``
    at ``shown_at`` (UTC). In an experiment, ``experiment_id`` and ``arm`` say which variant showed it (the user's
    assigned arm); ``run_id`` is the published run whose recommendations were shown (None: scored live)."""

    impression_id: Series[int] = pa.Field(unique=True)
    user_id: Series[int] = pa.Field(gt=0)
    content_id: Series[str] = pa.Field(str_matches=CONTENT_ID_PATTERN)
    experiment_id: Series[pd.Int64Dtype] = pa.Field(gt=0, nullable=True)
    arm: Series[str] = pa.Field(str_matches=ARM_PATTERN, nullable=True)
    run_id: Series[str] = pa.Field(nullable=True, str_length={"min_value": 1, "max_value": 100})
    slate_id: Series[int]
    position: Series[pd.Int16Dtype] = pa.Field(ge=1, le=MAX_POSITION)
    shown_at: Series[pd.DatetimeTZDtype] = pa.Field(ge=EARLIEST, lt=TOO_LATE, dtype_kwargs={"unit": "us", "tz": "UTC"})

    class Config:
        strict = True
        coerce = True
        ordered = False
        unique = ("slate_id", "position")

    @pa.dataframe_check(error="experiment_id and arm go together: both or neither")
    @classmethod
    def experiment_with_arm(cls, frame: pd.DataFrame) -> pd.Series:
        return frame["experiment_id"].isna() == frame["arm"].isna()


class SlateUtilityBatch(pa.DataFrameModel):
    """One row per slate a simulator showed: its mean true utility to the user (the hidden taste), and that of
    the best slate of the same size (the oracle's). Regret is ``oracle_utility - slate_utility``."""

    slate_id: Series[int] = pa.Field(unique=True)
    experiment_id: Series[int] = pa.Field(gt=0)
    user_id: Series[int] = pa.Field(gt=0)
    slate_utility: Series[float]
    oracle_utility: Series[float]

    class Config:
        strict = True
        coerce = True
        ordered = False


USER_COLUMNS = list(UserBatch.to_schema().columns)
EVENT_COLUMNS = list(EventBatch.to_schema().columns)
RATING_COLUMNS = list(RatingBatch.to_schema().columns)
ASSIGNMENT_COLUMNS = list(AssignmentBatch.to_schema().columns)
IMPRESSION_COLUMNS = list(ImpressionBatch.to_schema().columns)
SLATE_UTILITY_COLUMNS = list(SlateUtilityBatch.to_schema().columns)
