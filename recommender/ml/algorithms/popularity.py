"""The baseline every model must beat: the same most-watched items for everyone."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommender.ml.algorithms.base import Recommender


class Popularity(Recommender):
    """Score = share of users who interacted with the item (0..1)."""

    def _fit(self, matrix: sp.csr_matrix) -> None:
        self.share = self.popularity_share()

    def _scores(self, rows: np.ndarray, matrix_rows: sp.csr_matrix) -> np.ndarray:
        return np.broadcast_to(self.share, (len(rows), len(self.share))).copy()
