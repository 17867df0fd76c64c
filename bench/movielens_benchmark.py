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
                                        [--repeats 3]

Then the same models under leave-last-out (each user's latest rating tests; lines
prefixed ``leave_last_``). Prints `name: value unit` lines per model (precision@10,
ndcg@10, fit + recommend seconds: the median of ``--repeats`` fits, 3 by default), each
ranking figure with its ratio to popularity and each time with its ratio to ALS, measured
in the same run, what the self-tuning default chose, then LF's published figures (theirs,
not measured here), and writes a markdown report with a chart per protocol into ``--out``.
Guard: the self-tuning default keeps precision@10 >= 0.43 and nDCG@10 >= 0.49 on LF's
protocol, its search within its budget; the script exits 1 otherwise. A warm-up fit comes
first, so no model pays for the process's.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from recommender.ml.algorithms import MODELS, build_model
from recommender.ml.evaluate import Protocol, run
from recommender.ml.movielens import load_items, load_ratings
from recommender.ml.report import LF_REFERENCE_ML100K, tuning_summary
from recommender.warehouse.targets import PROJECT_ROOT

RECBOLE = "recbole==1.2.1"
WHEEL_NAME = "recbole-1.2.1-py3-none-any.whl"
BASELINE = "popularity"
GUARD = {"precision": 0.43, "ndcg": 0.49}  # the self-tuning default on LF's protocol
LEAVE_LAST = Protocol(split="leave_last", by="user")  # each user's latest rating tests


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
    parser.add_argument("--repeats", type=int, default=3, help="fits per model; the times are their medians")
    args = parser.parse_args()

    started, load = time.perf_counter(), os.getloadavg()[0]  # times mean little on a machine others load
    wheel = args.wheel or obtain_wheel(args.cache)
    ratings, items = load_ratings(wheel), load_items(wheel)
    names = args.models.split(",") if args.models else list(MODELS)
    # the first fit of a process pays for thread pools and caches: not any model's time
    warm = ratings.head(5000).assign(weight=1.0)
    for name in ("ease", "als"):
        build_model(name).fit(warm)
    source = f"MovieLens 100k as RecBole {RECBOLE.split('==')[1]} ships it ({wheel.name})"
    failed = []
    for protocol, title in ((Protocol(k=args.k), "MovieLens 100k"), (LEAVE_LAST, "MovieLens 100k leave-last-out")):
        report = run(
            ratings, names, protocol, source=source, title=title, out_dir=args.out, features=items, repeats=args.repeats
        )
        prefix = "" if protocol.split == "stratified" else "leave_last_"
        print(
            f"{prefix}data: {wheel.name}: {len(ratings):,} ratings, {ratings.user_id.nunique():,} users,"
            f" {ratings.item_id.nunique():,} items; train {report.train_rows:,}, test {report.test_rows:,}"
        )
        _print_figures(report.results, prefix, protocol.k)
        for name, why in report.skipped.items():
            print(f"{prefix}{name}: skipped ({why})")
        if protocol.split == "stratified":
            failed += _guard(report.results)
        print(f"{prefix}report: {report.md_path} (chart {report.png_path})")
    for row in LF_REFERENCE_ML100K.itertuples(index=False):
        slug = row.algorithm.lower().replace(" ", "_")
        ndcg = "—" if pd.isna(row[2]) else f"{row[2]:.3f}"  # not published
        print(f"lf_{slug}_precision@10: {row[1]:.3f}; lf_{slug}_ndcg@10: {ndcg} (published by LF Recommenders)")
    print(
        f"benchmark: {time.perf_counter() - started:.1f} s;"
        f" load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end (1 minute; {os.cpu_count()} cores)"
    )
    if failed:
        raise SystemExit("guard failed: " + "; ".join(failed))


def _print_figures(results: pd.DataFrame, prefix: str, k: int) -> None:
    """Per model: precision and nDCG (with their ratio to popularity), fit + recommend seconds (and ratio to ALS)."""
    by_model = results.set_index("model")
    baseline = by_model.loc[BASELINE] if BASELINE in by_model.index else None
    als = by_model.loc["als"] if "als" in by_model.index else None
    for row in results.itertuples(index=False):
        for metric, column in ((f"precision@{k}", "precision"), (f"ndcg@{k}", "ndcg")):
            value = getattr(row, column)
            ratio = f"; ratio {row.model}/{BASELINE} {value / baseline[column]:.2f}" if baseline is not None else ""
            print(f"{prefix}{row.model}_{metric}: {value:.4f}{ratio}")
        seconds = row.fit_s + row.recommend_s
        ratio = f"; ratio {row.model}/als {seconds / (als.fit_s + als.recommend_s):.1f} x" if als is not None else ""
        print(f"{prefix}{row.model}_fit_recommend: {seconds:.2f} s{ratio}")
    for name, tuning in results.attrs["tuning"].items():
        print(f"{prefix}{name}_tuning: {tuning_summary(tuning)}")


def _guard(results: pd.DataFrame) -> list[str]:
    """The self-tuning default's floor on LF's protocol, and its search within its budget; what failed."""
    if "default" not in set(results.model):
        return []
    row = results.set_index("model").loc["default"]
    tuning = results.attrs["tuning"]["default"]
    search_s, budget_s = tuning["validation"].get("search_s", 0.0), tuning["budget_s"]
    longest = max((trial["s"] for trial in tuning["trials"]), default=0.0)
    checks = {
        f"precision@10 {row.precision:.4f} >= {GUARD['precision']}": row.precision >= GUARD["precision"],
        f"ndcg@10 {row.ndcg:.4f} >= {GUARD['ndcg']}": row.ndcg >= GUARD["ndcg"],
    }
    if budget_s is None:  # the default: the trial count bounds the search (the same data, the same model)
        beyond = len(tuning["trials"]) - 2  # the two components' defaults are always tried
        checks[f"{beyond} trials within max_trials {tuning['max_trials']} (search {search_s:.2f} s)"] = (
            beyond <= tuning["max_trials"]
        )
    else:  # a trial starts only when one like it would end within the budget: its own overrun at most
        checks[
            f"search {search_s:.2f} s within its budget {budget_s:.2f} s and one trial's overrun ({longest:.2f} s)"
        ] = search_s <= budget_s + longest
    print("default_guard: " + "; ".join(f"{check}: {'yes' if ok else 'NO'}" for check, ok in checks.items()))
    return [check for check, ok in checks.items() if not ok]


if __name__ == "__main__":
    main()
