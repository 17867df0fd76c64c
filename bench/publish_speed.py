"""Publishing recommendations (``recommender.ml.publish``) beside a bare COPY of the same rows.

On a throw-away embedded PostgreSQL: top-K recommendations for N users (by default
100,000 x 20 = 2,000,000 rows: content ids like tm123456 / ts12345, float scores,
reasons like "because you watched <title>"), then, alternately, ``--repeats`` times:
- ``publish`` end to end: a pandas DataFrame in, checked, streamed by COPY into the
  run's partition, its primary key built, attached, made current, old runs pruned
  (``keep`` = 5; after ``--warmup`` untimed publishes, so each timed one replaces a run);
- the baseline: a bare COPY of the same rows, as CSV rendered beforehand (not timed),
  into a logged table with no index, key or check, committed.

    python bench/publish_speed.py [--users 100000] [--k 20] [--repeats 5] [--warmup 1]

Prints `name: value unit` lines: medians, the median seconds of each publish step, and
the ratio publish / bare COPY.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from contextlib import closing

import numpy as np
import pandas as pd
import pyarrow.csv as pyarrow_csv
from psycopg2.extensions import connection

from recommender.ml import publish
from recommender.warehouse.targets import throwaway_warehouse

TITLES = 5_806  # the real catalogue's size


def recommendations(users: int, k: int, seed: int = 0) -> pd.DataFrame:
    """Top ``k`` for users 1..``users``: realistic ids, float scores falling with rank, ~30-character reasons."""
    rng = np.random.default_rng(seed)
    numbers = rng.integers(10_000, 999_999, TITLES)
    ids = np.array([f"tm{n}" if i % 3 else f"ts{n // 10}" for i, n in enumerate(numbers)], dtype=object)
    words = np.array(["Night", "Ocean", "Love", "Dark", "City", "Dream", "Story", "Fire", "Home", "Road"])
    titles = [" ".join(rng.choice(words, rng.integers(1, 4))) for _ in range(TITLES)]
    reasons = np.array([f"because you watched {title}" for title in titles], dtype=object)
    rows = users * k
    return pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(1, users + 1, dtype=np.int64), k),
            "content_id": pd.array(ids[rng.integers(0, TITLES, rows)], dtype="str"),
            "score": np.sort(rng.random((users, k)), axis=1)[:, ::-1].ravel(),
            "rank": np.tile(np.arange(1, k + 1), users),
            "reason": pd.array(reasons[rng.integers(0, TITLES, rows)], dtype="str"),
        }
    )


def bare_copy(conn: connection, csv: bytes) -> float:
    """Seconds for a COPY of the pre-rendered CSV into an unindexed table, committed; dropped afterwards."""
    with conn, conn.cursor() as cur:
        cur.execute(
            "create table public.bare (user_id bigint, content_id text, score real, rank smallint, reason text)"
        )
    started = time.perf_counter()
    with conn, conn.cursor() as cur:
        cur.copy_expert("copy public.bare from stdin with (format csv)", io.BytesIO(csv))
    seconds = time.perf_counter() - started
    with conn, conn.cursor() as cur:
        cur.execute("drop table public.bare")
    return seconds


def timed_publish(conn: connection, frame: pd.DataFrame) -> publish.PublishResult:
    run_id = publish.start_run(conn, "bench", {"k": int(frame["rank"].max())}, {"users": int(frame.user_id.nunique())})
    return publish.publish(conn, run_id, frame, metrics={}, timings={})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1, help="untimed publishes first")
    args = parser.parse_args()

    frame = recommendations(args.users, args.k)
    started = time.perf_counter()
    csv_buffer = io.BytesIO()
    pyarrow_csv.write_csv(publish.check_rows(frame), csv_buffer, pyarrow_csv.WriteOptions(include_header=False))
    csv = csv_buffer.getvalue()
    render_s = time.perf_counter() - started
    print(f"rows: {len(frame):,} ({args.users:,} users x {args.k}); CSV {len(csv) / len(frame):.0f} bytes/row")
    print(f"check_and_render_csv_in_one_piece: {render_s:.2f} s (publish streams it while COPY runs)")

    with throwaway_warehouse("publish_bench") as target, closing(target.connect()) as conn:
        publish.ensure_schema(conn)
        for _ in range(args.warmup):
            timed_publish(conn, frame)  # caches warm, a previous run to replace
        publish_s, bare_s, steps = [], [], []
        for _ in range(args.repeats):
            began = time.perf_counter()
            result = timed_publish(conn, frame)
            publish_s.append(time.perf_counter() - began)
            steps.append(result.steps)
            bare_s.append(bare_copy(conn, csv))
            print(f"  publish {publish_s[-1]:.2f} s, bare COPY {bare_s[-1]:.2f} s ({result})")
        with conn, conn.cursor() as cur:
            cur.execute("select count(*) from predictions.current_recommendations")
            assert cur.fetchone()[0] == len(frame)

    rows, median = len(frame), statistics.median
    publish_median, bare_median = median(publish_s), median(bare_s)
    print(
        f"publish_{rows}_rows: {publish_median:.2f} s (median of {args.repeats}; {rows / publish_median:,.0f} rows/s)"
    )
    for step in steps[0]:
        print(f"  publish_step_{step}: {median(s[step] for s in steps):.3f} s")
    print(f"bare_copy_{rows}_rows: {bare_median:.2f} s (median of {args.repeats}; {rows / bare_median:,.0f} rows/s)")
    print(f"ratio_publish_over_bare_copy: {publish_median / bare_median:.2f}")


if __name__ == "__main__":
    main()
