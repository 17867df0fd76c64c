"""Ranking metrics at k, catalogue coverage and popularity bias of recommendation lists.

Inputs are DataFrames at the edges, as the models produce and the splits hold them:

- ``recs``: user_id, item_id, rank (1 = best; a score column is ignored). Only rows with
  rank <= k count; a pair listed twice counts once, at its best rank.
- ``truth``: user_id, item_id, the held-out items each user interacted with. Relevance
  is binary: every truth pair is relevant, whatever its rating or weight.

Semantics follow LF Recommenders' ``python_evaluation`` (binary relevance), with one
documented difference: metrics average over the users present in ``truth``, and a
truth user without recommendations counts 0, where LF averages over the users present
in both frames. The two agree whenever every truth user gets recommendations, as in
``recommender.ml.evaluate``. Users with recommendations but no truth are ignored.

For a user with relevant set R (|R| >= 1) and hits at ranks r_1 < r_2 < ... <= k:

- precision@k = hits / k (a list shorter than k is not rewarded for it);
- recall@k    = hits / |R|;
- nDCG@k      = sum_j 1/log2(r_j + 1) / sum_{i=1..min(|R|, k)} 1/log2(i + 1);
- MAP@k       = sum_j (j / r_j) / min(|R|, k)  (precision at each hit's rank).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recommender.errors import InvalidArgumentError

USER, ITEM, RANK = "user_id", "item_id", "rank"


def precision_at_k(recs: pd.DataFrame, truth: pd.DataFrame, k: int = 10) -> float:
    """Mean over truth users of hits / k."""
    return ranking_metrics(recs, truth, k)["precision"]


def recall_at_k(recs: pd.DataFrame, truth: pd.DataFrame, k: int = 10) -> float:
    """Mean over truth users of hits / number of relevant items."""
    return ranking_metrics(recs, truth, k)["recall"]


def ndcg_at_k(recs: pd.DataFrame, truth: pd.DataFrame, k: int = 10) -> float:
    """Mean over truth users of DCG / ideal DCG, gain 1 / log2(rank + 1), ideal over min(|relevant|, k) ranks."""
    return ranking_metrics(recs, truth, k)["ndcg"]


def map_at_k(recs: pd.DataFrame, truth: pd.DataFrame, k: int = 10) -> float:
    """Mean over truth users of the sum of precision@rank at each hit, divided by min(|relevant|, k)."""
    return ranking_metrics(recs, truth, k)["map"]


def ranking_metrics(recs: pd.DataFrame, truth: pd.DataFrame, k: int = 10) -> dict[str, float]:
    """precision, recall, ndcg and map at ``k``, each averaged over the users in ``truth`` (see the module doc)."""
    if k < 1:
        raise InvalidArgumentError(f"k must be at least 1, not {k}")
    _require(recs, "recs", [USER, ITEM, RANK])
    _require(truth, "truth", [USER, ITEM])
    if len(recs) and recs[RANK].min() < 1:
        raise InvalidArgumentError(f"recs ranks start at 1; found rank {recs[RANK].min()}")
    relevant = truth[[USER, ITEM]].drop_duplicates()
    n_relevant = relevant.groupby(USER, sort=False).size()
    if n_relevant.empty:
        raise InvalidArgumentError("truth holds no user: nothing to evaluate")
    top = recs.loc[recs[RANK] <= k, [USER, ITEM, RANK]]
    top = top.sort_values([USER, RANK], kind="stable").drop_duplicates([USER, ITEM])
    hits = top.merge(relevant, on=[USER, ITEM], how="inner").sort_values([USER, RANK], kind="stable")

    rank = hits[RANK].to_numpy(dtype=np.float64)
    hit_number = hits.groupby(USER, sort=False).cumcount().to_numpy() + 1  # j: the j-th hit of its user
    per_hit = pd.DataFrame(
        {USER: hits[USER].to_numpy(), "hit": 1.0, "gain": 1 / np.log2(rank + 1), "precision": hit_number / rank}
    )
    per_user = per_hit.groupby(USER, sort=False).sum().reindex(n_relevant.index, fill_value=0.0)

    relevant_count = n_relevant.to_numpy(dtype=np.float64)
    ideal_positions = np.minimum(relevant_count, k).astype(np.int64)
    discounts = np.cumsum(1 / np.log2(np.arange(1, k + 1) + 1))  # ideal DCG for 1..k relevant items
    ideal = discounts[ideal_positions - 1]
    hit_counts = per_user["hit"].to_numpy()
    return {
        "precision": float(np.mean(hit_counts / k)),
        "recall": float(np.mean(hit_counts / relevant_count)),
        "ndcg": float(np.mean(per_user["gain"].to_numpy() / ideal)),
        "map": float(np.mean(per_user["precision"].to_numpy() / ideal_positions)),
    }


def catalogue_coverage(recs: pd.DataFrame, n_items: int) -> float:
    """Share of a catalogue of ``n_items`` items recommended to at least one user (0..1); every row of recs counts."""
    if n_items < 1:
        raise InvalidArgumentError(f"n_items must be at least 1, not {n_items}")
    _require(recs, "recs", [ITEM])
    return recs[ITEM].nunique() / n_items


def popularity_bias(recs: pd.DataFrame, train: pd.DataFrame, head_share: float = 0.2) -> dict[str, float]:
    """How far recommendations lean to popular items, measured on ``train`` (user_id, item_id).

    Popularity of an item = share of train users who interacted with it (distinct users /
    all train users, 0..1); items never seen in train have popularity 0. The catalogue
    here is the set of items in train. Returns:

    - ``avg_popularity``: mean popularity over all rows of ``recs`` (the average
      recommendation popularity, ARP);
    - ``popularity_lift``: ``avg_popularity`` / mean popularity over the catalogue
      (1 = no lean towards popular items; a most-popular list scores far above 1);
    - ``head_share``: share of the rows of ``recs`` whose item is in the head;
    - ``head_items``: share of the catalogue in the head.

    The head: items sorted by number of distinct train users, most first (ties by item
    id), and the shortest prefix of that list whose interactions (distinct user-item
    pairs) reach ``head_share`` (20 %) of all train interactions.
    """
    if not 0 < head_share <= 1:
        raise InvalidArgumentError(f"head_share must be in (0, 1], not {head_share}")
    _require(recs, "recs", [ITEM])
    _require(train, "train", [USER, ITEM])
    pairs = train[[USER, ITEM]].drop_duplicates()
    if pairs.empty:
        raise InvalidArgumentError("train holds no interaction: popularity is undefined")
    users_per_item = pairs.groupby(ITEM).size()  # sorted by item id
    popularity = users_per_item / pairs[USER].nunique()
    ranked = users_per_item.sort_values(ascending=False, kind="stable")  # most popular first, ties by item id
    cumulative = ranked.cumsum().to_numpy()
    head_size = int(np.searchsorted(cumulative, head_share * cumulative[-1] - 1e-9)) + 1
    head = set(ranked.index[:head_size])
    rec_popularity = recs[ITEM].map(popularity).fillna(0.0).to_numpy(dtype=np.float64)
    avg = float(rec_popularity.mean()) if len(rec_popularity) else 0.0
    return {
        "avg_popularity": avg,
        "popularity_lift": avg / float(popularity.mean()),
        "head_share": float(recs[ITEM].isin(head).mean()) if len(recs) else 0.0,
        "head_items": head_size / len(users_per_item),
    }


def _require(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise InvalidArgumentError(
            f"{name} needs columns {', '.join(columns)}; missing: {', '.join(missing)}"
            f" (it has: {', '.join(map(str, frame.columns))})"
        )
