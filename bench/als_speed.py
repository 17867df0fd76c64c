"""Fitting our ALS model (``build_model("als")``) on synthetic implicit feedback, beside implicit itself.

The data are shaped like this project's ``marts.ml_interactions``: 5,806 titles (ids like
``tm84618`` and ``ts300399``, as pandas strings) whose popularity follows Zipf's law (a few
titles take most views); each user watches a lognormal number of distinct titles (mean 50,
so 100,000 users make about 5 million rows), drawn by popularity without replacement; the
weight is the warehouse's confidence, ``1 + 4 ln(1 + engagement) (0.5 + 0.5 recency)``
(1 to about 10). Rows are generated with numpy a chunk of users at a time.

For each size, in the same run:
- ours: ``build_model("als", **params).fit(df)`` end to end (id encoding, CSR matrix,
  popularity, reweighting, implicit's solver with BLAS at one thread, factor copies);
- baseline (a): implicit's ``AlternatingLeastSquares(...).fit(csr)`` on the matrix our model
  hands it, same parameters, BLAS at one thread too (as implicit recommends), so the ratio
  ours / implicit is the wrapper's overhead; implicit's own per-iteration times come
  from its fit callback;
- baseline (b): ``recommender.ml.algorithms.base.to_matrix(df)``, the DataFrame-to-CSR step,
  and the reweighting step alone;
- recommending the top 20 unseen titles to every user: ours (``model.recommend``, in batches
  of 2048 users, returning a DataFrame) and implicit's ``recommend`` on all users.

    python bench/als_speed.py [--sizes 10000 100000 1000000] [--runs 3] [--factors 64]

Sizes of ``--large`` users or more are measured ``--large-runs`` times (default once).
GPU ALS is not measured: implicit's GPU solver needs CUDA, and this machine has no GPU.
Prints `name: value unit` lines.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import os
import platform
import resource
import statistics
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import implicit
import implicit.gpu
import numpy as np
import pandas as pd
import scipy
from implicit.als import AlternatingLeastSquares
from threadpoolctl import threadpool_info, threadpool_limits

from recommender.ml.algorithms import build_model
from recommender.ml.algorithms.als import reweight
from recommender.ml.algorithms.base import to_matrix

N_TITLES = 5806  # the real export: 3,759 movies and 2,047 shows
N_MOVIES = 3759
MEAN_TITLES = 50.0  # distinct titles per user
SIGMA = 1.0  # of the lognormal number of titles per user
MAX_TITLES = 2000
CHUNK_USERS = 50_000
TOP_K = 20
T = TypeVar("T")


# -- data ------------------------------------------------------------------------


def catalogue(
    rng: np.random.Generator, zipf: float, titles: int = N_TITLES
) -> tuple[pd.api.extensions.ExtensionArray, np.ndarray]:
    """Title ids (pandas strings) and their popularity (probabilities, Zipf's law over a random ranking)."""
    numbers = rng.choice(np.arange(10_000, 1_000_000), size=titles, replace=False)
    prefixes = np.where(np.arange(titles) < titles * N_MOVIES // N_TITLES, "tm", "ts")
    ids = pd.array([f"{p}{n}" for p, n in zip(prefixes, numbers, strict=True)], dtype="str")
    weights = 1.0 / np.arange(1, titles + 1) ** zipf
    return ids, rng.permutation(weights / weights.sum())


def draws_for_distinct(probs: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """A function: wanted distinct titles -> draws with replacement that yield that many on average."""
    grid = np.unique(np.geomspace(1, 400_000, 400).astype(np.int64))
    expected = np.array([(1 - (1 - probs) ** m).sum() for m in grid])
    return lambda wanted: np.interp(wanted, expected, grid)


def interactions(users: int, first_user: int, probs: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    """``users`` users' rows: user_id (int64), item_id (title code, int64), weight (float64, 1 to ~10).

    Each user draws titles by popularity with replacement and keeps the first ``n``
    distinct ones (successive sampling: by popularity, without replacement).
    """
    cdf = np.cumsum(probs)
    cdf[-1] = 1.0
    draws_for = draws_for_distinct(probs)
    mu = math.log(MEAN_TITLES) - SIGMA**2 / 2
    parts: dict[str, list[np.ndarray]] = {"user_id": [], "item_id": [], "weight": []}
    for begin in range(0, users, CHUNK_USERS):
        n = min(CHUNK_USERS, users - begin)
        wanted = np.clip(np.rint(rng.lognormal(mu, SIGMA, size=n)), 1, MAX_TITLES).astype(np.int64)
        draws = np.ceil(draws_for(wanted) * 1.2).astype(np.int64) + 3
        owner = np.repeat(np.arange(n, dtype=np.int64), draws)
        items = np.searchsorted(cdf, rng.random(len(owner)), side="right").astype(np.int64)
        _, first = np.unique(owner * len(probs) + items, return_index=True)
        first.sort()  # back to the order of the draws, users in order
        owner, items = owner[first], items[first]
        starts = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=n))[:-1]])
        keep = np.arange(len(owner)) - starts[owner] < wanted[owner]
        owner, items = owner[keep], items[keep]
        engagement = rng.gamma(0.8, 2.0, size=len(owner)) + 0.05  # sum of completion ratios
        recency = 0.5 ** (rng.exponential(20.0, size=len(owner)) / 30)
        parts["user_id"].append(owner + first_user + begin)
        parts["item_id"].append(items)
        parts["weight"].append(np.round(1 + 4 * np.log1p(engagement) * (0.5 + 0.5 * recency), 4))
    return pd.DataFrame({name: np.concatenate(arrays) for name, arrays in parts.items()})


