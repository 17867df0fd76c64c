"""One protocol over several data sets: ``python -m recommender evaluate --datasets a.data b/ratings.csv ...``.

Each file (any layout ``recommender.ml.movielens`` reads) is split by the protocol, the
models ``SWEEP_MODELS`` (the self-tuning default, the fixed default, each collaborative
component, popularity) are evaluated on it, and everything lands in one table: a row per
data set, protocol and model, with the ranking figures, the seconds to fit and recommend,
and their ratio to ALS's in the same run. With a single data set, the leave-last-out
protocol (each user's latest interaction tests) is run on it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from recommender.ml import movielens
from recommender.ml.evaluate import Protocol, evaluate_models, model_factories
from recommender.ml.report import markdown_table, tuning_summary

SWEEP_MODELS = ("default", "default_untuned", "ease", "als", "itemknn", "popularity")
BASELINE = "als"  # of the time ratio
COLUMNS = ("dataset", "protocol", "model", "precision", "recall", "ndcg", "map", "coverage", "fit_s", "recommend_s")


@dataclass(frozen=True)
class Sweep:
    results: pd.DataFrame  # COLUMNS and time_vs_als, a row per data set, protocol and model
    tunings: dict[tuple[str, str], str]  # (data set, protocol) -> what the self-tuning default chose
    md_path: Path


def protocols_for(paths: Sequence[Path], protocol: Protocol) -> list[Protocol]:
    """``protocol``, and leave-last-out beside it when there is one data set only."""
    if len(paths) == 1 and protocol.split != "leave_last":
        return [protocol, replace(protocol, split="leave_last", by="user")]
    return [protocol]


def sweep(
    paths: Sequence[Path], protocol: Protocol, out_dir: Path, names: Sequence[str] = SWEEP_MODELS, repeats: int = 1
) -> Sweep:
    """Evaluate ``names`` on every file of ``paths`` under ``protocol`` (see the module docstring); write the table.
    ``repeats``: as ``evaluate_models``'s."""
    frames, tunings = [], {}
    for path in paths:
        ratings = movielens.load_ratings(path)
        try:
            features = movielens.load_items(path)
        except movielens.MissingFileError:
            features = None
        for each in protocols_for(paths, protocol):
            train, test = each.apply(ratings)
            factories, _ = model_factories(names, features, each.validation)
            results = evaluate_models(factories, train, test, each.k, repeats=repeats)
            label = _label(each)
            for name, tuning in results.attrs["tuning"].items():
                tunings[(path.name, f"{label}, {name}")] = tuning_summary(tuning)
            seconds = results["fit_s"] + results["recommend_s"]
            baseline = seconds[results["model"] == BASELINE]
            frames.append(
                results.assign(dataset=path.name, protocol=label)[list(COLUMNS)].assign(
                    time_vs_als=seconds / baseline.iloc[0] if len(baseline) else float("nan")
                )
            )
    table = pd.concat(frames, ignore_index=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path = out_dir / "datasets.md"
    lines = [
        "# Evaluation over data sets",
        "",
        f"Protocols: {'; '.join(_label(p) for p in protocols_for(paths, protocol))}; top {protocol.k}, seen items"
        " excluded. time_vs_als: fit + recommend seconds over ALS's on the same data in the same run.",
        "",
        markdown_table(table),
        "",
        "## What the self-tuning default chose",
        "",
        *(f"- {data}, {where}: {summary}" for (data, where), summary in tunings.items()),
        "",
    ]
    md_path.write_text("\n".join(lines), encoding="utf-8")
    return Sweep(table, tunings, md_path)


def _label(protocol: Protocol) -> str:
    if protocol.split == "leave_last":
        return "leave-last-out"
    share = f"{protocol.ratio:.0%}/{1 - protocol.ratio:.0%}"
    return f"{protocol.split} {share} by {protocol.by}" + (
        f", seed {protocol.seed}" if protocol.split == "stratified" else ""
    )
