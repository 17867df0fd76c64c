"""Request and response schemas of the experiments' endpoints (experiments, arms, assignments, impressions)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from recommender.activity.frames import MAX_POSITION
from recommender.api.schemas import (
    ArmName,
    Attributes,
    BigInt,
    ContentId,
    ExperimentId,
    Instant,
    Schema,
    Text,
    UserId,
)


class ArmIn(Schema):
    """A variant of an experiment: a model (``model`` and its ``parameters``) or a published run (``run_id``)."""

    model_config = ConfigDict(extra="forbid")

    arm: ArmName = Field(description="its name: lower case letters, digits and _, starting with a letter")
    model: Text | None = Field(default=None, min_length=1, max_length=100, description="a model's name, or none")
    run_id: Text | None = Field(
        default=None, min_length=1, max_length=100, validate_default=True, description="a published run, or none"
    )
    parameters: Attributes = Field(default={}, description="the model's parameters")
    share: float = Field(default=1.0, ge=1e-6, le=1e6, description="its weight in the split (normalised)")
    is_control: bool = Field(default=False, description="the arm the others are compared with (one at most)")

    @field_validator("run_id")
    @classmethod
    def _model_or_run(cls, run_id: str | None, info: ValidationInfo) -> str | None:
        if "model" in info.data and (info.data["model"] is None) == (run_id is None):
            raise ValueError("an arm needs a model or a run_id, not both and not neither")
        return run_id


class ExperimentIn(Schema):
    """A new experiment and its arms (``recommender.activity.Experiment``)."""

    model_config = ConfigDict(extra="forbid")

    experiment_id: ExperimentId
    name: Text = Field(min_length=1, max_length=200)
    seed: BigInt = Field(description="the seed of the experiment's randomness")
    first_day: date = Field(description="the first simulated (or live) day")
    days: int = Field(ge=1, le=3660, description="how many days it runs")
    configuration: Attributes = Field(default={}, description="anything else that defines it (e.g. the simulation)")
    arms: list[ArmIn] = Field(min_length=1, max_length=100)

    @field_validator("arms")
    @classmethod
    def _distinct_arms(cls, arms: list[ArmIn]) -> list[ArmIn]:
        names = [arm.arm for arm in arms]
        if len(set(names)) != len(names):
            raise ValueError(f"arm names must differ: {names}")
        if sum(arm.is_control for arm in arms) > 1:
            raise ValueError("at most one arm is the control")
        return arms


class ArmOut(Schema):
    arm: str
    model: str | None
    run_id: str | None
    parameters: dict[str, Any]
    share: float = Field(description="its share of the users (the shares add up to 1)")
    is_control: bool


class ExperimentOut(Schema):
    experiment_id: int
    name: str
    seed: int
    first_day: date
    days: int
    status: str = Field(description="running, finished or failed")
    configuration: dict[str, Any]
    arms: list[ArmOut]


class ArmSummary(Schema):
    """One arm's row of ``marts.experiment_summary`` (a column the mart lacks is null)."""

    arm: str
    is_control: bool | None = None
    users: int | None = Field(default=None, description="users assigned to the arm")
    watch_minutes_per_user: float | None = None
    watch_minutes_ci_low: float | None = Field(default=None, description="95% confidence interval, low end")
    watch_minutes_ci_high: float | None = Field(default=None, description="95% confidence interval, high end")
    lift_watch_minutes: float | None = Field(default=None, description="relative to the control: 0.05 is 5% more")
    lift_ci_low: float | None = None
    lift_ci_high: float | None = None
    click_through: float | None = Field(default=None, description="clicks per impression")
    completions_per_user: float | None = None
    retention_last_day: float | None = Field(default=None, description="share of users active on the last day")
    churn_rate: float | None = None
    slate_share: float | None = None
    catalogue_coverage: float | None = Field(default=None, description="share of the catalogue ever shown")
    exposure_gini: float | None = Field(default=None, description="0: every title shown alike; 1: one title only")
    intra_list_diversity: float | None = None
    homogenization_last_day: float | None = Field(default=None, description="how alike users' slates are")
    regret_per_slate: float | None = Field(default=None, description="the oracle slate's utility minus the shown one's")


class ExperimentDetail(ExperimentOut):
    summary: list[ArmSummary] = Field(
        description="one row per arm from marts.experiment_summary; empty until dbt build has summarised it"
    )


class ImpressionIn(Schema):
    """A title shown to a user: ``content_id`` at ``position`` of slate ``slate_id``, at ``shown_at``."""

    model_config = ConfigDict(extra="forbid")

    impression_id: int = Field(ge=0, le=2**63 - 1, description="the client's id of it; events cite it")
    user_id: UserId
    content_id: ContentId
    experiment_id: ExperimentId | None = Field(default=None, description="the experiment that showed it, or none")
    arm: ArmName | None = Field(
        default=None, validate_default=True, description="the user's arm in the experiment (with experiment_id)"
    )
    run_id: Text | None = Field(default=None, min_length=1, max_length=100, description="the run whose list it was")
    slate_id: BigInt = Field(description="the slate (one list shown at once) it was part of")
    position: int = Field(ge=1, le=MAX_POSITION, description="1 is the first")
    shown_at: Instant

    @field_validator("arm")
    @classmethod
    def _arm_with_experiment(cls, arm: str | None, info: ValidationInfo) -> str | None:
        if "experiment_id" in info.data and (info.data["experiment_id"] is None) != (arm is None):
            raise ValueError("experiment_id and arm go together: both or neither")
        return arm


class UserArm(Schema):
    user_id: int
    arm: str


class Assignments(Schema):
    experiment_id: int
    written: int = Field(description="users assigned by this request; the others were assigned before")
    users: list[UserArm] = Field(description="each user's arm, in the order asked")