# -- timing ----------------------------------------------------------------------


def timed(action: Callable[[], T], runs: int) -> tuple[float, T]:
    """Median wall seconds of ``runs`` calls, and the last call's result."""
    seconds, result = [], None
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        result = action()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), result  # type: ignore[return-value]


def interleaved(actions: dict[str, Callable[[], Any]], runs: int) -> dict[str, tuple[float, Any]]:
    """``timed`` for several actions run in turn, the order reversed every other run (fair under drifting load)."""
    seconds: dict[str, list[float]] = {name: [] for name in actions}
    last: dict[str, Any] = {}
    for run in range(runs):
        for name in list(actions)[:: 1 if run % 2 == 0 else -1]:
            last[name] = None  # let the previous run's result go before the next one is made
            gc.collect()
            started = time.perf_counter()
            last[name] = actions[name]()
            seconds[name].append(time.perf_counter() - started)
    return {name: (statistics.median(seconds[name]), last[name]) for name in actions}


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def environment() -> str:
    pools = [
        f"{p['internal_api']} {p.get('version') or ''} {p['num_threads']} threads ({p['prefix']})".replace("  ", " ")
        for p in threadpool_info()
    ]
    caches = Path("/sys/devices/system/cpu/cpu0/cache")
    sizes = {
        f"L{(index / 'level').read_text().strip()}": (index / "size").read_text().strip()
        for index in sorted(caches.glob("index*"))
        if (index / "type").read_text().strip() != "Instruction"
    }
    cache = ", ".join(f"{level} {size}" for level, size in sizes.items()) or "caches unknown"
    return (
        f"{os.cpu_count()} cores ({platform.machine()}; {cache}), Python {platform.python_version()}, implicit"
        f" {implicit.__version__} (CUDA build: {'yes' if implicit.gpu.HAS_CUDA else 'no'}), numpy {np.__version__},"
        f" scipy {scipy.__version__}, pandas {pd.__version__}; thread pools: {'; '.join(pools)};"
        f" load average {os.getloadavg()[0]:.1f} at start"
    )


def solver_sides(direct: Any, weighted: Any, params: dict[str, Any], runs: int) -> tuple[float, float]:
    """Median seconds of one half-iteration of implicit's solver on each side: users, then items.

    The user side reads the item factors (small, cached); the item side gathers the factors
    of each title's users, which outgrow the CPU caches as users grow.
    """
    confidence = weighted * np.float32(params["alpha"]) if params["alpha"] != 1 else weighted
    transposed = confidence.T.tocsr()
    user_factors, item_factors = direct.user_factors.copy(), direct.item_factors.copy()

    def solve(matrix: Any, solved: np.ndarray, fixed: np.ndarray) -> None:
        with threadpool_limits(limits=1, user_api="blas"):
            direct.solver(matrix, solved, fixed, params["regularization"], num_threads=0)

    sides = interleaved(
        {
            "user": lambda: solve(confidence, user_factors, item_factors),
            "item": lambda: solve(transposed, item_factors, user_factors),
        },
        runs,
    )
    return sides["user"][0], sides["item"][0]


