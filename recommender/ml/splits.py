"""Train/test splits of interactions, stratified per user (or per item), as LF Recommenders makes them.

Both splitters keep a ``ratio`` share of each user's (or item's) rows for training and
hold out the rest, so every user keeps some history and is tested on the rest:

- ``stratified_split``: a random share per group, the same rows as LF Recommenders'
  ``python_stratified_split`` (microsoft/recommenders, ``recommenders/datasets/python_splitters.py``)
  for the same seed, so figures are comparable with the ones they publish;
- ``temporal_split``: the earliest share per group for training, the latest for testing
  (their ``python_chrono_split``), ties in time broken deterministically;
- ``leave_last_out``: each user's latest interaction for testing, the rest for training.

A group of ``n`` rows keeps ``round(ratio * n)`` rows for training, rounded half to even
as numpy rounds (ratio 0.75: 1 row -> 1 train, 0 test; 2 -> 2, 0; 3 -> 2, 1; 4 -> 3, 1;
6 -> 4, 2 (4.5 rounds to 4); 10 -> 8, 2 (7.5 rounds to 8)). LF's code has also shipped
another rule, ``rank / n <= ratio`` (a floor: a group of one row goes wholly to test); the
random keys and the order are the same in both, only the cut differs.

The input frame is never modified and the global numpy random state is left alone. Both
return ``(train, test)`` with the input's columns and index labels, rows in the order LF
returns them (by group, then by the random key or by time).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from recommender.errors import InvalidArgumentError

By = Literal["user", "item"]


def stratified_split(
    df: pd.DataFrame,
    ratio: float = 0.75,
    *,
    by: By = "user",
    seed: int = 42,
    user_col: str = "user_id",
    item_col: str = "item_id",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A random ``ratio`` share of each user's (``by="user"``) or item's (``by="item"``) rows in train, the rest test.

    Row for row what LF Recommenders' ``python_stratified_split(df, ratio, filter_by=by,
    seed=seed)`` returns: each row gets a key from ``np.random.RandomState(seed).rand(len(df))``
    (the stream ``np.random.seed(seed); np.random.rand(len(df))`` draws), rows are sorted by
    group and key, and the first ``round(ratio * group size)`` rows of each group train.
    The reference protocol for MovieLens is ``by="item"``, ratio 0.75, seed 42.
    """
    group_col = _check(df, ratio, by, [user_col, item_col], user_col, item_col)
    keys = np.random.RandomState(seed).rand(len(df))
    return _split(df, ratio, [df[group_col].to_numpy(), keys])


def temporal_split(
    df: pd.DataFrame,
    ratio: float = 0.75,
    *,
    by: By = "user",
    time_col: str = "timestamp",
    user_col: str = "user_id",
    item_col: str = "item_id",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's (or item's) earliest ``ratio`` share of rows in train, the latest rest in test.

    LF Recommenders' ``python_chrono_split`` semantics: per group, rows sorted by
    ``time_col``, the first ``round(ratio * group size)`` train. Rows of a group with equal
    times are ordered by the other id (the item for ``by="user"``, the user for
    ``by="item"``), then by their position in ``df``, so the split never depends on sort
    instability. No test row is earlier than a train row of the same group; rows with equal
    times can fall on both sides of the cut.
    """
    group_col = _check(df, ratio, by, [user_col, item_col, time_col], user_col, item_col)
    other_col = item_col if by == "user" else user_col
    return _split(df, ratio, [df[group_col].to_numpy(), df[time_col].to_numpy(), df[other_col].to_numpy()])


def leave_last_out(
    df: pd.DataFrame, *, time_col: str = "timestamp", user_col: str = "user_id", item_col: str = "item_id"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each user's latest row in test, the earlier ones in train; a user with a single row stays in train.

    Rows of a user with equal times are ordered by item, then by their position in ``df``,
    as in ``temporal_split``; the test row is the last in that order.
    """
    _check(df, 0.5, "user", [user_col, item_col, time_col], user_col, item_col)
    keys = pd.DataFrame(
        {"user": df[user_col].to_numpy(), "time": df[time_col].to_numpy(), "item": df[item_col].to_numpy()}
    )
    order = keys.sort_values(["user", "time", "item"], kind="stable").index.to_numpy()
    users = keys["user"].iloc[order].reset_index(drop=True)
    grouped = users.groupby(users, sort=False, dropna=False)
    last = (grouped.cumcount(ascending=False).to_numpy() == 0) & (grouped.transform("size").to_numpy() > 1)
    rows = df.iloc[order]
    return rows[~last], rows[last]


def _check(df: pd.DataFrame, ratio: float, by: str, needed: Sequence[str], user_col: str, item_col: str) -> str:
    if by not in ("user", "item"):
        raise InvalidArgumentError(f"by must be 'user' or 'item', not {by!r}")
    if not 0 < ratio < 1:
        raise InvalidArgumentError(f"ratio must be between 0 and 1 (the train share), not {ratio!r}")
    missing = [column for column in needed if column not in df.columns]
    if missing:
        raise InvalidArgumentError(
            f"cannot split: no column {', '.join(map(repr, missing))} in the interactions;"
            f" they have: {', '.join(map(str, df.columns))}"
        )
    return user_col if by == "user" else item_col


def _split(df: pd.DataFrame, ratio: float, sort_keys: list[np.ndarray]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sort by ``sort_keys`` (group first; ties keep input order); train = the first round(ratio * n) of each group."""
    keys = pd.DataFrame({f"k{i}": key for i, key in enumerate(sort_keys)})
    order = keys.sort_values(list(keys.columns), kind="stable").index.to_numpy()
    groups = keys["k0"].iloc[order].reset_index(drop=True)
    grouped = groups.groupby(groups, sort=False, dropna=False)
    rank = grouped.cumcount().to_numpy() + 1
    count = grouped.transform("size").to_numpy()
    train = rank <= np.round(ratio * count)
    rows = df.iloc[order]
    return rows[train], rows[~train]
