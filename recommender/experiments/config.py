"""What an experiment run is asked to do (``LoopConfig``) and what it did (``LoopResult``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import Any

from recommender.activity.frames import MAX_POSITION
from recommender.activity.simulate import SimulationConfig
from recommender.errors import InvalidArgumentError
from recommender.experiments.arms import ArmSpec, parse_arms
from recommender.experiments.choice import ChoiceModel

DEFAULT_ARMS = "default,popularity,random,oracle"


@dataclass(frozen=True)
class LoopConfig:
    arms: tuple[ArmSpec, ...] = parse_arms(DEFAULT_ARMS)
    users: int = 10_000
    days: int = 14
    retrain_every: int = 7  # 0: each trained arm is fitted once, on day 0
    seed: int = 7
    warmup_days: int = 14  # organic viewing before day 0, the arms' first training data
    slate_size: int = 10  # 0: no slates, the open-loop simulator
    candidates: int = 100  # titles a trained arm's run holds per user, to fill slates with unwatched ones
    start: date = SimulationConfig.start  # the warm-up's first day; day 0 is warmup_days later
    control: str | None = None  # the arm the others are compared with (default: the first)
    choice: ChoiceModel = field(default_factory=ChoiceModel)

    def __post_init__(self) -> None:
        bounds = {
            "users": (self.users, 1, 10_000_000),
            "days": (self.days, 1, 3660),
            "retrain_every": (self.retrain_every, 0, 3660),
            "warmup_days": (self.warmup_days, 1, 3660),
            "slate_size": (self.slate_size, 0, MAX_POSITION),
            "candidates": (self.candidates, max(self.slate_size, 1), 1000),
        }
        wrong = [
            f"{name} must be {low} to {high}, not {value}"
            for name, (value, low, high) in bounds.items()
            if not low <= value <= high
        ]
        if self.control is not None and self.control not in [arm.name for arm in self.arms]:
            wrong.append(f"control {self.control!r} is not one of the arms {[arm.name for arm in self.arms]}")
        if wrong:
            raise InvalidArgumentError("; ".join(wrong))

    @property
    def first_day(self) -> date:
        return self.start + timedelta(days=self.warmup_days)

    def simulation(self, first_user_id: int) -> SimulationConfig:
        """The open-loop simulation the loop's users and organic viewing come from."""
        return SimulationConfig(
            users=self.users,
            days=self.warmup_days + self.days,
            seed=self.seed,
            start=self.start,
            first_user_id=first_user_id,
        )

    def configuration(self) -> dict[str, Any]:
        """What app.experiments records beside the arms."""
        settings = asdict(self)
        settings.pop("arms")
        return {**settings, "start": self.start.isoformat()}


@dataclass(frozen=True)
class LoopResult:
    experiment_id: int
    users: int
    slates: int
    clicks: int
    events: int
    churned: int
    runs: dict[str, list[str]]  # arm -> the runs it published, in order
    seconds: dict[str, float]  # simulate (the loop's own work), write, dbt, train

    def __str__(self) -> str:
        ctr = self.clicks / self.slates if self.slates else 0.0
        return (
            f"experiment {self.experiment_id}: {self.users:,} users, {self.slates:,} slates shown,"
            f" {ctr:.1%} clicked, {self.events:,} viewing events, {self.churned:,} users left;"
            f" {sum(len(runs) for runs in self.runs.values())} runs trained;"
            f" {sum(self.seconds.values()):.1f} s"
            f" ({', '.join(f'{step} {seconds:.1f} s' for step, seconds in self.seconds.items())})"
        )
