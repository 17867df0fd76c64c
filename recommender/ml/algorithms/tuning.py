"""The self-tuning default: on ``fit``, choose EASE's and ALS's settings and the blend weights on a validation split.

How (all inside ``fit``, so evaluation protocols see a model that tuned on its training data only):

1. Carve a validation part: ``VALIDATION_SHARE`` of each user's interactions, the latest
   ones (``validation="temporal"``, or ``"auto"`` where the interactions have a
   ``timestamp``) or a random share (``"random"``, or ``"auto"`` without timestamps).
   Beyond ``max_tune_users`` users the tuning works on a random sample of them, and the
   chosen EASE ``l2`` is scaled up by the users left out (the Gram matrix grows with them).
2. Fit each component once with its default settings on the rest, score the validation
   users (at most ``VALIDATION_USERS``, a sample) once, and keep their standardized scores.
3. Try other settings while ``max_trials`` lasts and, where ``budget_s`` is given, they fit
   in that many seconds (a trial starts only when one like it, timed in step 2, would end
   within the budget). Without ``budget_s`` (the default) the count alone bounds the
   search, so the same data always give the same model: a wall-clock budget chooses
   differently on a busy machine. EASE first: each normalization of ``EASE_NORMALIZATIONS`` at the default
   ``l2``, then ``l2`` in steps of ``L2_STEP`` from the best (one Gram matrix per
   normalization, one Cholesky inverse per trial); then ALS's regularization. A setting
   replaces the best so far only when it beats it by ``MARGIN`` (relative), so the
   defaults stay unless the data say otherwise clearly.
4. Choose ALS's share of the blend weight over ``WEIGHT_GRID`` on the cached scores (cheap;
   the default share unless another beats it by the margin). The grid includes EASE alone
   and ALS alone, so the blend is not worse on validation than its best component.
5. Refit the chosen blend on all the interactions (a component of weight 0 is left out).

Validation nDCG@10 is the objective. The content component (with ``features``) keeps its
default weight and fade: validation users all have history, where it fades out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recommender.errors import InvalidArgumentError
from recommender.ml import splits
from recommender.ml.algorithms.als import ALS
from recommender.ml.algorithms.base import Recommender, mark_seen, to_matrix, top_k
from recommender.ml.algorithms.blend import Blend, standardize
from recommender.ml.algorithms.ease import EASE

VALIDATION_SHARE = 0.2  # of each user's interactions
VALIDATION_USERS = 2000  # validation users scored: 2000 x 20k items x 4 bytes = 160 MB a component
MAX_TUNE_USERS = 20_000  # users the tuning fits on; beyond, a random sample (EASE's l2 is scaled back up)
K = 10
# blend weight of ALS relative to EASE (EASE's weight 1 - w): 0 is EASE alone, 1 ALS alone
WEIGHT_GRID = (0.0, 0.2, 1 / 3, 0.5, 2 / 3, 0.8, 1.0)
L2_STEP = 2.0
EASE_NORMALIZATIONS = ((0.5, 0.25), (0.0, 0.0), (0.5, 0.0), (0.0, 0.25))  # (user, item) exponents; default first
ALS_REGULARIZATION = (0.33, 3.0)  # factors of the default tried
# the blend's components and weights for chosen settings: name -> (parameters, weight)
Rebuild = Callable[[dict[str, tuple[dict[str, Any], float]]], tuple[dict[str, Recommender], dict[str, float]]]
MARGIN = 0.005  # relative gain in validation nDCG a setting needs to replace the default (not to chase noise)


@dataclass
class Tuning:
    """What a tuning tried and chose: recorded in the model's ``params["tuning"]``."""

    space: dict[str, Any]
    budget_s: float | None  # None: the trial count alone bounds the search
    max_trials: int
    trials: list[dict[str, Any]] = field(default_factory=list)
    chosen: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "budget_s": None if self.budget_s is None else round(self.budget_s, 3),
            "max_trials": self.max_trials,
            "trials": self.trials,
            "chosen": self.chosen,
            "validation": self.validation,
        }


VALIDATIONS = ("auto", "temporal", "random")


