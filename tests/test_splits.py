"""Train/test splits: nothing leaks, nothing is lost, groups split as LF Recommenders splits them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.ml.splits import leave_last_out, stratified_split, temporal_split


def lf_stratified_split(data: pd.DataFrame, ratio: float, by: str, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """LF Recommenders' python_stratified_split, step by step as their _do_stratification does it (global RNG)."""
    column = "user_id" if by == "user" else "item_id"
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        data = data.copy()
        data["random"] = np.random.rand(data.shape[0])
    finally:
        np.random.set_state(state)
    data = data.sort_values([column, "random"])
    groups = data.groupby(column)
    data["count"] = groups[column].transform("count")
    data["rank"] = groups.cumcount() + 1
    data = data.drop("random", axis=1)
    cut = round(ratio * data["count"])  # pandas rounds half to even
    train = data[data["rank"] <= cut].drop(["rank", "count"], axis=1)
    test = data[(data["rank"] > cut) & (data["rank"] <= round(1.0 * data["count"]))].drop(["rank", "count"], axis=1)
    return train, test


def interactions(n_users: int = 40, n_items: int = 30, n: int = 600, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "user_id": rng.integers(0, n_users, n),
            "item_id": rng.integers(0, n_items, n),
            "rating": rng.integers(1, 6, n).astype(float),
            "timestamp": rng.integers(0, 10_000, n),
        }
    )
    return frame.drop_duplicates(["user_id", "item_id"]).reset_index(drop=True)


def test_randomstate_draws_the_stream_of_np_random_seed() -> None:
    state = np.random.get_state()
    np.random.seed(42)
    global_stream = np.random.rand(1000)
    np.random.set_state(state)
    assert np.array_equal(np.random.RandomState(42).rand(1000), global_stream)


def test_tiny_example_checked_by_hand() -> None:
    # RandomState(42).rand(7) = .3745 .9507 .7320 .5987 .1560(1864) .1560(0.15599452) .0581
    df = pd.DataFrame({"user_id": ["u1"] * 4 + ["u2"] * 2 + ["u3"], "item_id": list("abcdefg")})
    train, test = stratified_split(df, 0.75, by="user", seed=42)
    # u1: keys a .37, d .60, c .73, b .95; round(0.75 * 4) = 3 train -> a, d, c; b tests
    # u2: f .15599 before e .15602; round(0.75 * 2) = round(1.5) = 2 (half to even) -> both train
    # u3: round(0.75 * 1) = 1 -> g trains
    assert train.item_id.tolist() == ["a", "d", "c", "f", "e", "g"]
    assert train.index.tolist() == [0, 3, 2, 5, 4, 6]
    assert test.item_id.tolist() == ["b"]


@pytest.mark.parametrize("by", ["user", "item"])
@pytest.mark.parametrize("ratio", [0.75, 0.5, 0.8])
@pytest.mark.parametrize("seed", [42, 7])
def test_stratified_split_equals_lf_row_for_row(by: str, ratio: float, seed: int) -> None:
    df = interactions(seed=seed)
    train, test = stratified_split(df, ratio, by=by, seed=seed)
    lf_train, lf_test = lf_stratified_split(df, ratio, by, seed)
    pd.testing.assert_frame_equal(train, lf_train)
    pd.testing.assert_frame_equal(test, lf_test)


def test_stratified_split_leaves_the_input_and_the_global_rng_alone() -> None:
    df = interactions()
    before = df.copy()
    state = np.random.get_state()
    stratified_split(df, 0.75, by="item")
    after = np.random.get_state()
    pd.testing.assert_frame_equal(df, before)
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]


@pytest.mark.parametrize(("size", "train_rows"), [(1, 1), (2, 2), (3, 2), (4, 3), (5, 4), (6, 4), (10, 8), (14, 10)])
def test_group_sizes_round_half_to_even(size: int, train_rows: int) -> None:
    # 0.75 * 2 = 1.5 -> 2, 0.75 * 6 = 4.5 -> 4, 0.75 * 10 = 7.5 -> 8, 0.75 * 14 = 10.5 -> 10
    df = pd.DataFrame({"user_id": 1, "item_id": range(size), "timestamp": range(size)})
    for split in (stratified_split(df, 0.75), temporal_split(df, 0.75)):
        assert [len(split[0]), len(split[1])] == [train_rows, size - train_rows]


