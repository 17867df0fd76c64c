"""The self-tuning default: fixed settings stay available, the budget is a count, choices are recorded;
EASE's large-catalogue path equals full EASE where it falls back and is a stated approximation beyond."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender.ml.algorithms import DEFAULT_WEIGHTS, Blend, TunedBlend, build_model
from recommender.ml.algorithms.als import ALS
from recommender.ml.algorithms.ease import EASE
from recommender.ml.algorithms.tuning import VALIDATION_SHARE, tune, validation_split


def clustered(users: int = 120, clusters: int = 3, per_cluster: int = 12, seed: int = 0) -> pd.DataFrame:
    """Users who watch mostly their own cluster's items (the first ones most), with a timestamp per row."""
    rng = np.random.default_rng(seed)
    items = clusters * per_cluster
    within = 1 / np.arange(1, per_cluster + 1)
    rows = []
    for user in range(users):
        weights = np.full(items, 0.03)
        weights[(user % clusters) * per_cluster : (user % clusters + 1) * per_cluster] += within
        for when, item in enumerate(rng.choice(items, size=10, replace=False, p=weights / weights.sum())):
            rows.append((user, f"i{item}", 1.0, 1_000 * user + when))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "weight", "timestamp"])


def test_tune_false_is_the_fixed_blend_of_before() -> None:
    data = clustered()
    fixed = build_model("default", tune=False)
    assert type(fixed) is Blend and build_model("default_untuned").params == fixed.params
    assert fixed.params["models"] == {"ease": EASE().params, "als": ALS().params}
    assert fixed.params["weights"] == {"ease": DEFAULT_WEIGHTS["ease"], "als": DEFAULT_WEIGHTS["als"]}
    by_hand = Blend({"ease": EASE(), "als": ALS()}, {"ease": 0.4, "als": 0.8}).fit(data)
    users = data["user_id"].unique()
    pd.testing.assert_frame_equal(fixed.fit(data).recommend(users), by_hand.recommend(users))


def test_the_default_tunes_and_records_what_it_tried_and_chose() -> None:
    model = build_model("default", max_trials=4)
    assert isinstance(model, TunedBlend)
    model.fit(clustered())
    tuning = model.params["tuning"]
    chosen = tuning["chosen"]
    assert {"ease", "als", "als_share"} <= set(chosen) and tuning["space"]["als_share"]
    # the fitted components are the chosen ones, with the chosen share of the default's total weight
    total = DEFAULT_WEIGHTS["ease"] + DEFAULT_WEIGHTS["als"]
    for name, share in (("ease", 1 - chosen["als_share"]), ("als", chosen["als_share"])):
        if share > 0:
            assert model.models[name].params == chosen[name]
            assert model.params["weights"][name] == pytest.approx(total * share)
        else:
            assert name not in model.models  # a component of weight 0 is left out
    assert tuning["trials"][:2] == [
        {**tuning["trials"][0], "component": "ease", "l2": 500.0},
        {**tuning["trials"][1], "component": "als", "regularization": 60.0},
    ]  # the defaults come first
    assert tuning["validation"]["users"] > 0 and 0 <= tuning["validation"]["ndcg@10"]["blend"] <= 1


@pytest.mark.parametrize("max_trials", [0, 1, 3])
def test_the_search_tries_at_most_max_trials_beyond_the_defaults(max_trials: int) -> None:
    tuning = tune(clustered(), {}, {}, max_trials=max_trials, budget_s=1e9)
    assert len(tuning.trials) == 2 + max_trials  # this search has more than 3 settings to offer
    if max_trials == 0:
        assert tuning.chosen["ease"] == EASE().params and tuning.chosen["als"] == ALS().params


def test_a_budget_of_nothing_keeps_the_default_settings() -> None:
    tuning = tune(clustered(), {"l2": 300.0}, {"factors": 8}, budget_s=0.0)
    assert [trial["component"] for trial in tuning.trials] == ["ease", "als"]
    assert tuning.chosen["ease"] == EASE(l2=300.0).params and tuning.chosen["als"] == ALS(factors=8).params
    assert tuning.budget_s == 0.0


def test_the_blend_is_never_worse_on_validation_than_its_best_component() -> None:
    tuning = tune(clustered(), {}, {}, max_trials=2)
    scores = tuning.validation["ndcg@10"]
    assert scores["blend"] >= max(scores["ease"], scores["als"])
    assert scores["by_als_share"]["0"] == scores["ease"] and scores["by_als_share"]["1"] == scores["als"]


def test_validation_holds_out_each_users_latest_interactions_where_there_are_timestamps() -> None:
    data = clustered()
    fit_part, held = validation_split(data)
    assert len(held) == pytest.approx(VALIDATION_SHARE * len(data), rel=0.01)
    latest_fit = fit_part.groupby("user_id")["timestamp"].max()
    assert (held.groupby("user_id")["timestamp"].min() > latest_fit.reindex(held["user_id"].unique())).all()
    _, random_held = validation_split(data, "random")
    assert not random_held.groupby("user_id")["timestamp"].min().equals(held.groupby("user_id")["timestamp"].min())
    with pytest.raises(ValueError, match="unknown validation 'future'"):
        build_model("default", validation="future")
    with pytest.raises(ValueError, match="to leave one out, tune=False"):
        build_model("default", weights={"als": 0.0})
    assert "als" not in build_model("default", tune=False, weights={"als": 0.0}).models


