"""Offline evaluation: fit models on a train split, score their top-k lists on the held-out test split, report.

    train, test = splits.stratified_split(ratings, 0.75, by="item", seed=42)
    factories, skipped = model_factories(MODELS, item_features)   # {"ease": <new EASE>, ...}
    results = evaluate_models(factories, train, test, k=10)       # one row per model
    md_path, png_path = write_report(results, "target/evaluation", "MovieLens 100k", protocol)

``evaluate_models`` gives one row per model: the ranking metrics of ``recommender.ml.metrics``
(precision, recall, ndcg, map at k over the test users), catalogue coverage, popularity
bias, and wall-clock seconds to fit and to recommend. On simulated data, where each user's
latent taste is known, ``taste_score`` says how close the lists come to what the user
would like best.
"""

from __future__ import annotations

import functools
import inspect
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recommender.activity.simulate import Catalogue, affinity
from recommender.errors import InvalidArgumentError
from recommender.ml import metrics, splits
from recommender.ml.algorithms import MODELS, Recommender, build_model
from recommender.ml.report import write_report
from recommender.warehouse import progress

RESULT_COLUMNS = (
    "model",
    "precision",
    "recall",
    "ndcg",
    "map",
    "coverage",
    "avg_popularity",
    "popularity_lift",
    "head_share",
    "fit_s",
    "recommend_s",
    "users",
)
SPLITS = ("stratified", "temporal", "leave_last")
TASTE_CHUNK_USERS = 2000  # users x titles affinities computed at once: 2000 x 6k titles x 4 bytes = 48 MB


def evaluate_models(
    models: Mapping[str, Callable[[], Recommender]],
    train: pd.DataFrame,
    test: pd.DataFrame,
    k: int = 10,
    *,
    score: Callable[[pd.DataFrame], Mapping[str, float]] | None = None,
    repeats: int = 1,
) -> pd.DataFrame:
    """Fit each model on ``train``, recommend ``k`` unseen items to every ``test`` user, score against ``test``.

    ``models`` maps a name to a factory of a new, unfitted model (``lambda: build_model("ease")``).
    ``train`` and ``test`` hold user_id, item_id and optionally weight (1.0 per row where
    absent; only train's weights matter). Every (user, item) pair in ``test`` is relevant.
    Coverage is over the items of train and test together; popularity is measured on train.

    Returns one row per model, in the order given, with the columns of ``RESULT_COLUMNS``:
    precision, recall, ndcg, map (at ``k``), coverage, avg_popularity, popularity_lift,
    head_share (see ``metrics.popularity_bias``), fit_s, recommend_s (wall-clock seconds)
    and users (test users scored); ``attrs["tuning"]`` maps each self-tuning model to what its tuning
    tried and chose (``params["tuning"]``). ``score``, given each model's recommendations
    (user_id, item_id, score, rank), adds the columns it returns (e.g. a taste score). With ``repeats``
    above 1 each model is fitted and recommends that many times, and the times are the medians (on a
    busy machine one sub-second fit can take twice another); the figures are the last fit's.
    """
    if repeats < 1:
        raise InvalidArgumentError(f"repeats must be 1 or more, got {repeats}")
    for frame, name in ((train, "train"), (test, "test")):
        missing = [c for c in ("user_id", "item_id") if c not in frame.columns]
        if missing:
            raise InvalidArgumentError(f"{name} needs columns user_id, item_id; missing: {', '.join(missing)}")
    # timestamps, where there are any, let the self-tuning default validate on each user's latest interactions
    kept = ["user_id", "item_id", *(["timestamp"] if "timestamp" in train.columns else [])]
    interactions = train[kept].assign(
        weight=train["weight"].to_numpy(dtype=np.float32) if "weight" in train.columns else np.float32(1.0)
    )
    truth = test[["user_id", "item_id"]]
    users = pd.unique(truth["user_id"])
    n_items = pd.concat([train["item_id"], test["item_id"]]).nunique()
    rows = []
    tunings: dict[str, dict] = {}  # what each self-tuning model tried and chose
    with progress.Bar(len(models), "evaluating", "models", every_s=0) as counter:  # in a log, a line per model
        for name, factory in models.items():
            fits, recommends = [], []
            for _ in range(repeats):
                model = factory()
                started = time.perf_counter()
                model.fit(interactions)
                fits.append(time.perf_counter() - started)
                recs = model.recommend(users, k=k, exclude_seen=True)
                recommends.append(time.perf_counter() - started - fits[-1])
            fit_s, recommend_s = statistics.median(fits), statistics.median(recommends)
            if "tuning" in model.params:
                tunings[name] = model.params["tuning"]
            rows.append(
                {
                    "model": name,
                    **metrics.ranking_metrics(recs, truth, k),
                    "coverage": metrics.catalogue_coverage(recs, n_items),
                    **{
                        key: value
                        for key, value in metrics.popularity_bias(recs, train).items()
                        if key in RESULT_COLUMNS
                    },
                    "fit_s": fit_s,
                    "recommend_s": recommend_s,
                    "users": len(users),
                    **(score(recs) if score is not None else {}),
                }
            )
            counter.update(note=f"{name}: fit {fit_s:.1f} s, recommend {recommend_s:.1f} s")
    extra = [column for column in rows[0] if column not in RESULT_COLUMNS] if rows else []
    results = pd.DataFrame(rows, columns=[*RESULT_COLUMNS, *extra])
    results.attrs["tuning"] = tunings
    return results


