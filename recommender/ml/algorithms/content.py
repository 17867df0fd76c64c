"""Content-based: titles described by their catalogue features, users by the titles they watched.

Each item becomes a TF-IDF weighted, L2-normalized bag of tokens built from
``features`` (one row per item, indexed by item id): a list-valued column adds one
token per element (``genre_ids=drama``), a scalar column one token
(``decade=1990``). A user's profile is the interaction-weighted sum of their items'
vectors; an item's score is its cosine with the profile. Items in ``features`` that
nobody has interacted with yet are scored too, so new titles can be recommended.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.errors import InvalidArgumentError
from recommender.ml.algorithms.base import Recommender


def token_matrix(features: pd.DataFrame, columns: Sequence[str]) -> sp.csr_matrix:
    """Items x tokens, TF-IDF weighted and L2-normalized rows, for the rows of ``features``."""
    rows, tokens = [], []
    for column in columns:
        values = features[column]
        is_list = values.map(lambda v: isinstance(v, list | tuple | np.ndarray))
        exploded = values[is_list].explode().dropna()
        scalar = values[~is_list].dropna()
        for series in (exploded, scalar):
            rows.append(features.index.get_indexer(series.index))
            tokens.append(column + "=" + series.astype(str).to_numpy(dtype=object))
    row = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    codes, vocabulary = pd.factorize(np.concatenate(tokens) if tokens else np.zeros(0, dtype=object))
    counts = sp.csr_matrix((np.ones(len(row), dtype=np.float32), (row, codes)), shape=(len(features), len(vocabulary)))
    counts.data[:] = 1  # a token counts once per item
    document_frequency = np.asarray((counts > 0).sum(axis=0)).ravel()
    idf = np.log((1 + len(features)) / (1 + document_frequency)) + 1
    weighted = counts @ sp.diags(idf.astype(np.float32))
    norms = np.sqrt(np.asarray(weighted.multiply(weighted).sum(axis=1)).ravel())
    return (sp.diags(1 / np.maximum(norms, 1e-12)) @ weighted).tocsr().astype(np.float32)


class Content(Recommender):
    """Parameters: ``features`` (DataFrame indexed by item id), ``columns`` (default: all of them)."""

    def __init__(self, features: pd.DataFrame | None = None, columns: Sequence[str] | None = None) -> None:
        if features is None:
            raise InvalidArgumentError(
                "the content model needs features: a DataFrame indexed by item id (one row per item)"
            )
        super().__init__(columns=list(columns) if columns is not None else list(features.columns))
        self.features = features

    def fit(self, interactions: pd.DataFrame) -> Content:
        super().fit(interactions)
        # titles nobody has watched yet join the item index (after the watched ones)
        self.extend_items(self.features.index.difference(self.item_index, sort=False))
        known = self.features.reindex(self.item_index)
        self.item_vectors = token_matrix(known, self.params["columns"])  # items x tokens
        return self

    def _fit(self, matrix: sp.csr_matrix) -> None:
        """Nothing to learn before the items are known; ``fit`` builds the item vectors."""

    def _scores(self, rows: np.ndarray, matrix_rows: sp.csr_matrix) -> np.ndarray:
        profiles = (matrix_rows @ self.item_vectors).toarray()
        profiles /= np.maximum(np.linalg.norm(profiles, axis=1, keepdims=True), 1e-12)
        return np.asarray(self.item_vectors @ profiles.T).T
