"""Run the dbt CLI of this environment against a warehouse target."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from recommender.errors import InvalidArgumentError
from recommender.warehouse.targets import PROJECT_ROOT, Target

PROFILES_DIR = PROJECT_ROOT / "profiles"
PR_SET_PDEATHSIG = 1  # prctl option, linux/prctl.h
SAMPLE_SEEDS = PROJECT_ROOT / "seeds" / "netflix"
# dbt's default seed path (dbt_project.yml): the export copy the live generation was built from
LIVE_EXPORT = PROJECT_ROOT / ".exports" / "live"


DBT_LOCK_TIMEOUT = "60s"


def dbt_env(
    target: Target,
    raw_dir: Path | None = None,
    target_path: Path | None = None,
    project_dir: Path = PROJECT_ROOT,
    schema_suffix: str = "",
    app_schema: str = "app",
) -> dict[str, str]:
    """The environment a dbt child process needs: libpq variables, profiles, raw-export folder.

    ``raw_dir`` must lie inside ``project_dir``: dbt writes each seed's compiled SQL
    to ``<target>/run/<project>/<seed path>``, and for an absolute seed path that
    is the CSV file itself. Without it dbt reads the live export copy, or the sample
    before any build. ``schema_suffix`` builds every dbt schema under that suffix
    (a refresh's next generation); ``app_schema`` is where dbt reads app's tables.
    """
    if raw_dir is None and not os.environ.get("NETFLIX_RAW_DIR") and not LIVE_EXPORT.exists():
        raw_dir = SAMPLE_SEEDS
    env = {
        **os.environ,
        **target.env(),
        "DBT_PROFILES_DIR": str(PROFILES_DIR),
        # colours only where they show: a log file would hold their escape codes
        "DBT_USE_COLORS": os.environ.get("DBT_USE_COLORS", str(sys.stdout.isatty()).lower()),
        # a reader's lock on a table dbt replaces makes dbt fail after a minute rather than wait without end
        "PGOPTIONS": f"{os.environ.get('PGOPTIONS', '')} -c lock_timeout={DBT_LOCK_TIMEOUT}".strip(),
    }
    # Set only where they differ from dbt_project.yml's defaults: dbt re-parses the whole
    # project when a variable it read changes between set and unset, and plain `dbt` after
    # `source .venv/bin/activate` leaves them unset.
    env |= {"NETFLIX_SCHEMA_SUFFIX": schema_suffix} if schema_suffix else {}
    env |= {"NETFLIX_APP_SCHEMA": app_schema} if app_schema != "app" else {}
    if raw_dir is not None:
        if not raw_dir.absolute().is_relative_to(project_dir.absolute()):
            raise InvalidArgumentError(f"the raw export folder {raw_dir} must be inside the dbt project {project_dir}")
        # the link itself, not where it points: dbt must read whatever it points at when it runs
        env["NETFLIX_RAW_DIR"] = str(raw_dir.absolute().relative_to(project_dir.absolute()))
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
    schema_suffix: str = "",
    app_schema: str = "app",
) -> subprocess.CompletedProcess[str]:
    """Run ``dbt <args>`` in the project; the caller checks ``returncode``. See ``dbt_env`` for the options."""
    executable = Path(sys.executable).with_name("dbt")
    return subprocess.run(
        [str(executable), *args],
        cwd=PROJECT_ROOT,
        env=dbt_env(target, raw_dir, target_path, schema_suffix=schema_suffix, app_schema=app_schema),
        text=True,
        capture_output=capture,
        check=False,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )


def _die_with_parent() -> None:
    """In the dbt child: be killed when the process that started it dies (a killed refresh stops its build too)."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def results(target_path: Path = PROJECT_ROOT / "target") -> dict[str, tuple[str, str]]:
    """unique_id -> (resource type, status) of each node of the last dbt invocation, from run_results.json."""
    found = json.loads((target_path / "run_results.json").read_text())["results"]
    return {r["unique_id"]: (r["unique_id"].split(".", 1)[0], r["status"]) for r in found}


def failures(target_path: Path = PROJECT_ROOT / "target") -> list[str]:
    """One line per node of the last dbt invocation that failed or errored: its name, status and message."""
    path = target_path / "run_results.json"
    if not path.exists():
        return []
    results = json.loads(path.read_text())["results"]
    lines = []
    for result in results:
        if result["status"] in ("fail", "error", "runtime error"):
            message = " ".join((result.get("message") or "").split())
            if len(message) > 300:
                message = message[:300] + "..."
            lines.append(
                f"dbt {result['unique_id'].split('.', 1)[0]} {result['unique_id'].rsplit('.', 1)[-1]}: {message}"
            )
    return lines
