"""What every recommender shares: id encoding, the user x item matrix, top-k selection, cold-start fallback.

A model sees interactions as a DataFrame (``user_id``, ``item_id``, ``weight``) at the
edges and as a CSR matrix inside (users x items, float32, duplicates summed). Ids are
any hashable values; they are encoded in order of first appearance. Subclasses
implement ``_fit(matrix)`` and ``_scores(rows, matrix_rows)``, which returns a dense
users x items float array (higher is better).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.errors import InvalidArgumentError

INTERACTION_COLUMNS = ("user_id", "item_id", "weight")
BATCH_USERS = 2048  # dense score rows computed at once: 2048 x 6k titles x 4 bytes = 50 MB


class Recommender:
    """Base class; see the module docstring. ``params`` holds the build arguments."""

    def __init__(self, **params: Any) -> None:
        self.params = params
        self.user_index = pd.Index([])
        self.item_index = pd.Index([])
        self.matrix = sp.csr_matrix((0, 0), dtype=np.float32)
        self.popularity = np.zeros(0, dtype=np.float32)

    # -- fitting ---------------------------------------------------------------

    def fit(self, interactions: pd.DataFrame) -> Recommender:
        """Learn from ``interactions`` (columns user_id, item_id, weight > 0; repeated pairs add up)."""
        self.user_index, self.item_index, self.matrix = to_matrix(interactions)
        # distinct users per item: the fallback for users the model has never seen
        self.popularity = np.asarray((self.matrix > 0).sum(axis=0), dtype=np.float32).ravel()
        self._fit(self.matrix)
        return self

    def _fit(self, matrix: sp.csr_matrix) -> None:
        raise NotImplementedError

    def _scores(self, rows: np.ndarray, matrix_rows: sp.csr_matrix) -> np.ndarray:
        """Scores (len(rows) x items) for the users at ``rows``, whose interactions are ``matrix_rows``."""
        raise NotImplementedError

    # -- recommending ----------------------------------------------------------

    def recommend(self, user_ids: Iterable[Any], k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top ``k`` items per user: DataFrame user_id, item_id, score, rank (1..k), best first.

        Users the model has never seen get the most popular items (score = share of
        users who interacted with the item); nothing raises for an unknown id. A
        user gets fewer than ``k`` rows only when fewer items are left unseen.
        """
        # the caller's ids keep their dtype (ints stay ints); tuples stay single ids, not index levels
        users = pd.Index(list(user_ids), tupleize_cols=False).unique()
        rows = self.user_index.get_indexer(users)
        known = np.flatnonzero(rows >= 0)
        unknown = np.flatnonzero(rows < 0)
        blocks = [
            self._recommend_rows(known[i : i + BATCH_USERS], rows, k, exclude_seen)
            for i in range(0, len(known), BATCH_USERS)
        ]
        if len(unknown):
            blocks.append(self._recommend_popular(unknown, k))
        position, items, scores, ranks = (
            (np.concatenate(parts) for parts in zip(*blocks, strict=True))
            if blocks
            else [np.zeros(0, dtype=np.int64)] * 4
        )
        order = np.lexsort((ranks, position))
        return pd.DataFrame(
            {
                "user_id": users.take(position[order]),
                "item_id": self.item_index.take(items[order].astype(np.int64)),
                "score": scores[order].astype(np.float32),
                "rank": ranks[order].astype(np.int32),
            }
        )

    def _recommend_rows(
        self, positions: np.ndarray, rows: np.ndarray, k: int, exclude_seen: bool
    ) -> tuple[np.ndarray, ...]:
        """Top-k of the known users at ``positions`` (of the caller's list; ``rows`` maps them to matrix rows)."""
        batch = rows[positions]
        seen = self.matrix[batch]
        scores = np.asarray(self._scores(batch, seen), dtype=np.float32)
        if exclude_seen:
            mark_seen(scores, seen)
        items, top = top_k(scores, k)
        user, column = np.nonzero(np.isfinite(top))  # finite scores come first in each row
        return positions[user], items[user, column], top[user, column], column + 1

    def _recommend_popular(self, positions: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
        """The most popular items (score: share of users) for users the model has never seen."""
        items, top = top_k(self.popularity_share()[None, :], k)
        n = items.shape[1]
        return (
            np.repeat(positions, n),
            np.tile(items[0], len(positions)),
            np.tile(top[0], len(positions)),
            np.tile(np.arange(1, n + 1), len(positions)),
        )

    def popularity_share(self) -> np.ndarray:
        """Per item, the share of users who interacted with it (0..1)."""
        return self.popularity / max(len(self.user_index), 1)

    def extend_items(self, items: pd.Index) -> None:
        """Append ``items`` nobody interacted with to the item index (empty matrix columns, popularity 0)."""
        if len(items):
            self.item_index = self.item_index.append(items)
            self.matrix = sp.hstack([self.matrix, sp.csr_matrix((self.matrix.shape[0], len(items)))]).tocsr()
            self.popularity = np.concatenate([self.popularity, np.zeros(len(items), dtype=np.float32)])

    def __repr__(self) -> str:
        args = ", ".join(f"{key}={value!r}" for key, value in self.params.items())
        return f"{type(self).__name__}({args})"


def to_matrix(interactions: pd.DataFrame) -> tuple[pd.Index, pd.Index, sp.csr_matrix]:
    """User index, item index and the users x items CSR matrix (float32) of ``interactions``."""
    missing = [c for c in INTERACTION_COLUMNS if c not in interactions.columns]
    if missing:
        raise KeyError(f"interactions need columns {', '.join(INTERACTION_COLUMNS)}; missing: {', '.join(missing)}")
    weights = interactions["weight"].to_numpy(dtype=np.float32)
    if len(weights) and not (np.isfinite(weights).all() and (weights > 0).all()):
        raise InvalidArgumentError("interaction weights must be finite and > 0")
    user_codes, users = pd.factorize(interactions["user_id"])
    item_codes, items = pd.factorize(interactions["item_id"])
    matrix = sp.csr_matrix((weights, (user_codes, item_codes)), shape=(len(users), len(items)), dtype=np.float32)
    matrix.sum_duplicates()
    return pd.Index(users), pd.Index(items), matrix


def mark_seen(scores: np.ndarray, seen: sp.csr_matrix) -> None:
    """Set the scores of seen items to -inf, in place."""
    rows = np.repeat(np.arange(seen.shape[0]), np.diff(seen.indptr))
    scores[rows, seen.indices] = -np.inf


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indices and values of the ``k`` largest scores per row, best first (-inf where fewer remain)."""
    k = min(k, scores.shape[1])
    if k <= 0:
        return np.zeros((scores.shape[0], 0), dtype=np.int64), np.zeros((scores.shape[0], 0), dtype=np.float32)
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    values = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(values, order, axis=1)
