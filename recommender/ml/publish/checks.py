"""Checking a run's recommendations whole before any is written; ``PublishError`` names each bad column and row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pyarrow_lib
import pyarrow.compute as pyarrow_compute

from recommender.ml.publish.door import COLUMNS, PublishError

MAX_RANK = 32767  # rank is a smallint


def _value(value: object) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _rows(positions: np.ndarray, frame: pd.DataFrame, columns: list[str]) -> str:
    """How many rows, and the first five by position with the values of ``columns``."""
    shown = ", ".join(
        "row {} ({})".format(p, ", ".join(f"{c}={_value(frame[c].iat[p])}" for c in columns)) for p in positions[:5]
    )
    more = f" and {len(positions) - 5:,} more" if len(positions) > 5 else ""
    return f"{len(positions):,} row(s): {shown}{more}"


def _integers(frame: pd.DataFrame, column: str, low: int, high: int, problems: list[str]) -> np.ndarray | None:
    """The column as int64 if every value is an integer in [low, high]; else None and a problem."""
    values = frame[column]
    if pd.api.types.is_bool_dtype(values) or not pd.api.types.is_numeric_dtype(values):
        problems.append(f"column {column!r} must hold integers, not {values.dtype}")
        return None
    numbers = values.to_numpy(dtype="float64" if pd.api.types.is_float_dtype(values) else "int64")
    if numbers.dtype.kind == "f":
        bad = np.flatnonzero(numbers != np.round(numbers))
        if len(bad):
            problems.append(f"column {column!r} must hold integers: {_rows(bad, frame, [column])}")
            return None
    bad = np.flatnonzero((numbers < low) | (numbers > high))
    if len(bad):
        problems.append(f"column {column!r} must be between {low} and {high}: {_rows(bad, frame, [column])}")
        return None
    return numbers.astype("int64")


def check_rows(recommendations: pd.DataFrame) -> pyarrow_lib.Table:
    """The recommendations as an Arrow table in COPY order and PostgreSQL's types; PublishError if invalid.

    Rows are named by position (0-based) in the frame given.
    """
    frame = recommendations.reset_index(drop=True)
    missing = [c for c in COLUMNS if c not in frame.columns]
    extra = [c for c in frame.columns if c not in COLUMNS]
    problems = []
    if missing:
        problems.append(f"missing column(s) {', '.join(map(repr, missing))}")
    if extra:
        problems.append(f"unexpected column(s) {', '.join(map(repr, extra))} (select the columns {list(COLUMNS)})")
    if not problems and frame.empty:
        problems.append("no rows: a run must recommend something (the current run stays current)")
    if problems:
        raise _refused(problems)
    with_nulls = set()
    for column in COLUMNS:
        nulls = np.flatnonzero(frame[column].isna().to_numpy())
        if len(nulls):
            problems.append(f"column {column!r} has nulls: {_rows(nulls, frame, ['user_id', 'rank'])}")
            with_nulls.add(column)
    user_id = None if "user_id" in with_nulls else _integers(frame, "user_id", -(2**63), 2**63 - 1, problems)
    rank = None if "rank" in with_nulls else _integers(frame, "rank", 1, MAX_RANK, problems)
    score = None if "score" in with_nulls else _scores(frame, problems)
    strings = {c: None if c in with_nulls else _strings(frame, c, problems) for c in ("content_id", "reason")}
    if user_id is not None and rank is not None:
        duplicated = _duplicated(user_id, rank)
        if len(duplicated):
            problems.append(
                f"(user_id, rank) must be unique: {_rows(duplicated, frame, ['user_id', 'rank', 'content_id'])}"
            )
    if problems:
        raise _refused(problems)
    return pyarrow_lib.table(
        {
            "user_id": user_id,
            "content_id": strings["content_id"],
            "score": score,
            "rank": rank.astype("int16"),
            "reason": strings["reason"],
        }
    )


def _scores(frame: pd.DataFrame, problems: list[str]) -> np.ndarray | None:
    """The scores as float32 (PostgreSQL's real) if all are finite numbers; else None and a problem."""
    if not pd.api.types.is_numeric_dtype(frame["score"]) or pd.api.types.is_bool_dtype(frame["score"]):
        problems.append(f"column 'score' must hold numbers, not {frame['score'].dtype}")
        return None
    with np.errstate(over="ignore"):
        score = frame["score"].to_numpy(dtype="float32")
    bad = np.flatnonzero(~np.isfinite(score))
    if len(bad):
        problems.append(f"column 'score' must be finite (a real): {_rows(bad, frame, ['score'])}")
        return None
    return score


def _strings(frame: pd.DataFrame, column: str, problems: list[str]) -> pyarrow_lib.Array | None:
    try:
        values = pyarrow_lib.array(frame[column], from_pandas=True)
        if not pyarrow_lib.types.is_string(values.type) and not pyarrow_lib.types.is_large_string(values.type):
            raise TypeError(values.type)
    except (pyarrow_lib.ArrowException, TypeError):
        bad = np.flatnonzero(~frame[column].map(lambda v: isinstance(v, str)).to_numpy(dtype=bool))
        problems.append(f"column {column!r} must hold text: {_rows(bad, frame, [column])}")
        return None
    if column == "content_id":
        empty = np.flatnonzero(pyarrow_compute.equal(values, "").to_numpy(zero_copy_only=False))
        if len(empty):
            problems.append(f"column 'content_id' must not be empty: {_rows(empty, frame, ['user_id', 'rank'])}")
    return values


def _duplicated(user_id: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """Positions of rows whose (user_id, rank) occurs more than once; fast when sorted by user, then rank."""
    if len(user_id) and user_id.min() >= 0 and user_id.max() < 2**47:
        key = (user_id << 16) | rank
        if np.all(key[1:] > key[:-1]):  # strictly increasing: no duplicates (the usual order)
            return np.array([], dtype="int64")
        return np.flatnonzero(pd.Series(key).duplicated(keep=False).to_numpy())
    pairs = pd.DataFrame({"user_id": user_id, "rank": rank})
    return np.flatnonzero(pairs.duplicated(keep=False).to_numpy())


def count_distinct(values: np.ndarray) -> int:
    """Distinct values; fast when sorted."""
    if len(values) and np.all(values[1:] >= values[:-1]):
        return 1 + int(np.count_nonzero(values[1:] != values[:-1]))
    return len(pd.unique(values))


def _refused(problems: list[str]) -> PublishError:
    lines = "\n  ".join(problems)
    return PublishError(f"recommendations refused, nothing published: {len(problems)} problem(s)\n  {lines}", problems)
