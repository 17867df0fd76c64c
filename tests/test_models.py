"""The model interface: every model fits, recommends k unseen items per user, and never fails on unknown users."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender.ml.algorithms import MODELS, Blend, build_model
from recommender.ml.algorithms.base import top_k
from recommender.ml.algorithms.content import Content
from recommender.spark.session import missing as spark_missing

# spark_als runs where Spark can (the spark extra and Java), in the process's one SparkSession
EVERY_MODEL = [
    pytest.param(name, marks=pytest.mark.skipif(bool(spark_missing()), reason=str(spark_missing())))
    if name == "spark_als"
    else name
    for name in MODELS
]

FEATURES = pd.DataFrame(
    {
        "genre_ids": [["drama"], ["drama", "crime"], ["comedy"], ["comedy", "family"], ["drama"], ["horror"]],
        "decade": [1990, 2000, 2010, 2010, 2000, 2020],
    },
    index=pd.Index(["a", "b", "c", "d", "e", "new"], name="content_id"),  # "new" was never watched
)


def _two_tastes(users: int = 40, seed: int = 0) -> pd.DataFrame:
    """Even users watch dramas (a, b, e), odd users comedies (c, d); each watched some of their kind."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(users):
        kind = ["a", "b", "e"] if user % 2 == 0 else ["c", "d"]
        for item in kind:
            if rng.random() < 0.7:
                rows.append((f"user-{user}", item, float(rng.integers(1, 4))))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "weight"])


def _build(name: str):
    return build_model(name, features=FEATURES) if name in ("default", "content") else build_model(name)


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_every_model_recommends_k_unseen_items_ranked_from_one(name: str) -> None:
    interactions = _two_tastes()
    users = interactions["user_id"].unique()
    recs = _build(name).fit(interactions).recommend(users, k=2)
    assert list(recs.columns) == ["user_id", "item_id", "score", "rank"]
    seen = set(zip(interactions.user_id, interactions.item_id, strict=True))
    assert not any((u, i) in seen for u, i in zip(recs.user_id, recs.item_id, strict=True))
    per_user = recs.groupby("user_id")["rank"].apply(list)
    assert all(ranks == list(range(1, len(ranks) + 1)) for ranks in per_user)
    assert (recs.groupby("user_id")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()
    assert list(pd.unique(recs.user_id)) == [u for u in users if u in set(recs.user_id)]


@pytest.mark.parametrize("name", ["ease", "als", "itemknn", "default"])
def test_collaborative_models_recommend_the_users_own_kind(name: str) -> None:
    interactions = _two_tastes(users=200)
    seen = interactions.groupby("user_id")["item_id"].agg(set)
    kinds = {user: {"a", "b", "e"} if int(user.split("-")[1]) % 2 == 0 else {"c", "d"} for user in seen.index}
    # only users with a title of their own kind left unseen can be judged
    users = [user for user in seen.index if kinds[user] - seen[user]]
    top = _build(name).fit(interactions).recommend(users, k=1).set_index("user_id")["item_id"]
    assert len(top) == len(users) > 50
    assert np.mean([item in kinds[user] for user, item in top.items()]) > 0.9


@pytest.mark.parametrize("name", EVERY_MODEL)
def test_unknown_users_get_the_most_popular_items_not_an_exception(name: str) -> None:
    interactions = pd.DataFrame(
        {"user_id": [1, 2, 3, 3, 4], "item_id": ["a", "a", "a", "b", "c"], "weight": [1.0, 1, 1, 1, 1]}
    )
    recs = _build(name).fit(interactions).recommend([999, ("a", "tuple"), 1], k=2)
    assert recs[recs.user_id == 999]["item_id"].tolist() == ["a", "b"]
    assert recs[recs.user_id.map(lambda u: u == ("a", "tuple"))]["rank"].tolist() == [1, 2]
    assert "a" not in recs[recs.user_id == 1]["item_id"].tolist()


def test_popularity_scores_are_user_shares() -> None:
    interactions = pd.DataFrame({"user_id": [1, 2, 3, 3], "item_id": ["a", "a", "a", "b"], "weight": [1.0, 1, 1, 1]})
    recs = build_model("popularity").fit(interactions).recommend([42], k=5)
    assert recs["user_id"].dtype == np.int64  # the caller's ids keep their type
    assert recs["item_id"].tolist() == ["a", "b"]
    assert recs["score"].tolist() == pytest.approx([1.0, 1 / 3])


def test_fewer_rows_when_fewer_unseen_items_remain() -> None:
    interactions = pd.DataFrame({"user_id": [1, 1, 2], "item_id": ["a", "b", "a"], "weight": [1.0, 1, 1]})
    recs = build_model("ease").fit(interactions).recommend([1, 2], k=10)
    assert recs[recs.user_id == 1].empty
    assert recs[recs.user_id == 2]["item_id"].tolist() == ["b"]
    assert len(build_model("ease").fit(interactions).recommend([2], k=10, exclude_seen=False)) == 2


def test_content_and_default_can_recommend_a_title_nobody_watched() -> None:
    interactions = pd.DataFrame({"user_id": ["u"] * 1 + ["v"] * 2, "item_id": ["f", "c", "d"], "weight": [1.0] * 3})
    features = pd.concat([FEATURES, pd.DataFrame({"genre_ids": [["horror"]], "decade": [2020]}, index=["f"])])
    for name in ("content", "default"):
        recs = build_model(name, features=features).fit(interactions).recommend(["u"], k=1)
        assert recs["item_id"].tolist() == ["new"], name  # the other horror title of the 2020s


def test_a_blend_places_every_component_item_in_its_own_column() -> None:
    interactions = pd.DataFrame({"user_id": ["u", "v"], "item_id": ["a", "c"], "weight": [1.0, 1.0]})
    horror = pd.DataFrame({"genre_ids": [["drama"], ["comedy"], ["horror"]]}, index=["a", "c", "h"])
    musical = pd.DataFrame({"genre_ids": [["drama"], ["comedy"], ["musical"]]}, index=["a", "c", "m"])
    blend = Blend({"one": Content(horror), "two": Content(musical)}, {"one": 1.0, "two": 1.0}).fit(interactions)
    assert list(blend.item_index) == ["a", "c", "h", "m"]
    recs = blend.recommend(["u"], k=3)
    assert set(recs["item_id"]) == {"c", "h", "m"}


def test_bad_input_is_refused_with_a_clear_message() -> None:
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        build_model("nope")
    with pytest.raises(KeyError, match="missing: weight"):
        build_model("ease").fit(pd.DataFrame({"user_id": [1], "item_id": [2]}))
    with pytest.raises(ValueError, match="finite and > 0"):
        build_model("ease").fit(pd.DataFrame({"user_id": [1], "item_id": [2], "weight": [-1.0]}))
    with pytest.raises(ValueError, match="needs features"):
        build_model("content")
    with pytest.raises(ValueError, match="unknown weighting"):
        build_model("als", weighting="log")
    with pytest.raises(ValueError, match=r"components the default does not have: \['eas'\]"):
        build_model("default", weights={"eas": 1.0})


def test_top_k_orders_best_first_and_pads_with_minus_infinity() -> None:
    scores = np.array([[0.1, 0.9, -np.inf, 0.5]], dtype=np.float32)
    items, values = top_k(scores, 4)
    assert items[0, :3].tolist() == [1, 3, 0]
    assert np.isneginf(values[0, 3])
