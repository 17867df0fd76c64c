"""An evaluation's report: a markdown table and a chart of the models' figures."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def markdown_table(frame: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub markdown table of ``frame`` (floats to ``digits`` places, seconds to 2, NaN as a dash)."""

    def cell(column: str, value: object) -> str:
        if isinstance(value, float | np.floating):
            if np.isnan(value):
                return "—"
            return f"{value:.2f}" if column.endswith("_s") else f"{value:.{digits}f}"
        if isinstance(value, int | np.integer):
            return f"{value:,}"
        return str(value)

    columns = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(cell(c, v) for c, v in zip(columns, row, strict=True)) + " |")
    return "\n".join(lines)


def write_report(results: pd.DataFrame, out_dir: str | Path, title: str, protocol_text: str) -> tuple[Path, Path]:
    """Write ``<slug>.md`` (protocol, results, LF's ML-100k figures) and ``<slug>.png`` (bar charts) into ``out_dir``.

    Returns the paths of the markdown file and of the PNG chart.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "evaluation"
    md_path, png_path = out_dir / f"{slug}.md", out_dir / f"{slug}.png"
    _plot(results, title, png_path)
    text = [
        f"# {title}",
        "",
        protocol_text.strip(),
        "",
        markdown_table(results),
        "",
        "precision, recall, ndcg, map: at k, averaged over the test users (binary relevance: every held-out"
        " interaction is relevant). coverage: share of the catalogue (train and test items) recommended to anyone."
        " avg_popularity: mean share of train users who interacted with a recommended item; popularity_lift: that"
        " over the catalogue's mean; head_share: share of recommendations from the most popular items that make up"
        " 20 % of train interactions. fit_s, recommend_s: wall-clock seconds.",
        "",
        f"![{title}]({png_path.name})",
        "",
        *tuning_section(results.attrs.get("tuning", {})),
        "## For context: LF Recommenders' published MovieLens 100k figures",
        "",
        "Their figures, not ours: from microsoft/recommenders' benchmark notebook (75/25 split stratified by item,"
        " seed 42, top 10, seen items excluded). Comparable with a run under the same protocol only.",
        "",
        markdown_table(LF_REFERENCE_ML100K, digits=3),
        "",
    ]
    md_path.write_text("\n".join(text), encoding="utf-8")
    return md_path, png_path


def tuning_summary(tuning: dict[str, Any]) -> str:
    """One line saying what a self-tuning model chose (``params["tuning"]``), and on what evidence."""
    chosen, validation = tuning["chosen"], tuning.get("validation", {})
    ease, als = chosen["ease"], chosen["als"]
    scores = validation.get("ndcg@10", {})
    evidence = (
        f"; validation nDCG@10 blend {scores['blend']:.4f}, EASE {scores['ease']:.4f}, ALS {scores['als']:.4f}"
        f" on {validation['users']:,} users"
        if scores
        else "; no validation (too little data): the defaults"
    )
    budget = "" if tuning["budget_s"] is None else f", budget {tuning['budget_s']:.2f} s"
    return (
        f"EASE l2 {ease['l2']:g}, exponents user {ease['user_exponent']:g} item {ease['item_exponent']:g};"
        f" ALS regularization {als['regularization']:g}, alpha {als['alpha']:g}, {als['factors']} factors;"
        f" ALS share {chosen['als_share']:.2f}{evidence}; {len(tuning['trials'])} trials"
        f" ({tuning['max_trials']} at most beyond the defaults{budget})"
    )


def tuning_section(tunings: dict[str, dict[str, Any]]) -> list[str]:
    """Markdown lines: what each self-tuning model searched and chose (none without one)."""
    if not tunings:
        return []
    lines = ["## What the self-tuning models chose", ""]
    for name, tuning in tunings.items():
        lines += [f"- {name}: {tuning_summary(tuning)}. Search space: `{json.dumps(tuning['space'])}`"]
    return [*lines, ""]


def _plot(results: pd.DataFrame, title: str, path: Path) -> None:
    # imported here: matplotlib takes a second to import, and only a report draws
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ranking = ["precision", "recall", "ndcg", "map"]
    lists = ["coverage", "head_share", *(["taste"] if "taste" in results.columns else [])]
    models = results["model"].astype(str).tolist()
    figure = Figure(figsize=(12, 4.5), layout="tight")  # the Agg canvas, no pyplot: nothing global, never a window
    FigureCanvasAgg(figure)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    for axis, columns, label in ((left, ranking, "ranking metrics at k"), (right, lists, "share")):
        width = 0.8 / max(len(models), 1)
        positions = np.arange(len(columns))
        for i, model in enumerate(models):
            values = results.loc[results["model"].astype(str) == model, columns].to_numpy(dtype=float).ravel()
            axis.bar(positions + (i - (len(models) - 1) / 2) * width, values, width, label=model)
        axis.set_xticks(positions, columns)
        axis.set_ylabel(label)
        axis.grid(axis="y", alpha=0.3)
    left.legend(fontsize="small")
    figure.suptitle(title)
    figure.savefig(path, dpi=120)


# LF Recommenders' published figures on MovieLens 100k (their benchmark notebook: 75/25 split
# stratified by item, seed 42, top 10, seen items excluded). Theirs, for context, not ours.
LF_REFERENCE_ML100K = pd.DataFrame(
    {
        "algorithm": ["BiVAE", "BPR", "LightGCN", "SAR", "Spark ALS"],
        "precision@10": [0.411, 0.389, 0.362, 0.341, 0.043],
        "ndcg@10": [0.472, 0.445, 0.417, 0.394, np.nan],
    }
)
