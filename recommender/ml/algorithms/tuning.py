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
   differently on a busy machine. The components take turns, EASE first: EASE tries each
   normalization of ``EASE_NORMALIZATIONS`` at the default ``l2`` (textbook, unnormalized
   EASE first), then ``l2`` in steps of ``L2_STEP`` from the best (one Gram matrix per
   normalization, one Cholesky inverse per trial); ALS tries its regularization factors,
   each warm-started from the default's factors (``TRIAL_SWEEPS`` sweeps, not a fit from
   scratch). A setting replaces the best so far only when it beats it by ``MARGIN``
   (relative), so the defaults stay unless the data say otherwise clearly.
4. Choose ALS's share of the blend weight over ``WEIGHT_GRID`` on the cached scores (cheap;
   the default share unless another beats it by the margin). The grid includes EASE alone
   and ALS alone, so the blend is not worse on validation than its best component.
5. Refit the chosen blend on all the interactions (a component of weight 0 is left out);
   ALS starts from the factors its tuning fitted and runs ``REFIT_SWEEPS`` sweeps.

The default search is small (``MAX_TRIALS``: textbook EASE, then a lighter ALS penalty, the two
settings that moved on the data sets measured): tuning and refitting cost about twice the fixed
blend's fit (``docs/benchmarks.md``); a larger ``max_trials`` goes on to the ``l2`` steps.

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
# settings tried beyond the defaults: EASE unnormalized, then ALS less regularized (more: l2 steps, ALS x3)
MAX_TRIALS = 2
MAX_TUNE_USERS = 20_000  # users the tuning fits on; beyond, a random sample (EASE's l2 is scaled back up)
K = 10
# blend weight of ALS relative to EASE (EASE's weight 1 - w): 0 is EASE alone, 1 ALS alone
WEIGHT_GRID = (0.0, 1 / 3, 0.5, 2 / 3, 1.0)
L2_STEP = 2.0
# (user, item) exponents: the default, and textbook EASE (the half-way ones never won on the data sets measured)
EASE_NORMALIZATIONS = ((0.5, 0.25), (0.0, 0.0))
ALS_REGULARIZATION = (0.33, 3.0)  # factors of the default tried
TRIAL_SWEEPS = 5  # ALS sweeps of a trial warm-started from the default's factors
REFIT_SWEEPS = 5  # ALS sweeps of the refit on everything, warm-started from the tuning's factors
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
    fitted: dict[str, Recommender] = field(default_factory=dict, repr=False)  # chosen, on the fit part; not recorded

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
    models: dict[str, Recommender | None] = field(default_factory=dict)

    def offer(
        self, name: str, params: dict[str, Any], scores: np.ndarray | None, value: float, model: Recommender | None
    ) -> bool:
        if name in self.value and value <= self.value[name] * (1 + MARGIN):
            return False
        self.params[name], self.scores[name], self.value[name], self.models[name] = params, scores, value, model
        return True


Trial = tuple[dict[str, Any], np.ndarray, float, Recommender]


def _ease_trials(problem: _Validation, defaults: Mapping[str, Any], best: _Best) -> Iterator[Trial]:
    """EASE settings in the order they are tried: each normalization at the default l2, then l2 in steps of
    ``L2_STEP`` from the best, up while it improves, else down while it improves (one Gram per normalization)."""

    def trial(model: EASE, gram: tuple[np.ndarray, np.ndarray, float], l2: float) -> Trial:
        model.params["l2"] = l2
        model.solve(*gram)
        scores = problem.standardized(model)
        return dict(model.params), scores, problem.score(scores), model

    grams = {}  # normalization -> (its Gram, the model that made it): the l2 steps reuse the best one's
    for user_exponent, item_exponent in EASE_NORMALIZATIONS:
        model = EASE(**{**defaults, "user_exponent": user_exponent, "item_exponent": item_exponent})
        grams[user_exponent, item_exponent] = gram = model.gram(problem.matrix), model
        yield trial(model, gram[0], defaults["l2"])
    gram, template = grams[best.params["ease"]["user_exponent"], best.params["ease"]["item_exponent"]]
    del grams
    for direction in (L2_STEP, 1 / L2_STEP):
        improved = False
        while True:
            model = EASE(**best.params["ease"])  # a model per trial: the best so far keeps its weights
            model.kept = template.kept
            candidate = trial(model, gram, best.params["ease"]["l2"] * direction)
            yield candidate
            if best.params["ease"] != candidate[0]:  # the caller did not take it: no further this way
                break
            improved = True
        if improved:
            return  # a larger l2 did better: the smaller ones were passed on the way


