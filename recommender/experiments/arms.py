"""An experiment's arms as the command line names them, and the slates each arm shows.

An arm is written ``model`` (its own name), ``name=model``, ``name=model:once`` or ``name=run:RUN_ID``:
- a model of ``recommender.ml.algorithms.MODELS`` (``default``, ``popularity``, ``als`` ...) is
  trained on its own users' activity and published (not current) every ``retrain_every`` days
  (with ``:once``, on day 0 only: the same model without the feedback loop); its slates are the
  top of its latest run's recommendations;
- ``oracle`` ranks by the users' hidden tastes (an upper bound), ``random`` shows random titles
  (the floor); both are scored live by the simulator, with no run;
- ``run:RUN_ID`` shows a published run's recommendations as they are, never retrained.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from recommender.activity.frames import ARM_PATTERN
from recommender.errors import InvalidArgumentError
from recommender.ml.algorithms import MODELS

ORACLE, RANDOM = "oracle", "random"
LIVE_SCORED = (ORACLE, RANDOM)


@dataclass(frozen=True)
class ArmSpec:
    name: str
    model: str | None  # a model name, ORACLE or RANDOM; None for a fixed run
    run_id: str | None = None
    once: bool = False  # trained on day 0 only

    @property
    def trained(self) -> bool:
        return self.model is not None and self.model not in LIVE_SCORED

    def retrains(self, day: int, every: int) -> bool:
        """Whether the arm is (re)trained at the start of ``day``."""
        return self.trained and (day == 0 or (not self.once and every > 0 and day % every == 0))

    @classmethod
    def parse(cls, text: str) -> ArmSpec:
        """``model``, ``name=model``, ``name=model:once`` or ``name=run:RUN_ID``; InvalidArgumentError naming
        what is wrong."""
        name, _, what = text.strip().partition("=")
        what = what or name
        if not _is_arm_name(name):
            raise InvalidArgumentError(
                f"arm {text!r}: its name must be lower case letters, digits or _ (at most 40, a letter first)"
            )
        if what.startswith("run:"):
            if not what[4:]:
                raise InvalidArgumentError(f"arm {text!r}: run: needs a run id (python -m recommender runs)")
            return cls(name, None, what[4:])
        what, _, option = what.partition(":")
        if option not in ("", "once"):
            raise InvalidArgumentError(f"arm {text!r}: unknown option {option!r}; the one option is :once")
        if option and what in LIVE_SCORED:
            raise InvalidArgumentError(f"arm {text!r}: {what} is never trained, so :once does not apply")
        if what not in MODELS and what not in LIVE_SCORED:
            raise InvalidArgumentError(
                f"arm {text!r}: unknown model {what!r}; choose one of {', '.join([*MODELS, *LIVE_SCORED])},"
                " or name=run:RUN_ID for a published run"
            )
        return cls(name, what, once=bool(option))


def parse_arms(text: str) -> tuple[ArmSpec, ...]:
    """A comma-separated list of arms; their names must differ."""
    arms = tuple(ArmSpec.parse(part) for part in text.split(",") if part.strip())
    if not arms:
        raise InvalidArgumentError("--arms needs at least one arm, e.g. default,popularity,random,oracle")
    names = [arm.name for arm in arms]
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"arm names must differ: {names}; name copies as name=model")
    return arms


def _is_arm_name(name: str) -> bool:
    return re.fullmatch(ARM_PATTERN, name) is not None


def first_unseen(candidates: np.ndarray, seen: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """For each of ``rows``, the first ``k`` titles of its row of ``candidates`` (title indexes, -1 for none)
    that ``seen`` (users x titles, True where watched) does not mark; -1 where fewer are left."""
    valid = candidates >= 0
    fresh = valid & ~seen[rows[:, None], np.where(valid, candidates, 0)]
    order = np.cumsum(fresh, axis=1)
    keep = fresh & (order <= k)
    slates = np.full((len(rows), k), -1, dtype=np.int64)
    slot_row, slot_column = np.nonzero(keep)
    slates[slot_row, order[slot_row, slot_column] - 1] = candidates[slot_row, slot_column]
    return slates


def random_candidates(rng: np.random.Generator, users: int, titles: int, k: int) -> np.ndarray:
    """``users`` rows of random distinct titles (at least ``k`` candidates each, -1 where a draw repeated)."""
    draws = rng.integers(0, titles, size=(users, 3 * k))
    order = np.argsort(draws, axis=1, kind="stable")
    ordered = np.take_along_axis(draws, order, axis=1)
    repeated_in_order = np.zeros_like(draws, dtype=bool)
    repeated_in_order[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    repeated = np.empty_like(repeated_in_order)
    np.put_along_axis(repeated, order, repeated_in_order, axis=1)
    return np.where(repeated, -1, draws)