def model_factories(
    names: Iterable[str], features: pd.DataFrame | None = None, validation: str | None = None
) -> tuple[dict[str, Callable[[], Recommender]], dict[str, str]]:
    """Factories of new models ``build_model(name)`` for ``evaluate_models``, and the names skipped, with why.

    ``features`` (item features indexed by item id) go to the models whose constructor
    takes ``features``; a model that cannot be built as asked (the content model without
    features) is skipped with its error message rather than stopping the evaluation. ``validation``
    (temporal or random) goes to the models that tune themselves: they validate the way the test is split.
    """
    factories: dict[str, Callable[[], Recommender]] = {}
    skipped: dict[str, str] = {}
    for name in names:
        if name not in MODELS:
            raise InvalidArgumentError(f"unknown model {name!r}; choose among: {', '.join(MODELS)}")
        takes = inspect.signature(MODELS[name]).parameters
        params = {"features": features} if "features" in takes and features is not None else {}
        if "validation" in takes and validation is not None:
            params["validation"] = validation
        try:
            build_model(name, **params)  # building is cheap; it checks the parameters
        except ValueError as exc:
            skipped[name] = str(exc)
            continue
        factories[name] = functools.partial(build_model, name, **params)
    return factories, skipped


def taste_score(
    recs: pd.DataFrame,
    truth: pd.DataFrame,
    features: pd.DataFrame,
    k: int = 10,
    *,
    seen: pd.DataFrame | None = None,
) -> float:
    """How much the simulated users would like their top-k lists, against the best lists they could get (0..1).

    ``truth`` is ``Simulation.truth`` (user_id, genre_<id>, country_<code> affinities, as
    ``simulate --truth`` writes it); ``features`` is ``marts.ml_title_features`` of the
    catalogue simulated on. The true affinity of a user for a title is the simulator's own
    (``simulate.affinity``). For each user in both ``recs`` and ``truth``:

        mean affinity of the user's recommendations with rank <= k
        / mean affinity of the user's k best titles in the whole catalogue,

    averaged over those users. The best titles are chosen among all titles, seen or not;
    with ``seen`` (user_id, item_id: for instance the train split) they are chosen among
    the titles the user has not seen, the best any ``exclude_seen`` list can do. So 1.0 is
    an oracle, and a random list scores well below it. Recommended titles the simulator
    does not know (without a runtime, so never watched) are left out of the mean; a user
    with none known is left out.
    """
    catalogue = Catalogue.from_features(features)
    genre_columns = [f"genre_{g}" for g in catalogue.genres]
    country_columns = [f"country_{c}" for c in catalogue.countries]
    missing = [c for c in ["user_id", *genre_columns, *country_columns] if c not in truth.columns]
    if missing:
        raise InvalidArgumentError(
            f"truth lacks columns {', '.join(missing[:5])}{' …' if len(missing) > 5 else ''}:"
            " was it simulated on another catalogue than these features?"
        )
    top = recs.loc[recs["rank"] <= k, ["user_id", "item_id"]]
    tastes = truth.drop_duplicates("user_id").set_index("user_id")
    users = pd.Index(pd.unique(top["user_id"])).intersection(tastes.index, sort=False)
    titles = pd.Index(catalogue.content_ids)
    scores = []
    for begin in range(0, len(users), TASTE_CHUNK_USERS):
        chunk = users[begin : begin + TASTE_CHUNK_USERS]
        taste = tastes.loc[chunk]
        liking = affinity(
            taste[genre_columns].to_numpy(dtype=np.float32),
            taste[country_columns].to_numpy(dtype=np.float32),
            catalogue,
        )
        rows = top[top["user_id"].isin(chunk)]
        user_pos, title_pos = chunk.get_indexer(rows["user_id"]), titles.get_indexer(rows["item_id"])
        known = title_pos >= 0
        total = np.bincount(user_pos[known], liking[user_pos[known], title_pos[known]], minlength=len(chunk))
        count = np.bincount(user_pos[known], minlength=len(chunk))
        best = _best_mean(liking, chunk, titles, seen, k)
        scored = count > 0
        scores.append(total[scored] / count[scored] / best[scored])
    if not scores or not sum(len(s) for s in scores):
        raise InvalidArgumentError("no user is in both the recommendations and the truth: nothing to score")
    return float(np.concatenate(scores).mean())


