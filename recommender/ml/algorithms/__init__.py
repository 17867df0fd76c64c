"""Recommenders behind one small interface, after implicit's ``fit`` / ``recommend``.

    model = build_model()                      # the default, chosen by evaluation
    model = build_model("als", factors=64)     # or any registered model with its parameters
    model.fit(interactions)                    # DataFrame: user_id, item_id, weight
    recs = model.recommend(user_ids, k=10)     # DataFrame: user_id, item_id, score, rank

``content`` needs ``features`` (a DataFrame indexed by item id); the default takes
them too, and then also recommends from the catalogue to users with little history.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import pandas as pd

from recommender.errors import InvalidArgumentError
from recommender.ml.algorithms.als import ALS
from recommender.ml.algorithms.base import Recommender
from recommender.ml.algorithms.blend import Blend
from recommender.ml.algorithms.content import Content
from recommender.ml.algorithms.ease import EASE
from recommender.ml.algorithms.itemknn import ItemKNN
from recommender.ml.algorithms.popularity import Popularity
from recommender.ml.algorithms.spark_als import SparkALS
from recommender.ml.algorithms.tuning import MAX_TRIALS, MAX_TUNE_USERS, TunedBlend

# Chosen on validation splits carved from the ML-100k training part only (LF's item-stratified
# 75/25 split of the 75 % train, seeds 7, 8 and 9; the test split only gave the final figures), by nDCG@10:
# EASE over l2 100..800 and user/item exponents 0..0.5; ALS over 16..128 factors, regularization
# 3..200, alpha 1..20, 15 or 30 iterations; blend weights 0.15..4 (ALS relative to EASE). The
# blend sits on a plateau: ALS weights 1.5..4 and EASE l2 300..800 lie within 0.001 of each other,
# and 64 factors within 0.001 of 128 at two thirds of the fit time (and half the memory at 100k users).
# Side features (user demographics, activity month) as extra EASE columns, a low-pass (SVD)
# component and popularity calibration did not help. On the test split EASE + ALS gained +0.006 nDCG@10
# over EASE, and +0.009 with the content part: see docs/benchmarks.md.
# The chosen EASE and ALS settings are those classes' defaults; EASE : ALS = 1 : 2. ML-100k users
# all have 20 ratings or more, so the content model's weight and fade were chosen on a nested
# temporal holdout of the simulated warehouse (a flat optimum: weights 0.25..1 and fades 2..20
# lie within 0.001 nDCG@10 of each other).
DEFAULT_WEIGHTS = {"ease": 0.4, "als": 0.8, "content": 0.5}
CONTENT_SHRINK = 5.0  # the content model's weight halves at 5 watched titles


def default_model(
    features: pd.DataFrame | None = None,
    *,
    tune: bool = True,
    validation: str = "auto",
    budget_s: float | None = None,
    max_trials: int = MAX_TRIALS,
    max_tune_users: int = MAX_TUNE_USERS,
    **overrides: Any,
) -> Blend:
    """EASE blended with ALS, plus the content model (fading with history) when ``features`` are given.

    With ``tune`` (the default) the blend chooses EASE's and ALS's settings and their weights
    on a validation split of the data it is fitted on (``validation``: temporal, random, or auto:
    temporal where the data has timestamps), within ``budget_s`` seconds and
    ``max_trials`` trials (``recommender.ml.algorithms.tuning``), starting from the settings
    below and ``overrides``; ``tune=False`` keeps them fixed.
    """
    unknown = set(overrides.get("weights", {})) - {"ease", "als", *(["content"] if features is not None else [])}
    if unknown:
        raise InvalidArgumentError(
            f"weights for components the default does not have: {sorted(unknown)};"
            f" it has {['ease', 'als', *(['content'] if features is not None else [])]}"
        )

    def components(chosen: dict[str, tuple[dict[str, Any], float]]) -> tuple[dict[str, Recommender], dict[str, float]]:
        """The blend's models and weights for ``chosen`` (name -> (parameters, weight)); weight 0 leaves one out."""
        models: dict[str, Recommender] = {
            name: kind(**chosen[name][0]) for name, kind in (("ease", EASE), ("als", ALS)) if chosen[name][1] > 0
        }
        weights = {name: chosen[name][1] for name in models}
        if features is not None:
            models["content"] = Content(features, **overrides.get("content", {}))
            weights["content"] = overrides.get("weights", {}).get("content", DEFAULT_WEIGHTS["content"])
        return models, weights

    weight = overrides.get("weights", {})
    models, weights = components(
        {name: (overrides.get(name, {}), weight.get(name, DEFAULT_WEIGHTS[name])) for name in ("ease", "als")}
    )
    shrink = {"content": CONTENT_SHRINK} if features is not None else None
    if not tune:
        return Blend(models, weights, history_shrink=shrink)
    if not {"ease", "als"} <= set(models):
        raise InvalidArgumentError(
            "the self-tuning default shares the weight between EASE and ALS itself: to leave one out, tune=False"
        )
    return TunedBlend(
        models,
        weights,
        shrink,
        components,
        validation=validation,
        budget_s=budget_s,
        max_trials=max_trials,
        max_tune_users=max_tune_users,
    )


MODELS: dict[str, Callable[..., Recommender]] = {
    "default": default_model,
    "default_untuned": functools.partial(default_model, tune=False),
    "popularity": Popularity,
    "ease": EASE,
    "als": ALS,
    "itemknn": ItemKNN,
    "content": Content,
    "spark_als": SparkALS,  # the spark extra (make spark): MLlib ALS on a SparkSession
}
DEFAULT_MODEL = "default"


def build_model(name: str | None = None, **params: Any) -> Recommender:
    """A new, unfitted model: ``name`` from ``MODELS`` (default ``DEFAULT_MODEL``) built with ``params``."""
    name = name or DEFAULT_MODEL
    if name not in MODELS:
        raise InvalidArgumentError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name](**params)


__all__ = ["DEFAULT_MODEL", "MODELS", "Blend", "Recommender", "TunedBlend", "build_model", "default_model"]
