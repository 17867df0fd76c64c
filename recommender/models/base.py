"""What every recommender shares: id encoding, the user x item matrix, top-k selection, cold-start fallback.

A model sees interactions as a DataFrame (``user_id``, ``item_id``, ``weight``) at the
edges and as a CSR matrix inside (users x items, float32, duplicates summed). Ids are
any hashable values; they are encoded in order of first appearance. Subclasses
implement ``_fit(matrix)`` and ``_scores(rows, matrix_rows)``, which returns a dense
users x items float array (higher is better).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import scipy.sparse as sp

INTERACTION_COLUMNS = ("user_id", "item_id", "weight")
BATCH_USERS = 2048  # dense score rows computed at once: 2048 x 6k titles x 4 bytes = 50 MB


class Recommender:
    """Base class; see the module docstring. ``name`` is the registry name, ``params`` the build arguments."""

    name: ClassVar[str] = "base"

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
        users = pd.Index(pd.unique(np.asarray(list(user_ids), dtype=object)))
        rows = self.user_index.get_indexer(users)
        known = rows >= 0
        frames = [self._recommend_known(users[known], rows[known], k, exclude_seen)]
        if (~known).any():
            frames.append(self._recommend_unknown(users[~known], k))
        result = pd.concat(frames, ignore_index=True)
        order = pd.Series(np.arange(len(users)), index=users)
        result = result.iloc[np.lexsort((result["rank"].to_numpy(), order.loc[result.user_id].to_numpy()))]
        return result.reset_index(drop=True)

    def _recommend_known(self, users: pd.Index, rows: np.ndarray, k: int, exclude_seen: bool) -> pd.DataFrame:
        out_users, out_items, out_scores = [], [], []
        for begin in range(0, len(rows), BATCH_USERS):
            batch = rows[begin : begin + BATCH_USERS]
            seen = self.matrix[batch]
            scores = np.asarray(self._scores(batch, seen), dtype=np.float32)
            if exclude_seen:
                mark_seen(scores, seen)
            items, top = top_k(scores, k)
            keep = np.isfinite(top)
            out_users.append(np.repeat(np.asarray(users[begin : begin + BATCH_USERS], dtype=object), keep.sum(axis=1)))
            out_items.append(items[keep])
            out_scores.append(top[keep])
        return self._frame(out_users, out_items, out_scores)

    def _recommend_unknown(self, users: pd.Index, k: int) -> pd.DataFrame:
        share = self.popularity / max(len(self.user_index), 1)
        items, top = top_k(share[None, :], k)
        n = items.shape[1]
        return self._frame(
            [np.repeat(np.asarray(users, dtype=object), n)],
            [np.tile(items[0], len(users))],
            [np.tile(top[0], len(users))],
        )

    def _frame(self, users: list[np.ndarray], items: list[np.ndarray], scores: list[np.ndarray]) -> pd.DataFrame:
        user_col = np.concatenate(users) if users else np.array([], dtype=object)
        frame = pd.DataFrame(
            {
                "user_id": user_col,
                "item_id": self.item_index[np.concatenate(items).astype(np.int64)] if items else [],
                "score": np.concatenate(scores).astype(np.float32) if scores else [],
            }
        )
        frame["rank"] = frame.groupby("user_id", sort=False).cumcount().astype(np.int32) + 1
        return frame

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
        raise ValueError("interaction weights must be finite and > 0")
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
