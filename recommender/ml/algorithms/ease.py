"""EASE (Steck, 2019): a closed-form linear item-item model, ``B = I - P / diag(P)`` with ``P = (X'X + L)^-1``.

One dense items x items inverse, whose cost grows with the cube of the catalogue. So
beyond ``max_items`` items (default 6,000: the Netflix export's 5.8k titles stay whole)
EASE works on the ``max_items`` items with the most interactions: a user's history on
the other items is ignored, and those items score the row's minimum, below every kept
item. A blend then ranks them by its other components. Always in float32 (float64 gave
ML-100k's figures exactly, at 1.6 times the inverse's time). Two optional refinements:

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

MAX_ITEMS = 6000  # 6k x 6k float32: 144 MB a matrix, a Cholesky inverse in seconds
GRAM_BLOCK = 1 << 25  # matrix cells densified at a time for the Gram (128 MB of float32)


def spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a symmetric positive definite ``matrix`` (float32 or float64, kept), through its Cholesky factor.

    Some three times faster than ``np.linalg.inv`` (LU) here: the regularized Gram is SPD
    whenever ``l2`` > 0. Falls back to LU when the factorization fails (``l2`` = 0 and a
    singular Gram makes both fail; LU then raises ``LinAlgError``).
    """
    potrf, potri = la.get_lapack_funcs(("potrf", "potri"), (matrix,))
    factor, info = potrf(matrix, lower=False, clean=True)  # clean: the lower triangle zero
    if info == 0:
        inverse, info = potri(factor, lower=False, overwrite_c=True)
    if info != 0:
        return np.linalg.inv(matrix)
    # potri fills the upper triangle only (the lower one is still zero)
    inverse += np.triu(inverse, 1).T
    return inverse


class EASE(Recommender):
    """Parameters: ``l2`` (ridge penalty), ``dropout`` (0..1), ``user_exponent``, ``item_exponent``, ``binary``,
    ``max_items`` (the most items EASE models; see the module docstring).

    The defaults were chosen on ML-100k validation splits (see ``recommender.ml.algorithms``).
    """

    def __init__(
        self,
        l2: float = 500.0,
        dropout: float = 0.0,
        user_exponent: float = 0.5,
        item_exponent: float = 0.25,
        binary: bool = True,
        max_items: int = MAX_ITEMS,
    ) -> None:
        if not 0 <= dropout < 1:
            raise InvalidArgumentError(f"dropout must be in [0, 1), got {dropout}")
        if max_items < 1:
            raise InvalidArgumentError(f"max_items must be 1 or more, got {max_items}")
        super().__init__(
            l2=l2,
            dropout=dropout,
            user_exponent=user_exponent,
            item_exponent=item_exponent,
            binary=binary,
            max_items=max_items,
        )
        self.kept: np.ndarray | None = None  # the modelled items' columns; None: all of them

    def _input(self, matrix: sp.csr_matrix) -> sp.csr_matrix:
        if self.kept is not None:
            matrix = matrix[:, self.kept]
        if not self.params["binary"]:
            return matrix
        binary = matrix.copy()
        binary.data[:] = 1
        return binary

    def gram(self, matrix: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray, float]:
        """The normalized Gram matrix of the modelled items (no penalty yet), their scales, and the penalty's scale.

        Also chooses the modelled items (``kept``); ``solve`` turns the Gram into weights for
        the current ``l2``, so a search over ``l2`` computes the Gram once.
        """
        interactions = np.diff(matrix.tocsc().indptr)
        self.kept = None
        if matrix.shape[1] > self.params["max_items"]:
            self.kept = np.sort(np.argsort(-interactions, kind="stable")[: self.params["max_items"]])
        dtype = np.float32
        x = self._input(matrix).astype(dtype)
        plain = np.asarray(x.multiply(x).sum(axis=0)).ravel()  # diagonal of X'X
        user_scale = np.power(np.maximum(np.asarray(x.sum(axis=1)).ravel(), 1), -self.params["user_exponent"])
        item_scale = np.power(np.maximum(plain, 1), -self.params["item_exponent"]).astype(dtype)
        # sparse x dense, a block of users at a time: the Gram is dense, and a sparse product
        # builds it in slow index arithmetic
        weighted = (sp.diags(user_scale.astype(dtype)) @ x).tocsr()
        gram = np.zeros((x.shape[1], x.shape[1]), dtype=dtype)
        block = max(1, GRAM_BLOCK // x.shape[1])
        for start in range(0, x.shape[0], block):
            gram += x[start : start + block].T @ weighted[start : start + block].toarray()
        gram += gram.T
        gram /= 2
        gram *= item_scale[:, None]
        gram *= item_scale[None, :]
        scale = float(np.diag(gram).mean() / max(plain.mean(), 1e-12))  # keeps l2 on the scale of plain EASE
        return gram, item_scale, scale

    def solve(self, gram: np.ndarray, item_scale: np.ndarray, scale: float) -> None:
        """Weights for the current ``l2`` and ``dropout`` from ``gram`` (which is left as it was)."""
        dropout = self.params["dropout"]
        penalty = self.params["l2"] * scale + dropout / (1 - dropout) * np.diag(gram)
        diagonal = np.diag_indices_from(gram)
        plain = gram[diagonal]  # a copy: restored exactly (subtracting again would round)
        gram[diagonal] += penalty
        try:
            inverse = spd_inverse(gram)
        finally:
            gram[diagonal] = plain
        weights = inverse / -np.diag(inverse)
        del inverse
        weights[diagonal] = 0
        # undo the item scaling: scores are X D^-b B D^b
        weights *= item_scale[:, None]
        weights /= item_scale[None, :]
        self.weights = weights.astype(np.float32, copy=False)  # modelled items x modelled items

    def _fit(self, matrix: sp.csr_matrix) -> None:
        self.solve(*self.gram(matrix))

    def _scores(self, rows: np.ndarray, matrix_rows: sp.csr_matrix) -> np.ndarray:
        scores = np.asarray(self._input(matrix_rows) @ self.weights)
        if self.kept is None:
            return scores
        placed = np.repeat(scores.min(axis=1, keepdims=True), matrix_rows.shape[1], axis=1)
        placed[:, self.kept] = scores
        return placed
