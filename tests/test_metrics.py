"""Ranking metrics, coverage and popularity bias equal the values worked out by hand on toy cases."""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.ml.metrics import (
    catalogue_coverage,
    map_at_k,
    ndcg_at_k,
    popularity_bias,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)


def recs_of(lists: Mapping[Hashable, Sequence[Hashable]]) -> pd.DataFrame:
    rows = [(user, item, rank) for user, items in lists.items() for rank, item in enumerate(items, start=1)]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rank"])


def truth_of(relevant: Mapping[Hashable, Sequence[Hashable]]) -> pd.DataFrame:
    return pd.DataFrame([(u, i) for u, items in relevant.items() for i in items], columns=["user_id", "item_id"])


# A: relevant x, y, z; list x q y r s -> hits at ranks 1 and 3
# B: relevant w;       list q r s t w -> a hit at rank 5
# C: relevant v;       no list at all -> counts 0
RECS = recs_of({"A": ["x", "q", "y", "r", "s"], "B": ["q", "r", "s", "t", "w"]})
TRUTH = truth_of({"A": ["x", "y", "z"], "B": ["w"], "C": ["v"]})
NDCG_A = (1 / math.log2(2) + 1 / math.log2(4)) / (1 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4))
# = (1 + 0.5) / (1 + 0.6309297536 + 0.5) = 1.5 / 2.1309297536 = 0.7039180890
NDCG_B = (1 / math.log2(6)) / 1  # = 0.3868528072; ideal: one relevant item at rank 1


def test_hand_computed_values_at_5() -> None:
    result = ranking_metrics(RECS, TRUTH, k=5)
    assert result["precision"] == pytest.approx((2 / 5 + 1 / 5 + 0) / 3)  # = 0.2
    assert result["recall"] == pytest.approx((2 / 3 + 1 / 1 + 0) / 3)  # = 0.5556
    assert result["ndcg"] == pytest.approx((NDCG_A + NDCG_B + 0) / 3)  # = 0.3636
    assert round(NDCG_A, 10) == 0.7039180890
    # MAP: A (1/1 + 2/3) / min(3, 5) = 0.5556; B (1/5) / min(1, 5) = 0.2; C 0
    assert result["map"] == pytest.approx(((1 / 1 + 2 / 3) / 3 + (1 / 5) / 1 + 0) / 3)  # = 0.2519


def test_the_single_metric_functions_agree() -> None:
    result = ranking_metrics(RECS, TRUTH, k=5)
    assert precision_at_k(RECS, TRUTH, k=5) == result["precision"]
    assert recall_at_k(RECS, TRUTH, k=5) == result["recall"]
    assert ndcg_at_k(RECS, TRUTH, k=5) == result["ndcg"]
    assert map_at_k(RECS, TRUTH, k=5) == result["map"]


def test_lf_averages_over_common_users_which_equals_ours_when_every_truth_user_has_recs() -> None:
    # dropping C (no recommendations) from the truth gives LF's figures: users A and B only
    result = ranking_metrics(RECS, TRUTH[TRUTH.user_id != "C"], k=5)
    assert result["precision"] == pytest.approx((2 / 5 + 1 / 5) / 2)  # = 0.3
    assert result["ndcg"] == pytest.approx((NDCG_A + NDCG_B) / 2)


def test_only_ranks_up_to_k_count() -> None:
    # at k = 2: A hits x at rank 1 only (y at rank 3 is cut); B's w at rank 5 is cut
    result = ranking_metrics(RECS, TRUTH, k=2)
    assert result["precision"] == pytest.approx((1 / 2 + 0 + 0) / 3)
    assert result["recall"] == pytest.approx((1 / 3) / 3)
    assert result["ndcg"] == pytest.approx((1 / (1 + 1 / math.log2(3))) / 3)  # ideal: min(3, 2) = 2 positions
    assert result["map"] == pytest.approx((1 / 2) / 3)  # (1/1) / min(3, 2)


def test_two_hits_in_ten_is_precision_two_tenths() -> None:
    recs = recs_of({"U": [f"i{n}" for n in range(1, 12)]})  # eleven items; rank 11 lies beyond k
    truth = truth_of({"U": ["i2", "i7", "i11"]})
    result = ranking_metrics(recs, truth, k=10)
    assert result["precision"] == pytest.approx(2 / 10)
    assert result["recall"] == pytest.approx(2 / 3)
    # DCG = 1/log2(3) + 1/log2(8) = 0.6309 + 0.3333; IDCG = 1 + 1/log2(3) + 1/log2(4) = 2.1309
    assert result["ndcg"] == pytest.approx((1 / math.log2(3) + 1 / 3) / (1 + 1 / math.log2(3) + 0.5))
    assert result["map"] == pytest.approx((1 / 2 + 2 / 7) / 3)


def test_a_perfect_list_scores_one_even_with_more_relevant_items_than_k() -> None:
    items = [f"i{n}" for n in range(20)]
    result = ranking_metrics(recs_of({"U": items[:10]}), truth_of({"U": items}), k=10)
    assert result["precision"] == 1.0
    assert result["recall"] == pytest.approx(10 / 20)
    assert result["ndcg"] == pytest.approx(1.0)  # ideal DCG over min(20, 10) positions
    assert result["map"] == pytest.approx(1.0)  # sum of j / j over 10 hits, / min(20, 10)


