"""A weighted blend of recommenders: per-user standardized scores, added with weights.

Each component is fitted on the same interactions. For every user, a component's
scores are standardized over the items (mean 0, deviation 1) so components on
different scales mix fairly, then added with their weight. A component listed in
``history_shrink`` counts for users with little history and fades for the others:
its weight is multiplied by ``s / (s + n)`` for a user with ``n`` items (Bayesian
shrinkage, as for a prior worth ``s`` interactions). Items one component does not
score (a content model's unwatched titles) get that component's per-user minimum.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.errors import InvalidArgumentError
from recommender.ml.algorithms.base import Recommender


def standardize(scores: np.ndarray) -> np.ndarray:
    """Each row to mean 0 and standard deviation 1 (rows with no spread become 0)."""
    centred = scores - scores.mean(axis=1, keepdims=True)
    spread = centred.std(axis=1, keepdims=True)
    return np.divide(centred, spread, out=np.zeros_like(centred), where=spread > 0)


class Blend(Recommender):
    """Parameters: ``models`` (name -> fitted-or-not Recommender), ``weights`` (name -> weight),
    ``history_shrink`` (name -> s)."""

    def __init__(
        self,
        models: Mapping[str, Recommender],
        weights: Mapping[str, float],
        history_shrink: Mapping[str, float] | None = None,
    ) -> None:
        unknown = set(weights) ^ set(models)
        if unknown:
            raise InvalidArgumentError(
                f"blend weights and models must name the same components; mismatched: {sorted(unknown)}"
            )
        super().__init__(
            models={name: model.params for name, model in models.items()},
            weights=dict(weights),
            history_shrink=dict(history_shrink or {}),
        )
        self.models = dict(models)

    def fit(self, interactions: pd.DataFrame) -> Blend:
        super().fit(interactions)
        for model in self.models.values():
            model.fit(interactions)
        # every component saw the same users in the same order; some add items of their own (content)
        for model in self.models.values():
            self.extend_items(model.item_index.difference(self.item_index, sort=False))
        self.columns = {name: self.item_index.get_indexer(model.item_index) for name, model in self.models.items()}
        # a component over the blend's own items in its order needs no placing: a scatter over every
        # column costs more than the component's scores on a large catalogue
        self.in_place = {
            name: len(columns) == len(self.item_index) and bool((columns == np.arange(len(columns))).all())
            for name, columns in self.columns.items()
        }
        return self

    def _fit(self, matrix: sp.csr_matrix) -> None:
        """The components are fitted in ``fit``."""

    def _scores(self, rows: np.ndarray, matrix_rows: sp.csr_matrix) -> np.ndarray:
        history = np.diff(matrix_rows.indptr).astype(np.float32)[:, None]
        total = np.zeros((len(rows), len(self.item_index)), dtype=np.float32)
        for name, model in self.models.items():
            columns = self.columns[name]
            own = model.matrix[rows]
            scores = standardize(np.asarray(model._scores(rows, own), dtype=np.float32))
            if self.in_place[name]:
                placed = scores
            else:
                placed = np.repeat(scores.min(axis=1, keepdims=True), len(self.item_index), axis=1)
                placed[:, columns] = scores
            weight = self.params["weights"][name]
            if name in self.params["history_shrink"]:
                shrink = self.params["history_shrink"][name]
                weight = weight * shrink / (shrink + history)
            total += weight * placed
        return total
