"""The default recommender (self-tuning and fixed) beside its components on a large synthetic catalogue.

Data as ``bench/als_speed.py`` makes them (Zipf popularity, lognormal titles per user,
the warehouse's confidence weights), but with ``--items`` titles (default 20,000) and
``--users`` users (default 100,000: about 5 million rows). Each user's interactions are
split 80/20 at random (``stratified_split`` by user, seed 42); each model fits on the 80 %
and recommends its top 10 unseen titles to every test user, scored against the 20 %
(popularity-only data: every model sits near popularity here; what this measures is time
and memory).

Each model runs in a process of its own, so that its peak resident memory (``ru_maxrss``,
data included) is its own. ALS runs first and again last; the ratio of each model's fit +
recommend seconds to ALS's is taken against the median of the two ALS runs, measured in
the same invocation.

    python bench/default_speed.py [--items 20000] [--users 100000] [--models default,ease,itemknn]

Prints `name: value unit` lines.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
from als_speed import catalogue, interactions

from recommender.ml import metrics
from recommender.ml.algorithms import build_model
from recommender.ml.splits import stratified_split

BASELINE = "als"
MODELS = "default,default_untuned,ease,itemknn,popularity"


def one(name: str, items: int, users: int, zipf: float, seed: int, k: int) -> dict[str, float | str]:
    """Generate the data, fit ``name`` on the train part, recommend to the test users, score; in this process."""
    warnings.filterwarnings("ignore", message="OpenBLAS is configured", category=RuntimeWarning)
    rng = np.random.default_rng(seed)
    ids, probs = catalogue(rng, zipf, items)
    frame = interactions(users, 1, probs, rng)
    frame["item_id"] = ids.take(frame["item_id"].to_numpy())
    train, test = stratified_split(frame, 0.8, by="user", seed=42)
    test_users = test["user_id"].unique()
    data_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    model = build_model(name)
    started = time.perf_counter()
    model.fit(train)
    fitted = time.perf_counter()
    recs = model.recommend(test_users, k=k)
    done = time.perf_counter()
    scores = metrics.ranking_metrics(recs, test[["user_id", "item_id"]], k)
    return {
        "model": name,
        "rows": len(frame),
        "precision": scores["precision"],
        "ndcg": scores["ndcg"],
        "fit_s": fitted - started,
        "recommend_s": done - fitted,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "data_rss_gib": data_gib,
        "tuning": json.dumps(model.params.get("tuning", {}).get("chosen")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--zipf", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--models", default=MODELS, help=f"comma separated, besides {BASELINE} (default {MODELS})")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child process: measure one model, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args.items, args.users, args.zipf, args.seed, args.k)))
        return

    print(
        f"data: {args.items:,} titles (Zipf s={args.zipf}), {args.users:,} users (lognormal titles a user, mean 50),"
        f" seed {args.seed}; 80/20 random split per user; top {args.k}; {os.cpu_count()} cores,"
        f" load average {os.getloadavg()[0]:.1f} at start",
        flush=True,
    )
    names = [BASELINE, *[n for n in args.models.split(",") if n and n != BASELINE], BASELINE]
    results: dict[str, list[dict]] = {}
    for name in names:
        command = [sys.executable, __file__, "--one", name, *sys.argv[1:]]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            print(f"{name}: failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}", flush=True)
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        results.setdefault(name, []).append(result)
        print(
            f"{name}_fit_recommend: {result['fit_s'] + result['recommend_s']:.2f} s (fit {result['fit_s']:.2f} s,"
            f" recommend {result['recommend_s']:.2f} s); {name}_peak_rss: {result['peak_rss_gib']:.2f} GiB"
            f" (data alone {result['data_rss_gib']:.2f} GiB); {name}_precision@{args.k}: {result['precision']:.4f};"
            f" {name}_ndcg@{args.k}: {result['ndcg']:.4f}"
            + (f"; chosen: {result['tuning']}" if result["tuning"] != "null" else ""),
            flush=True,
        )
    if BASELINE not in results:
        return
    baseline = statistics.median(r["fit_s"] + r["recommend_s"] for r in results[BASELINE])
    for name, runs in results.items():
        seconds = statistics.median(r["fit_s"] + r["recommend_s"] for r in runs)
        print(
            f"ratio_{name}_over_{BASELINE}: {seconds / baseline:.2f} x"
            f" (fit + recommend; {BASELINE} median {baseline:.2f} s)"
        )
    print(f"load_average_at_end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
