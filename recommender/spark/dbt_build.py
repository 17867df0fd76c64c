"""dbt's ``spark`` target run in this process, so that dbt-spark's session method sees the lake's tables.

``build_activity`` registers the lake in the process's SparkSession and runs ``dbt run --target spark
--selector activity --full-refresh``: the staging views, core viewing events, ratings and users,
``ml_interactions`` and ``user_activity_summary``, from the same SQL files as on PostgreSQL (where the
dialects differ, ``macros/`` dispatch on the adapter). Tables land in the session's catalog
(``core.*``, ``marts.*``) as Parquet in the session's warehouse folder (``recommender.spark.session``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from recommender.errors import UnavailableError
from recommender.spark import lake
from recommender.spark.session import SPARK_DIR
from recommender.warehouse.targets import PROJECT_ROOT

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def build_activity(spark: SparkSession, lake_dir: Path = lake.LAKE_DIR, *, target_dir: Path | None = None) -> int:
    """Build the activity models on ``spark`` from the lake; the number of models built."""
    from dbt.cli.main import dbtRunner

    lake.register(spark, lake_dir)
    target_dir = target_dir or SPARK_DIR / "dbt"
    args = [
        "run",
        "--target",
        "spark",
        "--selector",
        "activity",
        "--full-refresh",
        "--project-dir",
        str(PROJECT_ROOT),
        "--profiles-dir",
        str(PROJECT_ROOT / "profiles"),
        "--target-path",
        str(target_dir),
        "--log-path",
        str(target_dir / "logs"),
    ]
    result = dbtRunner().invoke(args)
    if not result.success:
        failed = [str(node.node.name) for node in (result.result or []) if node.status not in ("success", "pass")]
        raise UnavailableError(f"dbt on Spark failed ({', '.join(failed) or result.exception}); see {target_dir}/logs")
    return sum(1 for node in result.result if node.node.resource_type == "model")
