"""Item-based nearest neighbours: implicit's cosine, BM25 or TF-IDF item-item recommenders.

The score of an item is the sum of its similarities to the user's items, over each
item's ``neighbours`` most similar items.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from implicit.nearest_neighbours import ItemItemRecommender, normalize

from recommender.errors import InvalidArgumentError
from recommender.ml.algorithms.als import reweight
from recommender.ml.algorithms.base import Recommender


def _weighted(matrix: sp.csr_matrix, similarity: str) -> sp.csr_matrix:
    """``matrix`` (users x items) weighted as implicit's Cosine/BM25/TFIDFRecommender weight it before fitting.

    Done here, not by those classes, because they hand implicit's own fit a COO matrix,
    which then warns (ParameterWarning) on every fit; ours is converted to CSR first.
    """
    if similarity == "bm25":
        return reweight(matrix, "bm25")  # BM25Recommender's defaults, K1 1.2 and B 0.75
    weighted = matrix if similarity == "cosine" else reweight(matrix, "tfidf")
    return normalize(weighted.T).T.tocsr()


SIMILARITIES = ("cosine", "bm25", "tfidf")


class ItemKNN(Recommender):
    """Parameters: ``neighbours`` (per item, default 100), ``similarity`` (cosine, bm25, tfidf)."""

    def __init__(self, neighbours: int = 100, similarity: str = "cosine") -> None:
        if similarity not in SIMILARITIES:
            raise InvalidArgumentError(f"unknown similarity {similarity!r}; choose one of: {', '.join(SIMILARITIES)}")
        super().__init__(neighbours=neighbours, similarity=similarity)

    def _fit(self, matrix: sp.csr_matrix) -> None:
        model = ItemItemRecommender(K=self.params["neighbours"])
        model.fit(_weighted(matrix, self.params["similarity"]), show_progress=False)
        self.similarity = model.similarity.tocsr().astype(np.float32)  # items x items

    def _scores(self, rows: np.ndarray, matrix_rows: sp.csr_matrix) -> np.ndarray:
        return (matrix_rows @ self.similarity).toarray()
