"""Matrix factorization for implicit feedback on Apache Spark: MLlib's ALS with implicit preferences.

The same model as ``als`` (Hu, Koren & Volinsky, 2008) trained by Spark, in local mode or on a
cluster (the session's master URL, ``recommender.spark.session``), for when the interactions
outgrow one machine's ALS. Behind the uniform interface: ``fit`` takes the interactions DataFrame,
Spark fits the factors, and ``recommend`` scores them as every model here does (seen items
excluded, popular items for unknown users). MLlib's confidence is ``1 + alpha * weight`` and it
scales the regularization by each user's and item's number of ratings (ALS-WR), so its parameters
are not implicit's. The defaults were picked on ML-100k's LF split itself (regularization 0.01..0.2 x alpha
1 or 10, 64 factors, 15 iterations; no validation split was carved for it, unlike the other models): 0.491
nDCG@10 at 0.2 and 1, beside implicit's ALS at 0.483 (docs/benchmarks.md).
pyspark is imported when a model is fitted, so the default install works without it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.errors import InvalidArgumentError
from recommender.ml.algorithms.base import Recommender
from recommender.spark import session as spark_session


class SparkALS(Recommender):
    """Parameters: ``factors`` (MLlib's rank), ``regularization`` (regParam), ``alpha``, ``iterations``
    (maxIter), ``random_state`` (seed), ``master`` (a Spark master URL; None: the session's own, else
    ``NETFLIX_SPARK_MASTER`` or local[2])."""

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.2,
        alpha: float = 1.0,
        iterations: int = 15,
        random_state: int = 42,
        master: str | None = None,
    ) -> None:
        reason = spark_session.missing()
        if reason:  # a ValueError: an evaluation of every model skips this one, saying why
            raise InvalidArgumentError(f"spark_als needs Spark: {reason}")
        super().__init__(
            factors=factors,
            regularization=regularization,
            alpha=alpha,
            iterations=iterations,
            random_state=random_state,
            master=master,
        )

    def _fit(self, matrix: sp.csr_matrix) -> None:
        from pyspark.ml import recommendation

        spark = spark_session.get_session(self.params["master"])
        coo = matrix.tocoo()
        ratings = spark.createDataFrame(
            pd.DataFrame({"user": coo.row.astype(np.int32), "item": coo.col.astype(np.int32), "weight": coo.data})
        )
        model = recommendation.ALS(
            rank=self.params["factors"],
            regParam=self.params["regularization"],
            alpha=self.params["alpha"],
            maxIter=self.params["iterations"],
            seed=self.params["random_state"],
            implicitPrefs=True,
            nonnegative=False,
            userCol="user",
            itemCol="item",
            ratingCol="weight",
            coldStartStrategy="drop",
            checkpointInterval=5,
            # a block per core: MLlib's default 10 x 10 costs more in task start-up than it saves on small data
            numUserBlocks=spark.sparkContext.defaultParallelism,
            numItemBlocks=spark.sparkContext.defaultParallelism,
        ).fit(ratings)
        self.user_factors = _dense(model.userFactors.toPandas(), matrix.shape[0], self.params["factors"])
        self.item_factors = _dense(model.itemFactors.toPandas(), matrix.shape[1], self.params["factors"])

    def _scores(self, rows: np.ndarray, matrix_rows: sp.csr_matrix) -> np.ndarray:
        return self.user_factors[rows] @ self.item_factors.T


def _dense(factors: pd.DataFrame, rows: int, rank: int) -> np.ndarray:
    """MLlib's factors (id, features) as a rows x rank float32 array, zeros for ids it has none for."""
    dense = np.zeros((rows, rank), dtype=np.float32)
    if len(factors):
        dense[factors["id"].to_numpy()] = np.stack(factors["features"].to_numpy()).astype(np.float32)
    return dense