def test_duplicates_count_once() -> None:
    recs = pd.concat([recs_of({"A": ["x", "q", "y", "r", "s"]}), pd.DataFrame([("A", "x", 4)], columns=RECS.columns)])
    truth = pd.concat([truth_of({"A": ["x", "y", "z"]}), truth_of({"A": ["x"]})])
    assert ranking_metrics(recs, truth, k=5) == ranking_metrics(recs_of({"A": ["x", "q", "y", "r", "s"]}), truth, k=5)
    assert ranking_metrics(recs, truth, k=5)["recall"] == pytest.approx(2 / 3)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"recs needs columns .* missing: rank"):
        ranking_metrics(RECS.drop(columns="rank"), TRUTH)
    with pytest.raises(ValueError, match="k must be"):
        ranking_metrics(RECS, TRUTH, k=0)
    with pytest.raises(ValueError, match="no user"):
        ranking_metrics(RECS, TRUTH.iloc[:0])
    with pytest.raises(ValueError, match="ranks start at 1; found rank 0"):
        ranking_metrics(RECS.assign(rank=RECS["rank"] - 1), TRUTH)


def test_catalogue_coverage() -> None:
    # A and B are recommended x q y r s t w: 7 distinct items of a catalogue of 20
    assert catalogue_coverage(RECS, 20) == pytest.approx(7 / 20)
    with pytest.raises(ValueError):
        catalogue_coverage(RECS, 0)


def test_popularity_bias() -> None:
    # item a: users 1 2 3 4, b: 1 2, c: 3, d: 4 -> 8 interactions, 4 users
    # popularity (share of users): a 1.0, b 0.5, c 0.25, d 0.25; catalogue mean 2.0 / 4 = 0.5
    # head: a alone holds 4 of 8 interactions >= 20 % of 8 = 1.6 -> head = {a}, 1 of 4 items
    train = pd.DataFrame(
        [(1, "a"), (2, "a"), (3, "a"), (4, "a"), (1, "b"), (2, "b"), (3, "c"), (4, "d"), (4, "d")],
        columns=["user_id", "item_id"],
    )  # the repeated (4, d) counts once
    recs = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": ["a", "b", "c", "a"], "rank": [1, 2, 1, 2]})
    result = popularity_bias(recs, train)
    assert result["avg_popularity"] == pytest.approx((1.0 + 0.5 + 0.25 + 1.0) / 4)  # = 0.6875
    assert result["popularity_lift"] == pytest.approx(0.6875 / 0.5)  # = 1.375
    assert result["head_share"] == pytest.approx(2 / 4)
    assert result["head_items"] == pytest.approx(1 / 4)


def test_head_stops_where_20_percent_is_reached_exactly() -> None:
    # 10 interactions: p has 2 (exactly 20 %), then eight items with 1 each
    train = pd.DataFrame([(1, "p"), (2, "p")] + [(u, f"o{u}") for u in range(3, 11)], columns=["user_id", "item_id"])
    recs = pd.DataFrame({"user_id": [1, 1], "item_id": ["p", "zz"], "rank": [1, 2]})  # zz: never in train
    result = popularity_bias(recs, train)
    assert result["head_items"] == pytest.approx(1 / 9)
    assert result["head_share"] == pytest.approx(1 / 2)
    assert result["avg_popularity"] == pytest.approx((2 / 10 + 0) / 2)  # an unknown item has popularity 0


def naive_metrics(recs: pd.DataFrame, truth: pd.DataFrame, k: int) -> dict[str, float]:
    """The definitions, one user at a time, in plain Python."""
    totals = {"precision": 0.0, "recall": 0.0, "ndcg": 0.0, "map": 0.0}
    users = truth.groupby("user_id").item_id.agg(set)
    for user, relevant in users.items():
        ranked = recs[(recs.user_id == user) & (recs["rank"] <= k)].sort_values("rank")
        hit_ranks = [r for r, i in zip(ranked["rank"], ranked.item_id, strict=True) if i in relevant]
        totals["precision"] += len(hit_ranks) / k
        totals["recall"] += len(hit_ranks) / len(relevant)
        ideal = sum(1 / math.log2(i + 1) for i in range(1, min(len(relevant), k) + 1))
        totals["ndcg"] += sum(1 / math.log2(r + 1) for r in hit_ranks) / ideal
        totals["map"] += sum(j / r for j, r in enumerate(hit_ranks, start=1)) / min(len(relevant), k)
    return {name: value / len(users) for name, value in totals.items()}


@given(
    lists=st.dictionaries(st.integers(0, 8), st.permutations(range(15)).map(lambda p: p[:12]), max_size=9),
    relevant=st.dictionaries(st.integers(0, 8), st.sets(st.integers(0, 14), min_size=1, max_size=14), min_size=1),
    k=st.integers(1, 12),
)
@settings(max_examples=200, deadline=None)
def test_equal_to_the_definitions_one_user_at_a_time(
    lists: dict[int, list[int]], relevant: dict[int, set[int]], k: int
) -> None:
    recs = recs_of({u: list(items) for u, items in lists.items()})
    truth = truth_of({u: sorted(items) for u, items in relevant.items()})
    result = ranking_metrics(recs, truth, k)
    expected = naive_metrics(recs, truth, k)
    assert result == pytest.approx(expected)
