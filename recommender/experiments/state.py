"""What the loop knows of each simulated user as the days go: active or gone, what was watched, how sated by genre."""

from __future__ import annotations

import numpy as np

from recommender.activity.simulate import Population, affinity
from recommender.experiments.config import LoopConfig


class LoopState:
    """One experiment's state: who is active, what each user has watched, how sated each is by genre."""

    def __init__(self, people: Population, arm_of: np.ndarray, config: LoopConfig) -> None:
        self.people, self.config, self.arm_of = people, config, arm_of
        catalogue = people.catalogue
        n, titles = len(people.users), len(catalogue.content_ids)
        self.active = np.ones(n, dtype=bool)
        self.streak = np.zeros(n, dtype=np.int64)
        self.seen = np.zeros((n, titles), dtype=bool)
        self.satiety = np.zeros((n, len(catalogue.genres)), dtype=np.float32)
        counts = catalogue.genre_matrix.sum(axis=1, keepdims=True)
        self.genre_share = catalogue.genre_matrix / np.maximum(counts, 1)  # each title spreads 1 over its genres
        self.run_candidates = np.full((n, config.candidates), -1, dtype=np.int64)
        self.oracle = self._oracle_candidates()

    def _oracle_candidates(self, chunk: int = 2000) -> np.ndarray:
        """Each user's top titles by true utility (fixed: the hidden taste does not change)."""
        people, m = self.people, self.config.candidates
        found = np.empty((len(people.users), m), dtype=np.int64)
        for begin in range(0, len(people.users), chunk):
            rows = slice(begin, begin + chunk)
            liking = affinity(people.genre_taste[rows], people.country_taste[rows], people.catalogue)
            utility = self.config.choice.true_utility(liking, people.catalogue.popularity[None, :])
            top = np.argpartition(-utility, m - 1, axis=1)[:, :m]
            order = np.take_along_axis(utility, top, axis=1).argsort(axis=1)[:, ::-1]
            found[rows] = np.take_along_axis(top, order, axis=1)
        return found

    def consume(self, rows: np.ndarray, titles: np.ndarray) -> None:
        self.seen[rows, titles] = True
        np.add.at(self.satiety, rows, self.genre_share[titles])

    def utility(self, rows: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """True utility of each slate position (NaN where the slate is shorter)."""
        shown = slates >= 0
        titles = np.where(shown, slates, 0)
        pairs = np.repeat(rows, slates.shape[1])
        liking = self.people.affinity(pairs, titles.ravel()).reshape(slates.shape)
        value = self.config.choice.true_utility(liking, self.people.catalogue.popularity[titles])
        return np.where(shown, value, np.nan)

    def sated(self, rows: np.ndarray, slates: np.ndarray) -> np.ndarray:
        titles = np.where(slates >= 0, slates, 0)
        return np.einsum("sg,spg->sp", self.satiety[rows], self.genre_share[titles])
