"""Train a recommender on the warehouse and publish its recommendations: ``python -m recommender train``.

Reads ``marts.ml_interactions`` (weight = confidence) and ``marts.ml_title_features``
with pandas (through a database connection, or through the HTTP API: ``train --api``),
evaluates the model on a temporal holdout (each user's latest 20 % of titles) beside the
popularity baseline, refits on everything (the self-tuning default chooses its settings
first, on every interaction, and the run's parameters record the choice), recommends
top-k to every user in ``core.users`` (users without history get the popular titles),
explains each recommendation, and
publishes the run atomically (``recommender.ml.publish``, through the connection or the
API's ``/runs`` endpoints). A failure at any step marks the run failed and leaves the
current recommendations as they were.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from psycopg2 import sql
from psycopg2.extensions import connection

from recommender.errors import NotFoundError
from recommender.ml import publish
from recommender.ml.algorithms import DEFAULT_MODEL, Recommender, TunedBlend
from recommender.ml.data import ReadTable, content_features, table_reader, title_features, warehouse_interactions
from recommender.ml.evaluate import Protocol, evaluate_models, model_factories
from recommender.ml.reasons import explain
from recommender.warehouse import progress

# the inputs with a row per user and title (or per user), which ``users`` limits
PER_USER_TABLES = ("marts.ml_interactions", "core.users")
# each user's earliest 80 % of titles train, the latest 20 % test
HOLDOUT = Protocol(split="temporal", by="user", ratio=0.8, k=10)


class Runs(typing.Protocol):
    """Where a run is registered and published: ``publish.WarehouseRuns`` (a connection) or an ``ApiClient``."""

    def start_run(self, model: str, parameters: dict[str, Any], data_snapshot: dict[str, Any]) -> str: ...

    def upload_recommendations(self, run_id: str, recommendations: pd.DataFrame) -> object: ...

    def publish_run(
        self, run_id: str, *, metrics: dict[str, Any], timings: dict[str, Any], current: bool
    ) -> object: ...

    def fail_run(self, run_id: str, error: str) -> None: ...


class TrainError(NotFoundError, RuntimeError):
    """Training cannot start (e.g. no interactions yet); the message says what to run first."""


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    model: str
    users: int
    rows: int
    metrics: dict[str, Any]
    timings: dict[str, float]

    def __str__(self) -> str:
        if self.model not in self.metrics:  # trained without the holdout
            return (
                f"{self.model} run {self.run_id}: {self.rows:,} recommendations for {self.users:,} users published;"
                f" {sum(self.timings.values()):.1f} s"
            )
        ours, baseline = self.metrics[self.model], self.metrics["popularity"]
        return (
            f"{self.model} run {self.run_id}: {self.rows:,} recommendations for {self.users:,} users published;"
            f" holdout nDCG@{HOLDOUT.k} {ours['ndcg']:.3f} (popularity {baseline['ndcg']:.3f}),"
            f" precision@{HOLDOUT.k} {ours['precision']:.3f} (popularity {baseline['precision']:.3f});"
            f" {sum(self.timings.values()):.1f} s"
        )


@contextmanager
def _timed(timings: dict[str, float], step: str, detail: str) -> Iterator[None]:
    """Time ``step`` into ``timings``, saying so where progress is shown."""
    with progress.phase("train", step, detail, heartbeat=True) as timed:
        yield
    timings[step] = round(timed.seconds, 3)


def train(
    conn: connection | None,
    model: str = DEFAULT_MODEL,
    *,
    k: int = 20,
    read: ReadTable | None = None,
    runs: Runs | None = None,
    schema_suffix: str = "",
    users: Sequence[int] | None = None,
    holdout: bool = True,
    current: bool | None = None,
) -> TrainResult:
    """Fit ``model`` (a name in ``recommender.ml.algorithms.MODELS``) on the warehouse, evaluate it, publish top ``k``.

    ``read`` reads the inputs and ``runs`` publishes (e.g. an ``ApiClient``, through the HTTP
    API: then ``conn`` may be None); by default both use ``conn``. With ``schema_suffix`` (a
    refresh's ``__next``) it trains on the generation being built and stages the run:
    published but not current, for the refresh's switch to make current.

    ``users`` limits training and recommending to those users (an experiment's arm trains on
    its own users' activity); without ``holdout`` the temporal holdout is skipped (no metrics);
    ``current`` says whether the published run becomes current (default: unless ``schema_suffix``).
    """
    runs = runs or publish.WarehouseRuns(conn)
    timings: dict[str, float] = {}
    with _timed(timings, "read", "interactions, users and titles"):
        reader = _of_users(_in_generation(table_reader(conn) if read is None else read, schema_suffix), users)
        interactions = warehouse_interactions(reader)
        if interactions.empty:
            raise TrainError("marts.ml_interactions is empty: simulate activity first (python -m recommender simulate)")
        features = content_features(title_features(reader))
        users = reader("core.users", ["user_id"])["user_id"]
        titles = reader("marts.catalogue", ["content_id", "title"]).set_index("content_id")["title"]
        genre_names = reader("core.genres", None).set_index("genre_id")["genre_name"]
        snapshot = _snapshot(interactions, users, features, _latest_written(conn, read, schema_suffix))
    factories, _ = model_factories([model, "popularity"], features)
    chosen = factories[model]()
    if isinstance(chosen, TunedBlend):  # tuned before the run starts, so that its parameters say what was chosen
        with _timed(timings, "tune", f"{model}'s settings on a validation split"):
            chosen.tune(interactions)
    run_id = runs.start_run(model, chosen.params, snapshot)
    try:
        metrics: dict[str, Any] = {}
        if holdout:
            with _timed(timings, "evaluate", f"{model} and popularity on a temporal holdout"):
                metrics = _holdout_metrics(interactions, factories)
        with _timed(timings, "fit", f"{model} on every interaction"):
            fitted = (
                chosen.fit_chosen(interactions)
                if isinstance(chosen, TunedBlend)
                else chosen.fit(interactions[["user_id", "item_id", "weight"]])
            )
        with _timed(timings, "recommend", f"top {k} for {len(users):,} users"):
            recs = fitted.recommend(users, k=k, exclude_seen=True)
        with _timed(timings, "explain", "a reason per recommendation"):
            recs["reason"] = explain(fitted, recs, titles, features["genre_ids"], genre_names)
        recs = recs.rename(columns={"item_id": "content_id"})[["user_id", "content_id", "score", "rank", "reason"]]
        with _timed(timings, "publish", "upload and publish the run"):
            runs.upload_recommendations(run_id, recs)
            runs.publish_run(
                run_id, metrics=metrics, timings=timings, current=not schema_suffix if current is None else current
            )
    except Exception as exc:
        try:
            runs.fail_run(run_id, f"{type(exc).__name__}: {exc}")
        except Exception as marking:  # e.g. the connection broke: the original error is the one to see
            exc.add_note(f"(run {run_id} could not be marked failed: {marking})")
        raise
    return TrainResult(run_id, model, int(recs["user_id"].nunique()), len(recs), metrics, timings)


def _holdout_metrics(interactions: pd.DataFrame, factories: dict[str, Callable[[], Recommender]]) -> dict[str, Any]:
    train_part, test_part = HOLDOUT.apply(interactions)
    results = evaluate_models(factories, train_part, test_part, k=HOLDOUT.k).set_index("model")
    return {
        "protocol": f"temporal holdout per user: latest {1 - HOLDOUT.ratio:.0%} of each user's titles, k={HOLDOUT.k}",
        **{name: {key: round(float(value), 4) for key, value in row.items()} for name, row in results.iterrows()},
    }


def _in_generation(read: ReadTable, schema_suffix: str) -> ReadTable:
    """``read`` of the generation under ``schema_suffix``: "marts.x" is read from "marts<suffix>.x"."""
    if not schema_suffix:
        return read

    def relocated(name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        schema, table = name.split(".", 1)
        return read(f"{schema}{schema_suffix}.{table}", columns)

    return relocated


def _of_users(read: ReadTable, users: Sequence[int] | None) -> ReadTable:
    """``read`` of the rows of ``users`` only, in the tables that hold a row per user (all rows without ``users``)."""
    if users is None:
        return read
    wanted = pd.Index(users)

    def limited(name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        frame = read(name, columns)
        limits = name in PER_USER_TABLES and "user_id" in frame.columns
        return frame[frame["user_id"].isin(wanted)] if limits else frame

    return limited


def _latest_written(conn: connection, read: ReadTable | None, schema_suffix: str = "") -> datetime | None:
    """When the newest interaction was loaded: asked of the database, or the latest of the column ``read`` reads."""
    if read is not None:
        latest = read("marts.ml_interactions", ["last_written_at"])["last_written_at"].max()
        return None if pd.isna(latest) else latest
    with conn.cursor() as cur:
        cur.execute(
            sql.SQL("select max(last_written_at) from {}.ml_interactions").format(
                sql.Identifier(f"marts{schema_suffix}")
            )
        )
        (latest,) = cur.fetchone()
    return latest


def _snapshot(
    interactions: pd.DataFrame, users: pd.Series, features: pd.DataFrame, latest: datetime | None
) -> dict[str, Any]:
    return {
        "source": "marts.ml_interactions",
        "interactions": len(interactions),
        "users_with_history": int(interactions["user_id"].nunique()),
        "users": len(users),
        "titles": len(features),
        "latest_written_at": latest.isoformat() if latest else None,
    }
