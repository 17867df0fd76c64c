"""Every registered model on MovieLens 100k under LF Recommenders' protocol, beside their published figures.

The ratings come from RecBole's wheel (``recbole-1.2.1-py3-none-any.whl`` holds
``recbole/dataset_example/ml-100k/``: 100,000 ratings, 943 users, 1,682 items), read
straight from the zip: nothing is installed. The wheel is downloaded once into
``--cache`` with ``pip download recbole==1.2.1 --no-deps`` (or given with ``--wheel``).
MovieLens may not be redistributed: the wheel stays in the cache, never in the repository.

Protocol (LF Recommenders' ``examples/06_benchmarks/movielens``): 75/25 split stratified
by item (``python_stratified_split``, seed 42), top 10, items seen in train excluded,
every held-out rating relevant. Models come from ``recommender.ml.algorithms.MODELS``; the
content model gets ML-100k's genres and release decades.

    python bench/movielens_benchmark.py [--wheel PATH] [--cache DIR] [--out target/evaluation|docs] [--models a,b]

Prints `name: value unit` lines per model (precision@10, ndcg@10, fit + recommend
seconds), each ranking figure with its ratio to popularity measured in the same run,
then LF's published figures (theirs, not measured here), and writes a markdown report
with a chart into ``--out``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from recommender.ml.algorithms import MODELS
from recommender.ml.evaluate import Protocol, run
from recommender.ml.movielens import load_items, load_ratings
from recommender.ml.report import LF_REFERENCE_ML100K
from recommender.warehouse.targets import PROJECT_ROOT

RECBOLE = "recbole==1.2.1"
WHEEL_NAME = "recbole-1.2.1-py3-none-any.whl"
BASELINE = "popularity"


def obtain_wheel(cache: Path) -> Path:
    """RecBole's wheel in ``cache``, downloaded (without dependencies) unless it is there already."""
    wheel = cache / WHEEL_NAME
    if wheel.is_file():
        return wheel
    cache.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        RECBOLE,
        "--no-deps",
        "--only-binary",
        ":all:",
        "-d",
        str(cache),
    ]
    print(f"downloading {RECBOLE} into {cache} (once)", flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 or not wheel.is_file():
        raise SystemExit(f"could not download {RECBOLE} ({' '.join(command)}):\n{result.stdout}{result.stderr}")
    return wheel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wheel", type=Path, help=f"a {WHEEL_NAME} (or any MovieLens file or folder) to read")
    parser.add_argument("--cache", type=Path, default=PROJECT_ROOT / "target" / "cache", help="where the wheel is kept")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "target" / "evaluation", help="report folder")
    parser.add_argument("--models", help=f"comma separated (default: all of {', '.join(MODELS)})")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    started = time.perf_counter()
    wheel = args.wheel or obtain_wheel(args.cache)
    ratings, items = load_ratings(wheel), load_items(wheel)
    names = args.models.split(",") if args.models else list(MODELS)
    report = run(
        ratings,
        names,
        Protocol(k=args.k),  # LF's: 75/25 stratified by item, seed 42
        source=f"MovieLens 100k as RecBole {RECBOLE.split('==')[1]} ships it ({wheel.name})",
        title="MovieLens 100k",
        out_dir=args.out,
        features=items,
    )
    results, skipped = report.results, report.skipped

    k = args.k
    print(
        f"data: {wheel.name}: {len(ratings):,} ratings, {ratings.user_id.nunique():,} users,"
        f" {ratings.item_id.nunique():,} items; train {report.train_rows:,}, test {report.test_rows:,}"
    )
    baseline = results.set_index("model").loc[BASELINE] if BASELINE in set(results.model) else None
    for row in results.itertuples(index=False):
        for metric, column in ((f"precision@{k}", "precision"), (f"ndcg@{k}", "ndcg")):
            value = getattr(row, column)
            ratio = f"; ratio {row.model}/{BASELINE} {value / baseline[column]:.2f}" if baseline is not None else ""
            print(f"{row.model}_{metric}: {value:.4f}{ratio}")
        print(f"{row.model}_fit_recommend: {row.fit_s + row.recommend_s:.2f} s")
    for name, why in skipped.items():
        print(f"{name}: skipped ({why})")
    for row in LF_REFERENCE_ML100K.itertuples(index=False):
        slug = row.algorithm.lower().replace(" ", "_")
        ndcg = "—" if pd.isna(row[2]) else f"{row[2]:.3f}"  # not published
        print(f"lf_{slug}_precision@10: {row[1]:.3f}; lf_{slug}_ndcg@10: {ndcg} (published by LF Recommenders)")

    seconds = time.perf_counter() - started
    print(f"report: {report.md_path} (chart {report.png_path}); {len(results)} models in {seconds:.1f} s")


if __name__ == "__main__":
    main()