def _als_trials(problem: _Validation, defaults: Mapping[str, Any], best: _Best) -> Iterator[Trial]:
    """The default regularization from scratch, then its other factors warm-started from the default's factors."""
    default = ALS(**defaults).fit(problem.fit_part)
    for factor in (1.0, *ALS_REGULARIZATION):
        model = default
        if factor != 1.0:
            model = ALS(**{**defaults, "regularization": defaults["regularization"] * factor})
            with model.warm_start(default, TRIAL_SWEEPS):
                model.fit(problem.fit_part)
        scores = problem.standardized(model)
        yield dict(model.params), scores, problem.score(scores), model


def tune(
    interactions: pd.DataFrame,
    ease: Mapping[str, Any],
    als: Mapping[str, Any],
    *,
    validation: str = "auto",
    budget_s: float | None = None,
    max_trials: int = MAX_TRIALS,
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
    going = dict(searches)  # the components take turns, each until its search ends or the budget would
    while going:
        for name in list(going):
            if len(trials) - len(searches) >= max_trials:
                going.clear()
            elif time.perf_counter() - searching + cost[name] > budget or not run(name, going[name]):
                del going[name]
    searched = time.perf_counter()
    alone = {0.0: best.value["ease"], 1.0: best.value["als"]}  # a component alone ranks as it did in its trial
    blends = {
        w: alone[w] if w in alone else problem.score((1 - w) * best.scores["ease"] + w * best.scores["als"])
        for w in dict.fromkeys((als_share, *WEIGHT_GRID))  # the default share first: another must beat it
    }
    shares = _Best()
    for w, value in blends.items():
        shares.offer("blend", {"als_share": w}, None, value, None)
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
        fitted={name: model for name, model in best.models.items() if model is not None},
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
        max_trials: int = MAX_TRIALS,
        max_tune_users: int = MAX_TUNE_USERS,
    ) -> None:
        if validation not in VALIDATIONS:
            raise InvalidArgumentError(f"unknown validation {validation!r}; choose one of: {', '.join(VALIDATIONS)}")
        super().__init__(models, weights, history_shrink)
        self.rebuild = rebuild
        self.start = {"ease": models["ease"].params, "als": models["als"].params, "weights": dict(weights)}
        self.warm: ALS | None = None  # the tuning's ALS, fitted on its fit part: the refit starts from its factors
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
        self.warm = tuning.fitted.get("als") if "als" in models else None
        refit = {"als": f"warm start from the tuning's factors, {REFIT_SWEEPS} sweeps"} if self.warm else {}
        self.params.update(
            models={name: model.params for name, model in models.items()},
            weights=dict(weights),
            tuning={**tuning.record(), "refit": refit},
        )
        return tuning

    def fit(self, interactions: pd.DataFrame) -> TunedBlend:
        self.tune(interactions)
        return self.fit_chosen(interactions)

    def fit_chosen(self, interactions: pd.DataFrame) -> TunedBlend:
        """Fit the settings ``tune`` chose (on these or other interactions) without tuning again."""
        if self.warm is None:
            super().fit(interactions)
            return self
        with self.models["als"].warm_start(self.warm, REFIT_SWEEPS):
            super().fit(interactions)
        return self
