"""Matrix factorization for implicit feedback: implicit's AlternatingLeastSquares (Hu, Koren & Volinsky, 2008).

The confidence of an interaction is ``alpha * weight`` after an optional reweighting
of the user x item matrix: ``bm25`` or ``tfidf`` (implicit's, which damp heavy users
and popular items) or ``none``. Scores are dot products of user and item factors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import scipy.sparse as sp
from implicit.als import AlternatingLeastSquares
from implicit.nearest_neighbours import bm25_weight, tfidf_weight
from threadpoolctl import threadpool_limits

from recommender.errors import InvalidArgumentError
from recommender.ml.algorithms.base import Recommender
from recommender.warehouse import progress

WEIGHTINGS = ("none", "bm25", "tfidf")


def reweight(matrix: sp.csr_matrix, weighting: str, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """``matrix`` (users x items) reweighted by ``weighting``: one of ``WEIGHTINGS``."""
    if weighting not in WEIGHTINGS:
        raise InvalidArgumentError(f"unknown weighting {weighting!r}; choose one of: {', '.join(WEIGHTINGS)}")
    if weighting == "none":
        return matrix
    # implicit weights rows of an items x users matrix; ours are users
    weighted = bm25_weight(matrix.T, K1=k1, B=b) if weighting == "bm25" else tfidf_weight(matrix.T)
    return weighted.T.tocsr().astype(np.float32)


class ALS(Recommender):
    """Parameters: ``factors``, ``regularization``, ``alpha`` (confidence scale), ``iterations``,
    ``weighting`` (none, bm25, tfidf), ``random_state``; implicit's CPU solver on all cores, or its GPU one with
    ``use_gpu=True`` where implicit was built with CUDA. The defaults were chosen on ML-100k validation splits
    (see ``recommender.ml.algorithms``): the alpha / regularization ratio matters most."""

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 60.0,
        alpha: float = 10.0,
        iterations: int = 15,
        weighting: str = "none",
        random_state: int = 42,
        use_gpu: bool = False,
    ) -> None:
        if weighting not in WEIGHTINGS:
            raise InvalidArgumentError(f"unknown weighting {weighting!r}; choose one of: {', '.join(WEIGHTINGS)}")
        super().__init__(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            weighting=weighting,
            random_state=random_state,
            use_gpu=use_gpu,
        )
        self.start: tuple[ALS, int] | None = None  # (factors, sweeps) of a warm start: see warm_start

    @contextmanager
    def warm_start(self, start: ALS, iterations: int) -> Iterator[ALS]:
        """Within the block, a fit runs ``iterations`` sweeps from ``start``'s factors rather than random ones.

        Users and items ``start`` knows begin at its factors, the others as implicit
        initializes them. Refitting on a little more data or with another penalty (a
        tuning's trials, its validation part added back) converges in a few sweeps where a
        random start needs all of them. A GPU model's fit starts cold, with all its iterations.
        """
        self.start = None if self.params["use_gpu"] else (start, iterations)
        try:
            yield self
        finally:
            self.start = None

    def _fit(self, matrix: sp.csr_matrix) -> None:
        params = {key: value for key, value in self.params.items() if key != "weighting"}
        # implicit parallelizes itself; a multi-threaded BLAS underneath only oversubscribes the cores.
        # The constructor checks the BLAS threads (and warns once), so it is built inside the limit too.
        with threadpool_limits(limits=1, user_api="blas"):
            self.model = AlternatingLeastSquares(**params, calculate_training_loss=False)
            if self.start is not None:
                self._start_from(*self.start)
            # implicit's own bar (show_progress) would redraw in place in a log too: ours prints lines there
            with progress.Bar(self.model.iterations, "als", "iterations") as counter:
                self.model.fit(
                    reweight(matrix, self.params["weighting"]),
                    show_progress=False,
                    callback=lambda _iteration, _seconds, _loss: counter.update(),
                )
        model = self.model.to_cpu() if self.params["use_gpu"] else self.model
        self.user_factors = np.asarray(model.user_factors, dtype=np.float32)
        self.item_factors = np.asarray(model.item_factors, dtype=np.float32)

    def _start_from(self, start: ALS, iterations: int) -> None:
        """Set implicit's initial factors to ``start``'s where it knows the user or item, and its iterations."""
        rng = np.random.default_rng(self.params["random_state"])
        for side, index, known, factors in (
            ("user_factors", self.user_index, start.user_index, start.user_factors),
            ("item_factors", self.item_index, start.item_index, start.item_factors),
        ):
            initial = rng.random((len(index), self.params["factors"]), dtype=np.float32) * 0.01  # as implicit's
            positions = known.get_indexer(index)
            found = positions >= 0
            initial[found] = factors[positions[found]]
            setattr(self.model, side, initial)
        self.model.iterations = iterations

    def _scores(self, rows: np.ndarray, matrix_rows: sp.csr_matrix) -> np.ndarray:
        return self.user_factors[rows] @ self.item_factors.T
