"""Run the dbt CLI of this environment against a warehouse target."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from recommender.warehouse import PROJECT_ROOT, Target

PROFILES_DIR = PROJECT_ROOT / "profiles"


def dbt_env(
    target: Target, raw_dir: Path | None = None, target_path: Path | None = None, project_dir: Path = PROJECT_ROOT
) -> dict[str, str]:
    """The environment a dbt child process needs: libpq variables, profiles, raw-export folder.

    ``raw_dir`` must lie inside ``project_dir``: dbt writes each seed's compiled SQL
    to ``<target>/run/<project>/<seed path>``, and for an absolute seed path that
    is the CSV file itself.
    """
    env = {
        **os.environ,
        **target.env(),
        "DBT_PROFILES_DIR": str(PROFILES_DIR),
        # agate warns for every declared optional column (`index`) a file does not have
        "PYTHONWARNINGS": "ignore::RuntimeWarning:agate.type_tester",
    }
    if raw_dir is not None:
        if not raw_dir.resolve().is_relative_to(project_dir.resolve()):
            raise ValueError(f"the raw export folder {raw_dir} must be inside the dbt project {project_dir}")
        env["NETFLIX_RAW_DIR"] = str(raw_dir.resolve().relative_to(project_dir.resolve()))
    if target_path is not None:
        env["DBT_TARGET_PATH"] = str(target_path)
        env["DBT_LOG_PATH"] = str(target_path / "logs")
    return env


def run_dbt(
    args: list[str],
    target: Target,
    *,
    raw_dir: Path | None = None,
    target_path: Path | None = None,
    capture: bool = False,
) -> subprocess.CompletedProcess[str]:
    """Run ``dbt <args>`` in the project; the caller checks ``returncode``."""
    executable = Path(sys.executable).with_name("dbt")
    return subprocess.run(
        [str(executable), *args],
        cwd=PROJECT_ROOT,
        env=dbt_env(target, raw_dir, target_path),
        text=True,
        capture_output=capture,
        check=False,
    )


def result_counts(target_path: Path = PROJECT_ROOT / "target") -> Counter[tuple[str, str]]:
    """(resource type, status) counts of the last dbt invocation, from run_results.json."""
    results = json.loads((target_path / "run_results.json").read_text())["results"]
    return Counter((r["unique_id"].split(".", 1)[0], r["status"]) for r in results)