rows = st.lists(
    st.tuples(st.integers(0, 6), st.integers(0, 25), st.integers(0, 40)),
    min_size=0,
    max_size=80,
    unique_by=lambda r: r[:2],
)


def frame_of(data: list[tuple[int, int, int]]) -> pd.DataFrame:
    return pd.DataFrame(data, columns=["user_id", "item_id", "timestamp"], dtype=np.int64)


def check_partition(df: pd.DataFrame, train: pd.DataFrame, test: pd.DataFrame, ratio: float, column: str) -> None:
    assert set(train.index).isdisjoint(test.index)
    pd.testing.assert_frame_equal(pd.concat([train, test]).sort_index(), df.sort_index())
    sizes = df.groupby(column).size()
    expected = np.round(ratio * sizes)
    assert (train.groupby(column).size().reindex(sizes.index, fill_value=0) == expected).all()


@given(data=rows, ratio=st.floats(0.05, 0.95), seed=st.integers(0, 2**31), by=st.sampled_from(["user", "item"]))
@settings(max_examples=150, deadline=None)
def test_stratified_split_is_a_partition_with_lf_group_sizes(
    data: list[tuple[int, int, int]], ratio: float, seed: int, by: str
) -> None:
    df = frame_of(data)
    train, test = stratified_split(df, ratio, by=by, seed=seed)
    check_partition(df, train, test, ratio, f"{by}_id")


@given(data=rows, ratio=st.floats(0.05, 0.95), by=st.sampled_from(["user", "item"]))
@settings(max_examples=150, deadline=None)
def test_temporal_split_tests_only_the_latest(data: list[tuple[int, int, int]], ratio: float, by: str) -> None:
    df = frame_of(data)
    column = f"{by}_id"
    train, test = temporal_split(df, ratio, by=by)
    check_partition(df, train, test, ratio, column)
    latest_train = train.groupby(column).timestamp.max()
    earliest_test = test.groupby(column).timestamp.min()
    both = latest_train.index.intersection(earliest_test.index)
    assert (earliest_test[both] >= latest_train[both]).all()
    # and again on a shuffled copy: ties are broken by the data, not by the row order
    shuffled = df.sample(frac=1, random_state=1)
    again_train, _ = temporal_split(shuffled, ratio, by=by)
    assert set(again_train.index) == set(train.index)


def test_temporal_split_every_test_row_is_later_when_times_differ() -> None:
    df = interactions()
    df["timestamp"] = np.random.default_rng(3).permutation(len(df))  # distinct times
    train, test = temporal_split(df, 0.75, by="user")
    joined = test.merge(train.groupby("user_id").timestamp.max().rename("latest_train"), on="user_id")
    assert (joined.timestamp > joined.latest_train).all()


def test_missing_columns_are_named() -> None:
    df = pd.DataFrame({"user": [1], "item_id": [2]})
    with pytest.raises(ValueError, match="'user_id'"):
        stratified_split(df)
    with pytest.raises(ValueError, match="'timestamp'"):
        temporal_split(pd.DataFrame({"user_id": [1], "item_id": [2]}))
    with pytest.raises(ValueError, match="by must be"):
        stratified_split(pd.DataFrame({"user_id": [1], "item_id": [2]}), by="title")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ratio"):
        stratified_split(pd.DataFrame({"user_id": [1], "item_id": [2]}), 1.0)


def test_leave_last_out_tests_each_users_latest_row_only() -> None:
    df = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 2, 3],
            "item_id": [10, 11, 12, 10, 13, 11],
            "timestamp": [5, 9, 7, 3, 3, 1],  # user 2's rows tie in time: the larger item is the later
        }
    )
    train, test = leave_last_out(df)
    assert sorted(zip(test.user_id, test.item_id, strict=True)) == [(1, 11), (2, 13)]
    assert len(train) + len(test) == len(df) and 3 in set(train.user_id)  # a single row stays in train
