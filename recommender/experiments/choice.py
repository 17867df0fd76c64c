"""How a simulated user responds to a slate: a multinomial logit over the slate and an outside option.

The utility of title t at position p (1 = first) to user u is

    v = taste * ln(affinity(u, t)) + popularity * popularity(t)      the true utility (what the oracle ranks by)
        - satiation * mean over t's genres of S(u, g)                  novelty: a genre watched a lot tempts less
        - position_bias * log2(1 + p)                                  position bias (0: the order is not seen)
        + Gumbel noise

and the outside option (watch nothing from the slate; organic viewing goes on regardless)
has utility ``outside`` + Gumbel noise. The user picks the largest: a title of the slate
(a click) or nothing. S(u, g) counts the titles of genre g the user watched, each day
multiplied by ``satiation_decay``, so a genre binged recently tempts less for a while.

A user leaves (churns) on a day with probability ``churn_base + churn_per_day * streak``,
where ``streak`` counts the days in a row whose slate the user passed over.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ChoiceModel:
    taste: float = 2.2  # weight of ln(affinity), as the open-loop simulator picks titles
    popularity: float = 1.0  # weight of the title's popularity (votes, score, recency)
    position_bias: float = 0.8  # utility lost per doubling of the position
    satiation: float = 0.6  # utility lost per recent title of the same genre
    satiation_decay: float = 0.75  # share of a genre's satiation left the next day
    outside: float = 3.5  # utility of watching nothing from the slate
    churn_base: float = 0.0  # daily churn probability with a good slate yesterday
    churn_per_day: float = 0.01  # added per day in a row without a click

    def true_utility(self, affinity: np.ndarray, popularity: np.ndarray) -> np.ndarray:
        """What a title is worth to a user by the hidden taste: the oracle's ranking and the regret's unit."""
        return self.taste * np.log(affinity) + self.popularity * popularity

    def choose(
        self, rng: np.random.Generator, utility: np.ndarray, satiety: np.ndarray, shown: np.ndarray
    ) -> np.ndarray:
        """Each row's pick: the column index of the title chosen, or -1 for the outside option.

        ``utility`` and ``satiety`` are slates x positions (true utility; mean genre satiation);
        ``shown`` is False where a slate is shorter than the others.
        """
        positions = np.arange(1, utility.shape[1] + 1)
        value = utility - self.satiation * satiety - self.position_bias * np.log2(1 + positions)[None, :]
        value = np.where(shown, value + rng.gumbel(size=value.shape), -np.inf)
        outside = self.outside + rng.gumbel(size=len(value))
        best = value.argmax(axis=1)
        return np.where(value[np.arange(len(value)), best] > outside, best, -1)

    def churns(self, rng: np.random.Generator, streak: np.ndarray) -> np.ndarray:
        """Which users leave today, given their days in a row without a click."""
        return rng.random(len(streak)) < np.minimum(1.0, self.churn_base + self.churn_per_day * streak)