# -- one size --------------------------------------------------------------------


def measure(
    users: int, params: dict[str, Any], ids: Any, probs: np.ndarray, runs: int, rng: np.random.Generator
) -> dict[str, float]:
    gen_s, frame = timed(lambda: interactions(users, 1, probs, rng), 1)
    frame["item_id"] = ids.take(frame["item_id"].to_numpy())  # title ids as strings, as read_table gives them
    rows = len(frame)
    print(
        f"users_{users}: {rows:,} rows ({rows / users:.1f} distinct titles a user,"
        f" {frame['item_id'].nunique():,} titles, weight {frame['weight'].min():.2f} to {frame['weight'].max():.2f},"
        f" 99% below {frame['weight'].quantile(0.99):.2f}); generated in {gen_s:.1f} s;"
        f" {frame.memory_usage(deep=True).sum() / 2**20:,.0f} MiB as a DataFrame",
        flush=True,
    )

    matrix_s, (_, _, matrix) = timed(lambda: to_matrix(frame), runs)
    reweight_s, weighted = timed(lambda: reweight(matrix, params["weighting"]), runs)
    print(f"  to_matrix_{users}: {matrix_s:.3f} s (median of {runs}); {matrix.nnz:,} non-zeros", flush=True)
    print(f"  reweight_{params['weighting']}_{users}: {reweight_s:.3f} s (median of {runs})", flush=True)

    solver_params = {key: value for key, value in params.items() if key != "weighting"}
    iteration_s: list[float] = []

    def fit_implicit() -> AlternatingLeastSquares:
        with threadpool_limits(limits=1, user_api="blas"):
            direct = AlternatingLeastSquares(**solver_params, calculate_training_loss=False)
            direct.fit(weighted, show_progress=False, callback=lambda _it, seconds, _loss: iteration_s.append(seconds))
        return direct

    fits = interleaved({"ours": lambda: build_model("als", **params).fit(frame), "implicit": fit_implicit}, runs)
    (ours_s, model), (implicit_s, direct) = fits["ours"], fits["implicit"]
    iterations = params["iterations"]
    print(
        f"  als_fit_ours_{users}: {ours_s:.2f} s (median of {runs}); {ours_s / iterations:.3f} s/iteration;"
        f" {rows / ours_s:,.0f} rows/s",
        flush=True,
    )
    same = np.array_equal(model.user_factors, direct.user_factors) and np.array_equal(
        model.item_factors, direct.item_factors
    )
    print(
        f"  als_fit_implicit_{users}: {implicit_s:.2f} s (median of {runs}); solver"
        f" {statistics.median(iteration_s):.3f} s/iteration (median of {len(iteration_s)} iterations);"
        f" {rows / implicit_s:,.0f} rows/s",
        flush=True,
    )
    overhead = ours_s - implicit_s
    print(
        f"  ratio_fit_ours_over_implicit_{users}: {ours_s / implicit_s:.2f} x (overhead {overhead:.2f} s, of which"
        f" to_matrix {matrix_s:.2f} s and reweighting {reweight_s:.2f} s); same factors: {'yes' if same else 'NO'}",
        flush=True,
    )

    user_side_s, item_side_s = solver_sides(direct, weighted, params, runs)
    print(
        f"  solver_sides_{users}: user side {user_side_s:.3f} s ({user_side_s / rows * 1e9:.0f} ns/row),"
        f" item side {item_side_s:.3f} s ({item_side_s / rows * 1e9:.0f} ns/row) (one half-iteration each,"
        f" median of {runs}); user factors {direct.user_factors.nbytes / 2**20:,.1f} MiB,"
        f" item factors {direct.item_factors.nbytes / 2**20:,.1f} MiB",
        flush=True,
    )

    user_ids = model.user_index
    recommends = interleaved(
        {
            "ours": lambda: model.recommend(user_ids, k=TOP_K, exclude_seen=True),
            "implicit": lambda: direct.recommend(
                np.arange(matrix.shape[0]), matrix, N=TOP_K, filter_already_liked_items=True
            ),
        },
        runs,
    )
    (rec_s, recs), (rec_implicit_s, (top_ids, _)) = recommends["ours"], recommends["implicit"]
    codes = model.item_index.get_indexer(recs["item_id"])
    agree = float(np.mean(codes.reshape(top_ids.shape) == top_ids)) if len(codes) == top_ids.size else float("nan")
    print(
        f"  recommend_top{TOP_K}_all_users_ours_{users}: {rec_s:.2f} s (median of {runs});"
        f" {users / rec_s:,.0f} users/s; {len(recs):,} rows",
        flush=True,
    )
    print(
        f"  recommend_top{TOP_K}_all_users_implicit_{users}: {rec_implicit_s:.2f} s (median of {runs});"
        f" ratio ours/implicit {rec_s / rec_implicit_s:.1f} x; same item at the same rank {agree:.1%}",
        flush=True,
    )
    print(f"  peak_rss_so_far: {peak_rss_gib():.1f} GiB", flush=True)
    return {
        "users": users,
        "rows": rows,
        "to_matrix": matrix_s,
        "ours": ours_s,
        "implicit": implicit_s,
        "user_side": user_side_s,
        "item_side": item_side_s,
        "recommend": rec_s,
        "recommend_implicit": rec_implicit_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="users")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--large", type=int, default=500_000, help="sizes from here get --large-runs runs")
    parser.add_argument("--large-runs", type=int, default=1)
    parser.add_argument("--factors", type=int, help="override the model's default factors")
    parser.add_argument("--zipf", type=float, default=1.0, help="exponent of title popularity")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    # implicit warns about a multi-threaded BLAS when a model is constructed; both fits run with BLAS at 1 thread
    warnings.filterwarnings("ignore", message="OpenBLAS is configured", category=RuntimeWarning)

    overrides = {"factors": args.factors} if args.factors else {}
    params = build_model("als", **overrides).params
    rng = np.random.default_rng(args.seed)
    ids, probs = catalogue(rng, args.zipf)
    top = np.sort(probs)[::-1]

    print(f"environment: {environment()}")
    print(
        "gpu: not measured: this machine has no GPU (implicit's GPU ALS solver needs CUDA;"
        f" implicit.gpu.HAS_CUDA is {implicit.gpu.HAS_CUDA})"
    )
    print(
        f"params: build_model('als'{', ' + repr(overrides) if overrides else ''}) defaults: "
        + ", ".join(f"{key}={value!r}" for key, value in params.items())
        + "; fit on all cores, BLAS limited to 1 thread in both ours and implicit's (implicit's warning about"
        " BLAS threads at model construction silenced)"
    )
    print(
        f"data: {N_TITLES:,} titles, popularity Zipf s={args.zipf} (top 1% of titles {top[: N_TITLES // 100].sum():.0%}"
        f" of draws, top 10% {top[: N_TITLES // 10].sum():.0%}); distinct titles a user lognormal"
        f" (sigma {SIGMA}, mean {MEAN_TITLES:.0f}, 1 to {MAX_TITLES}); weight = confidence"
        f" 1 + 4 ln(1 + engagement) (0.5 + 0.5 recency); seed {args.seed}",
        flush=True,
    )

    results = []
    for users in sorted(args.sizes):
        runs = min(args.runs, args.large_runs) if users >= args.large else args.runs
        results.append(measure(users, params, ids, probs, runs, rng))
        gc.collect()

    for before, after in itertools.pairwise(results):
        rows_x = after["rows"] / before["rows"]
        fit_x = after["ours"] / before["ours"]
        print(
            f"growth_{before['users']}_to_{after['users']}: rows x{rows_x:.2f}; fit ours x{fit_x:.2f},"
            f" implicit x{after['implicit'] / before['implicit']:.2f} (solver user side"
            f" x{after['user_side'] / before['user_side']:.2f},"
            f" item side x{after['item_side'] / before['item_side']:.2f}),"
            " to_matrix"
            f" x{after['to_matrix'] / before['to_matrix']:.2f}, recommend ours"
            f" x{after['recommend'] / before['recommend']:.2f}, implicit"
            f" x{after['recommend_implicit'] / before['recommend_implicit']:.2f};"
            f" fit growth / rows growth {fit_x / rows_x:.2f} (1.00 = linear)"
        )
    print(f"load_average_at_end: {os.getloadavg()[0]:.1f} (1 minute; {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