def _best_mean(liking: np.ndarray, users: pd.Index, titles: pd.Index, seen: pd.DataFrame | None, k: int) -> np.ndarray:
    """Per user, the mean of the k highest affinities (among unseen titles when ``seen`` is given)."""
    if seen is not None:
        liking = liking.copy()
        rows = seen[seen["user_id"].isin(users)]
        user_pos, title_pos = users.get_indexer(rows["user_id"]), titles.get_indexer(rows["item_id"])
        known = title_pos >= 0
        liking[user_pos[known], title_pos[known]] = -np.inf
    n = min(k, liking.shape[1])
    best = -np.partition(-liking, n - 1, axis=1)[:, :n]
    finite = np.isfinite(best)
    return np.where(finite, best, 0).sum(axis=1) / np.maximum(finite.sum(axis=1), 1)


@dataclass(frozen=True)
class Protocol:
    """How to split and score; the defaults are LF Recommenders' MovieLens protocol."""

    split: str = "stratified"  # or "temporal", or "leave_last" (each user's latest interaction tests; by user)
    by: str = "item"  # stratify (or order) per item or per user
    ratio: float = 0.75  # train share of each group
    seed: int = 42  # of the stratified split
    k: int = 10

    def apply(self, interactions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        """Train and test parts of ``interactions`` (user_id, item_id[, weight, timestamp])."""
        if self.split == "stratified":
            return splits.stratified_split(interactions, self.ratio, by=self.by, seed=self.seed)
        if self.split == "temporal":
            return splits.temporal_split(interactions, self.ratio, by=self.by)
        if self.split == "leave_last":
            return splits.leave_last_out(interactions)
        raise InvalidArgumentError(f"split must be one of {', '.join(SPLITS)}, not {self.split!r}")

    @property
    def validation(self) -> str:
        """How a self-tuning model should carve its validation part: as this protocol carves the test."""
        return "random" if self.split == "stratified" else "temporal"

    def describe(self, source: str, train: pd.DataFrame, test: pd.DataFrame) -> str:
        """A paragraph saying what was evaluated how, for the report."""
        data = pd.concat([train[["user_id", "item_id"]], test[["user_id", "item_id"]]])
        ratio, by = self.ratio, self.by
        how = (
            "leave-last-out: each user's latest interaction (by timestamp) tests, the earlier ones train"
            " (users with one interaction only train)"
            if self.split == "leave_last"
            else f"random {ratio:.0%}/{1 - ratio:.0%} split stratified by {by}"
            f" (LF Recommenders' python_stratified_split, seed {self.seed})"
            if self.split == "stratified"
            else f"temporal split per {by}: the earliest {ratio:.0%} of each {by}'s interactions train, the latest"
            f" {1 - ratio:.0%} test (LF Recommenders' python_chrono_split)"
        )
        return (
            f"Data: {source}: {len(data):,} interactions, {data.user_id.nunique():,} users,"
            f" {data.item_id.nunique():,} items. Protocol: {how}; {len(train):,} train and {len(test):,} test"
            f" interactions. Each model fits on train (weight 1 per interaction unless the data has weights) and"
            f" recommends its top {self.k} items, seen items excluded, to each of the {test.user_id.nunique():,}"
            " test users; every test interaction is relevant."
        )


@dataclass(frozen=True)
class Report:
    results: pd.DataFrame  # evaluate_models' frame
    skipped: dict[str, str]  # model name -> why it was not evaluated
    train_rows: int
    test_rows: int
    md_path: Path
    png_path: Path


def run(
    interactions: pd.DataFrame,
    names: Iterable[str],
    protocol: Protocol,
    *,
    source: str,
    title: str,
    out_dir: str | Path,
    features: pd.DataFrame | None = None,
    truth: pd.DataFrame | None = None,
    title_features: pd.DataFrame | None = None,
    repeats: int = 1,
) -> Report:
    """Split ``interactions`` by ``protocol``, evaluate the models ``names``, write the report into ``out_dir``.

    ``features`` go to the models that take them; with ``truth`` (the simulator's tastes) and
    ``title_features`` (``marts.ml_title_features``) the taste score is added. ``repeats``: as
    ``evaluate_models``'s.
    """
    train, test = protocol.apply(interactions)
    factories, skipped = model_factories(names, features, protocol.validation)

    def taste(recs: pd.DataFrame) -> dict[str, float]:
        return {"taste": taste_score(recs, truth, title_features, protocol.k, seen=train)}

    results = evaluate_models(
        factories, train, test, protocol.k, score=taste if truth is not None else None, repeats=repeats
    )
    md_path, png_path = write_report(results, out_dir, title, protocol.describe(source, train, test))
    return Report(results, skipped, len(train), len(test), md_path, png_path)
