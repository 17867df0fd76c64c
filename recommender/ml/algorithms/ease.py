"""EASE (Steck, 2019): a closed-form linear item-item model, ``B = I - P / diag(P)`` with ``P = (X'X + L)^-1``.

One dense items x items inverse, so it suits catalogues up to some 20k items (the
Netflix export has 5.8k titles: 130 MB in float32). Two optional refinements:

- ``dropout`` adds the emphasized denoising penalty of Steck's EDLAE (2020): the
  diagonal penalty grows with item popularity.
- ``user_exponent`` a and ``item_exponent`` b normalize the Gram matrix to
  ``D_i^-b X' D_u^-a X D_i^-b`` (symmetrized): heavy users' co-occurrences count less,
  and popular items are damped before the regression and restored after it, so the
  penalty ``l2`` (scaled to the normalized diagonal) shrinks all items alike.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg as la
import scipy.sparse as sp

from recommender.errors import InvalidArgumentError
from recommender.ml.algorithms.base import Recommender


def spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive definite ``matrix`` (float64), through its Cholesky factor.

    Some three times faster than ``np.linalg.inv`` (LU) here: the regularized Gram is SPD
    whenever ``l2`` > 0. Falls back to LU when the factorization fails (``l2`` = 0 and a
    singular Gram makes both fail; LU then raises ``LinAlgError``).
    """
    factor, info = la.lapack.dpotrf(matrix, lower=False, clean=False)
    if info == 0:
        inverse, info = la.lapack.dpotri(factor, lower=False)
    if info != 0:
        return np.linalg.inv(matrix)
    # dpotri fills the upper triangle only
    return np.triu(inverse) + np.triu(inverse, 1).T


class EASE(Recommender):
    """Parameters: ``l2`` (ridge penalty), ``dropout`` (0..1), ``user_exponent``, ``item_exponent``, ``binary``.

    The defaults were chosen on ML-100k validation splits (see ``recommender.ml.algorithms``).
    """

    def __init__(
        self,
        l2: float = 500.0,
        dropout: float = 0.0,
        user_exponent: float = 0.5,
        item_exponent: float = 0.25,
        binary: bool = True,
    ) -> None:
        if not 0 <= dropout < 1:
            raise InvalidArgumentError(f"dropout must be in [0, 1), got {dropout}")
        super().__init__(
            l2=l2, dropout=dropout, user_exponent=user_exponent, item_exponent=item_exponent, binary=binary
        )

    def _input(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        if not self.params["binary"]:
            return matrix
        binary = matrix.copy()
        binary.data[:] = 1
        return binary

    def _fit(self, matrix: sp.csr_matrix) -> None:
        x = self._input(matrix).astype(np.float64)
        plain = np.asarray(x.multiply(x).sum(axis=0)).ravel()  # diagonal of X'X
        user_scale = np.power(np.maximum(np.asarray(x.sum(axis=1)).ravel(), 1), -self.params["user_exponent"])
        item_scale = np.power(np.maximum(plain, 1), -self.params["item_exponent"])
        gram = (sp.diags(user_scale) @ x).T @ x
        gram = ((gram + gram.T) / 2).toarray() * np.outer(item_scale, item_scale)
        diagonal = np.diag_indices_from(gram)
        dropout = self.params["dropout"]
        scale = gram[diagonal].mean() / max(plain.mean(), 1e-12)  # keeps l2 on the scale of plain EASE
        gram[diagonal] += self.params["l2"] * scale + dropout / (1 - dropout) * gram[diagonal]
        inverse = spd_inverse(gram)
        weights = inverse / -np.diag(inverse)
        weights[diagonal] = 0
        # undo the item scaling: scores are X D^-b B D^b
        self.weights = (weights * item_scale[:, None] / item_scale[None, :]).astype(np.float32)  # items x items

    def _scores(self, rows: np.ndarray, matrix_rows: sp.csr_matrix) -> np.ndarray:
        return np.asarray(self._input(matrix_rows) @ self.weights)
