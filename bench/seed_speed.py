"""`dbt seed --full-refresh` of the catalogue export: stock dbt against this project, in one run.

Stock is the same project with the seed-loading macro overrides removed, so both
load the same files into the same server. A bare COPY of the files is the floor.
Prints `name: value unit` lines, medians of --runs, and the ratios.

    python bench/seed_speed.py [--raw-data-dir DIR] [--runs 5] [--stock-runs 1]

Without --raw-data-dir it uses ../shared/data/netflix when present, else a
generated export of the real one's size.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

from recommender.warehouse import exports
from recommender.warehouse.dbt import dbt_env
from recommender.warehouse.sample import write_sample
from recommender.warehouse.targets import PROJECT_ROOT, Target, throwaway_warehouse

REAL_EXPORT = PROJECT_ROOT.parent / "shared" / "data" / "netflix"
OUR_SEED_MACROS = ("postgres__load_csv_rows.sql", "postgres__reset_csv_table.sql", "assert_seed_columns.sql")
DBT = Path(sys.executable).with_name("dbt")


def project_copy(dest: Path, *, ours: bool) -> Path:
    """A copy of the dbt project, with our seed macros or without them (dbt's own loader runs)."""
    skip = ("*.py", *(() if ours else OUR_SEED_MACROS))
    dest.mkdir(parents=True)
    for name in ("dbt_project.yml", "models", "macros", "tests", "seeds"):
        source = PROJECT_ROOT / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns(*skip))
        else:
            shutil.copy(source, dest / name)
    return dest


def dbt_seed(project: Path, target: Target, files: dict[str, Path]) -> Callable[[], None]:
    """``dbt seed --full-refresh`` of ``project``, after a ``dbt parse`` so runs parse partially, as in daily use."""
    raw_dir = exports.prepare(files, project / "target" / "raw_export")
    env = dbt_env(target, raw_dir, project / "target", project_dir=project)

    def dbt(*args: str) -> None:
        subprocess.run([str(DBT), *args, "--quiet", "--project-dir", str(project)], env=env, check=True)

    dbt("parse")
    return lambda: dbt("seed", "--full-refresh")


def timed(action: Callable[[], object], runs: int) -> float:
    """Median wall seconds of ``runs`` calls."""
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--raw-data-dir", type=Path)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stock-runs", type=int, default=1)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="seed-bench-") as tmp_name:
        tmp = Path(tmp_name)
        folder = args.raw_data_dir or (REAL_EXPORT if REAL_EXPORT.is_dir() else None)
        if folder is None:
            folder = tmp / "generated"
            write_sample(folder, n_titles=5806)
        files = exports.locate(folder)

        with throwaway_warehouse("seed_bench") as target:
            with closing(target.connect()) as conn:
                counts = exports.check(conn, files)
                bare = timed(lambda: exports.check(conn, files), args.runs)
            ours_s = timed(dbt_seed(project_copy(tmp / "ours", ours=True), target, files), args.runs)
            stock_s = timed(dbt_seed(project_copy(tmp / "stock", ours=False), target, files), args.stock_runs)

    print(f"export: {folder} ({', '.join(f'{name} {rows:,}' for name, rows in counts.items())})")
    print(f"stock_dbt_seed_full_refresh: {stock_s:.2f} s (median of {args.stock_runs})")
    print(f"our_dbt_seed_full_refresh: {ours_s:.2f} s (median of {args.runs})")
    print(f"bare_copy_of_all_files: {bare:.2f} s (median of {args.runs})")
    print(f"ratio_stock_over_ours: {stock_s / ours_s:.1f} x")
    print(f"ratio_ours_over_bare_copy: {ours_s / bare:.1f} x")


if __name__ == "__main__":
    main()