def validation_split(
    interactions: pd.DataFrame, validation: str = "auto", seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(fit part, validation part): a ``VALIDATION_SHARE`` of each user's interactions held out.

    ``temporal``: each user's latest; ``random``: a random share; ``auto``: temporal where the
    interactions have a ``timestamp``, else random.
    """
    if validation not in VALIDATIONS:
        raise InvalidArgumentError(f"unknown validation {validation!r}; choose one of: {', '.join(VALIDATIONS)}")
    temporal = validation == "temporal" or (validation == "auto" and "timestamp" in interactions.columns)
    if temporal:
        return splits.temporal_split(interactions, 1 - VALIDATION_SHARE, by="user")
    return splits.stratified_split(interactions, 1 - VALIDATION_SHARE, by="user", seed=seed)


def ndcg(scores: np.ndarray, seen: sp.csr_matrix, truth: sp.csr_matrix, k: int = K) -> float:
    """Mean nDCG@k of ``scores`` (users x items; seen items excluded) against ``truth`` (> 0: relevant)."""
    scores = scores.copy()
    mark_seen(scores, seen)
    items, _ = top_k(scores, k)
    hits = np.asarray(truth[np.arange(len(items))[:, None], items].todense()) > 0
    discounts = 1 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts[: hits.shape[1]]).sum(axis=1)
    relevant = np.minimum(np.diff(truth.indptr), k)
    ideal = np.cumsum(discounts)[np.maximum(relevant - 1, 0)]
    return float(np.mean(np.where(relevant > 0, dcg / ideal, 0.0)))


class _Validation:
    """The validation problem: the fit part's matrix, the validation users' history and held-out items."""

    def __init__(self, interactions: pd.DataFrame, validation: str, max_tune_users: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        users = pd.unique(interactions["user_id"])
        self.user_share = 1.0
        if len(users) > max_tune_users:
            sample = rng.choice(len(users), size=max_tune_users, replace=False)
            interactions = interactions[interactions["user_id"].isin(users[sample])]
            self.user_share = max_tune_users / len(users)
        fit_part, held = validation_split(interactions, validation, seed)
        self.fit_part = fit_part[["user_id", "item_id", "weight"]]
        self.user_index, self.item_index, self.matrix = to_matrix(self.fit_part)
        held = held[held["item_id"].isin(self.item_index) & held["user_id"].isin(self.user_index)]
        val_users = pd.unique(held["user_id"])
        if len(val_users) > VALIDATION_USERS:
            val_users = val_users[np.sort(rng.choice(len(val_users), size=VALIDATION_USERS, replace=False))]
            held = held[held["user_id"].isin(val_users)]
        self.rows = self.user_index.get_indexer(val_users)
        self.seen = self.matrix[self.rows]
        positions = pd.Index(val_users).get_indexer(held["user_id"])
        self.truth = sp.csr_matrix(
            (np.ones(len(held), dtype=np.float32), (positions, self.item_index.get_indexer(held["item_id"]))),
            shape=(len(val_users), len(self.item_index)),
        )

    def standardized(self, model: EASE | ALS) -> np.ndarray:
        return standardize(np.asarray(model._scores(self.rows, self.seen), dtype=np.float32))

    def score(self, scores: np.ndarray) -> float:
        return ndcg(scores, self.seen, self.truth)


@dataclass
class _Best:
    """The best setting per component so far; a challenger must beat it by ``MARGIN`` (relative) to take its place."""

    params: dict[str, dict[str, Any]] = field(default_factory=dict)
    scores: dict[str, np.ndarray | None] = field(default_factory=dict)
    value: dict[str, float] = field(default_factory=dict)

    def offer(self, name: str, params: dict[str, Any], scores: np.ndarray | None, value: float) -> bool:
        if name in self.value and value <= self.value[name] * (1 + MARGIN):
            return False
        self.params[name], self.scores[name], self.value[name] = params, scores, value
        return True


Trial = tuple[dict[str, Any], np.ndarray, float]


def _ease_trials(problem: _Validation, defaults: Mapping[str, Any], best: _Best) -> Iterator[Trial]:
    """EASE settings in the order they are tried: each normalization at the default l2, then l2 in steps of
    ``L2_STEP`` from the best, up while it improves, else down while it improves (one Gram per normalization)."""

    def trial(model: EASE, gram: tuple[np.ndarray, np.ndarray, float], l2: float) -> Trial:
        model.params["l2"] = l2
        model.solve(*gram)
        scores = problem.standardized(model)
        return dict(model.params), scores, problem.score(scores)

    for user_exponent, item_exponent in EASE_NORMALIZATIONS:
        model = EASE(**{**defaults, "user_exponent": user_exponent, "item_exponent": item_exponent})
        yield trial(model, model.gram(problem.matrix), defaults["l2"])
    model = EASE(**best.params["ease"])
    gram = model.gram(problem.matrix)
    for direction in (L2_STEP, 1 / L2_STEP):
        improved = False
        while True:
            params, scores, value = trial(model, gram, best.params["ease"]["l2"] * direction)
            yield params, scores, value
            if best.params["ease"] != params:  # the caller did not take it: no further this way
                break
            improved = True
        if improved:
            return  # a larger l2 did better: the smaller ones were passed on the way


def _als_trials(problem: _Validation, defaults: Mapping[str, Any], best: _Best) -> Iterator[Trial]:
    for factor in (1.0, *ALS_REGULARIZATION):
        model = ALS(**{**defaults, "regularization": defaults["regularization"] * factor}).fit(problem.fit_part)
        scores = problem.standardized(model)
        yield dict(model.params), scores, problem.score(scores)


def tune(
    interactions: pd.DataFrame,
    ease: Mapping[str, Any],
    als: Mapping[str, Any],
    *,
    validation: str = "auto",
    budget_s: float | None = None,
    max_trials: int = 12,
    max_tune_users: int = MAX_TUNE_USERS,
    als_share: float = 2 / 3,
    seed: int = 0,
) -> Tuning:
    """Choose EASE's and ALS's settings (starting from ``ease``, ``als``) and ALS's share of their blend weight
    (starting from ``als_share``). ``chosen`` holds ``ease`` and ``als`` (their parameters) and ``als_share``.
    At most ``max_trials`` settings beyond the defaults are tried, within ``budget_s`` seconds where given.
    """
    if max_trials < 0:
        raise InvalidArgumentError(f"max_trials must be 0 or more, got {max_trials}")
    started = time.perf_counter()
    problem = _Validation(interactions, validation, max_tune_users, seed)
    ease, als = EASE(**ease).params, ALS(**als).params
    if not len(problem.rows):  # too little data to hold any out
        return Tuning({}, budget_s, max_trials, chosen={"ease": ease, "als": als, "als_share": als_share})
    best = _Best()
    searches = {"ease": _ease_trials(problem, ease, best), "als": _als_trials(problem, als, best)}
    trials: list[dict[str, Any]] = []

    def run(name: str, search: Iterator[Trial]) -> bool:
        """The next trial of ``search``, recorded and offered; False when the search has no more."""
        began = time.perf_counter()
        trial = next(search, None)
        if trial is None:
            return False
        seconds = time.perf_counter() - began
        trials.append({"component": name, **_brief(trial[0]), "ndcg": round(trial[2], 4), "s": round(seconds, 3)})
        best.offer(name, *trial)
        cost.setdefault(name, seconds)  # the first trial's: what one more is expected to take
        return True

    cost: dict[str, float] = {}
    for name, search in searches.items():  # the defaults, always
        run(name, search)
    searching = time.perf_counter()
    budget = float("inf") if budget_s is None else budget_s
    for name, search in searches.items():
        while len(trials) - len(searches) < max_trials and time.perf_counter() - searching + cost[name] <= budget:
            if not run(name, search):
                break
    searched = time.perf_counter()
    blends = {
        w: problem.score((1 - w) * best.scores["ease"] + w * best.scores["als"])
        for w in dict.fromkeys((als_share, *WEIGHT_GRID))  # the default share first: another must beat it
    }
    shares = _Best()
    for w, value in blends.items():
        shares.offer("blend", {"als_share": w}, None, value)
    ease_params = dict(best.params["ease"])
    ease_params["l2"] = round(ease_params["l2"] / problem.user_share, 3)  # the Gram grows with the users
    return Tuning(
        space={
            "ease": {"normalizations (user, item exponents)": EASE_NORMALIZATIONS, "l2": f"x{L2_STEP} steps"},
            "als": {"regularization factors": ALS_REGULARIZATION},
            "als_share": WEIGHT_GRID,
            "margin": MARGIN,
        },
        budget_s=budget_s,
        max_trials=max_trials,
        trials=trials,
        chosen={"ease": ease_params, "als": dict(best.params["als"]), "als_share": shares.params["blend"]["als_share"]},
        validation={
            "users": len(problem.rows),
            "tuned_on_users": len(problem.user_index),
            "user_share": round(problem.user_share, 4),
            "ndcg@10": {
                "ease": round(best.value["ease"], 4),
                "als": round(best.value["als"], 4),
                "blend": round(shares.value["blend"], 4),
                "by_als_share": {f"{w:.3g}": round(v, 4) for w, v in blends.items()},
            },
            "seconds": round(time.perf_counter() - started, 3),
            "search_s": round(searched - searching, 3),  # the part a budget bounds
        },
    )


def _brief(params: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("l2", "user_exponent", "item_exponent", "regularization", "alpha", "factors")
    return {key: params[key] for key in keys if key in params}


class TunedBlend(Blend):
    """The default blend that tunes itself on ``fit`` (see the module docstring); ``params["tuning"]`` says how.

    ``models`` and ``weights`` are the blend before tuning (EASE and ALS, maybe content);
    the tuning starts from their settings and shares the sum of EASE's and ALS's weights
    between them. ``rebuild`` makes the components and weights of the chosen settings
    (name -> (parameters, weight)).
    """

    def __init__(
        self,
        models: Mapping[str, Recommender],
        weights: Mapping[str, float],
        history_shrink: Mapping[str, float] | None,
        rebuild: Rebuild,
        *,
        validation: str = "auto",
        budget_s: float | None = None,
        max_trials: int = 12,
        max_tune_users: int = MAX_TUNE_USERS,
    ) -> None:
        if validation not in VALIDATIONS:
            raise InvalidArgumentError(f"unknown validation {validation!r}; choose one of: {', '.join(VALIDATIONS)}")
        super().__init__(models, weights, history_shrink)
        self.rebuild = rebuild
        self.start = {"ease": models["ease"].params, "als": models["als"].params, "weights": dict(weights)}
        self.params["tune"] = {
            "validation": validation,
            "budget_s": budget_s,
            "max_trials": max_trials,
            "max_tune_users": max_tune_users,
        }

    def tune(self, interactions: pd.DataFrame) -> Tuning:
        """Choose the settings on ``interactions`` and rebuild the components with them (unfitted)."""
        options = self.params["tune"]
        tuning = tune(
            interactions,
            self.start["ease"],
            self.start["als"],
            validation=options["validation"],
            budget_s=options["budget_s"],
            max_trials=options["max_trials"],
            max_tune_users=options["max_tune_users"],
            als_share=self.start["weights"]["als"] / (self.start["weights"]["ease"] + self.start["weights"]["als"]),
        )
        weights = self.start["weights"]
        total = weights["ease"] + weights["als"]
        share = tuning.chosen["als_share"]
        chosen = {
            "ease": (tuning.chosen["ease"], total * (1 - share)),
            "als": (tuning.chosen["als"], total * share),
        }
        models, weights = self.rebuild(chosen)
        self.models = dict(models)
        self.params.update(
            models={name: model.params for name, model in models.items()},
            weights=dict(weights),
            tuning=tuning.record(),
        )
        return tuning

    def fit(self, interactions: pd.DataFrame) -> TunedBlend:
        self.tune(interactions)
        return self.fit_chosen(interactions)

    def fit_chosen(self, interactions: pd.DataFrame) -> TunedBlend:
        """Fit the settings ``tune`` chose (on these or other interactions) without tuning again."""
        super().fit(interactions)
        return self