def test_too_little_data_to_validate_keeps_the_defaults() -> None:
    one_each = pd.DataFrame({"user_id": [1, 2], "item_id": ["a", "b"], "weight": [1.0, 1.0]})
    model = build_model("default").fit(one_each)
    assert model.params["tuning"]["chosen"]["ease"] == EASE().params and model.params["tuning"]["trials"] == []


def test_ease_within_max_items_is_full_ease() -> None:
    data = clustered()
    items = data["item_id"].nunique()
    bounded, full = EASE(max_items=items).fit(data), EASE(max_items=10 * items).fit(data)
    assert bounded.kept is None and full.kept is None
    users = data["user_id"].unique()
    pd.testing.assert_frame_equal(bounded.recommend(users), full.recommend(users))


def test_ease_beyond_max_items_models_the_most_interacted_items_only() -> None:
    data = clustered(clusters=4)
    counts = data["item_id"].value_counts(sort=False)
    top = counts.sort_values(ascending=False, kind="stable").index[:20]
    model = EASE(max_items=20).fit(data)
    assert set(model.item_index[model.kept]) == set(top)
    # the approximation: EASE fitted on the kept items alone, the others below every kept item
    alone = EASE().fit(data[data["item_id"].isin(top)])
    users = data["user_id"].unique()
    rows = model.user_index.get_indexer(users)
    scores = model._scores(rows, model.matrix[rows])
    alone_rows = alone.user_index.get_indexer(users)
    expected = alone._scores(alone_rows, alone.matrix[alone_rows])
    np.testing.assert_allclose(
        scores[:, model.kept], expected[:, alone.item_index.get_indexer(model.item_index[model.kept])], atol=1e-4
    )
    others = np.setdiff1d(np.arange(len(model.item_index)), model.kept)
    assert (scores[:, others] <= scores[:, model.kept].min(axis=1, keepdims=True)).all()
    recs = model.recommend(users, k=5)
    assert recs["item_id"].isin(top).all()


def test_the_gram_is_the_same_however_many_users_are_densified_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    model = EASE(user_exponent=0.5, item_exponent=0.25)
    matrix = model.fit(clustered()).matrix
    whole, scales, scale = model.gram(matrix)
    x = model._input(matrix).toarray()
    by_hand = (x.T * np.maximum(x.sum(axis=1), 1) ** -0.5) @ x * np.outer(scales, scales)
    np.testing.assert_allclose(whole, by_hand, rtol=1e-5)
    monkeypatch.setattr("recommender.ml.algorithms.ease.GRAM_BLOCK", 7 * matrix.shape[1])  # blocks of 7 users
    np.testing.assert_allclose(model.gram(matrix)[0], whole, rtol=1e-5)
    before = whole.copy()
    model.solve(whole, scales, scale)
    np.testing.assert_array_equal(whole, before)  # solve leaves the Gram exactly as it was, for the next l2


def test_a_warm_started_als_starts_from_the_factors_it_is_given_whatever_the_order() -> None:
    data = clustered()
    start = ALS(factors=8).fit(data)
    shuffled = data.sample(frac=1.0, random_state=3)  # other user and item orders
    warm = ALS(factors=8)
    with warm.warm_start(start, 0):  # no sweep: the initial factors themselves
        warm.fit(shuffled)
    assert warm.start is None  # the warm start ends with the block
    for ours, theirs, index, their_index in (
        (warm.user_factors, start.user_factors, warm.user_index, start.user_index),
        (warm.item_factors, start.item_factors, warm.item_index, start.item_index),
    ):
        assert not index.equals(their_index)
        np.testing.assert_array_equal(ours, theirs[their_index.get_indexer(index)])
    # a few sweeps from the start recommend what the start does; a cold fit of as few sweeps does not converge
    users = data["user_id"].unique()
    with warm.warm_start(start, 2):
        warm.fit(shuffled)
    warm_recs, start_recs = warm.recommend(users, k=5), start.recommend(users, k=5)
    same = warm_recs.merge(start_recs, on=["user_id", "item_id"])
    assert len(same) >= 0.9 * len(start_recs)


def test_the_default_refits_its_als_from_the_factors_the_tuning_fitted() -> None:
    data = clustered()
    model = build_model("default", max_trials=0, als={"factors": 4, "regularization": 1.0}).fit(data)
    assert model.params["tuning"]["chosen"]["als_share"] > 0  # these ALS settings earn a share on this data
    assert model.params["tuning"]["refit"] == {"als": "warm start from the tuning's factors, 5 sweeps"}
    assert model.warm is not None and model.warm is not model.models["als"]
    assert model.models["als"].start is None
    cold = Blend({name: type(m)(**m.params) for name, m in model.models.items()}, model.params["weights"]).fit(data)
    users = data["user_id"].unique()
    same = model.recommend(users, k=5).merge(cold.recommend(users, k=5), on=["user_id", "item_id"])
    assert len(same) >= 0.9 * 5 * len(users)  # warm and refitted in 5 sweeps: the cold fit's top 5, nearly
