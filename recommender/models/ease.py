"""EASE (Steck, 2019): a closed-form linear item-item model, ``B = I - P / diag(P)`` with ``P = (X'X + L)^-1``.

One dense items x items inverse, so it suits catalogues up to some 20k items (the
Netflix export has 5.8k titles: 130 MB in float32). ``dropout`` adds the emphasized
denoising term of Steck's EDLAE (2020): the diagonal penalty grows with item popularity,
which keeps popular items from explaining themselves through each other.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from recommender.models.base import Recommender


class EASE(Recommender):
    """Parameters: ``l2`` (ridge penalty, default 400), ``dropout`` (0..1, default 0), ``binary`` (default True)."""

    name = "ease"

    def __init__(self, l2: float = 400.0, dropout: float = 0.0, binary: bool = True) -> None:
        super().__init__(l2=l2, dropout=dropout, binary=binary)

    def _input(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        if not self.params["binary"]:
            return matrix
        binary = matrix.copy()
        binary.data[:] = 1
        return binary

    def _fit(self, matrix: sp.csr_matrix) -> None:
        x = self._input(matrix).astype(np.float64)
        gram = (x.T @ x).toarray()
        diagonal = np.diag_indices_from(gram)
        dropout = self.params["dropout"]
        gram[diagonal] += self.params["l2"] + dropout / (1 - dropout) * gram[diagonal]
        inverse = np.linalg.inv(gram)
        weights = inverse / -np.diag(inverse)
        weights[diagonal] = 0
        self.weights = weights.astype(np.float32)  # items x items

    def _scores(self, rows: np.ndarray, matrix_rows: sp.csr_matrix) -> np.ndarray:
        return np.asarray(self._input(matrix_rows) @ self.weights)
