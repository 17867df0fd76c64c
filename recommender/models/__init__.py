"""Recommenders behind one small interface, after implicit's ``fit`` / ``recommend``.

    model = build_model()                      # the default, chosen by evaluation
    model = build_model("als", factors=64)     # or any registered model with its parameters
    model.fit(interactions)                    # DataFrame: user_id, item_id, weight
    recs = model.recommend(user_ids, k=10)     # DataFrame: user_id, item_id, score, rank
"""

from __future__ import annotations

from typing import Any

from recommender.models.base import Recommender
from recommender.models.ease import EASE
from recommender.models.popularity import Popularity

MODELS: dict[str, type[Recommender]] = {model.name: model for model in (Popularity, EASE)}
DEFAULT_MODEL = "ease"


def build_model(name: str | None = None, **params: Any) -> Recommender:
    """A new, unfitted model: ``name`` from ``MODELS`` (default ``DEFAULT_MODEL``) built with ``params``."""
    name = name or DEFAULT_MODEL
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name](**params)


__all__ = ["DEFAULT_MODEL", "MODELS", "Recommender", "build_model"]
