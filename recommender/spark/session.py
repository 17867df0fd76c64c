"""A SparkSession for the warehouse's activity path: local mode by default, a cluster by its master URL.

The session keeps its catalog in memory and its tables under ``target/spark/warehouse``; the
lake's Parquet files are registered into it by ``recommender.spark.lake``. Memory stays modest
(``NETFLIX_SPARK_DRIVER_MEMORY``, default 2g): the machines this runs on share their memory.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from recommender.errors import UnavailableError
from recommender.warehouse.targets import PROJECT_ROOT

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[2]"
SPARK_DIR = PROJECT_ROOT / "target" / "spark"
SHUFFLE_PARTITIONS = 8  # the default 200 costs more in task start-up than it gains on a few cores


@functools.cache  # asks Java once per process
def missing() -> str | None:
    """Why Spark cannot run here (no pyspark, no Java), or None when it can."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed: make spark (pip install -e '.[spark]')"
    java = shutil.which("java", path=str(Path(os.environ["JAVA_HOME"]) / "bin")) if "JAVA_HOME" in os.environ else None
    java = java or shutil.which("java")
    if java is None or subprocess.run([java, "-version"], capture_output=True, check=False).returncode:
        return "no Java runtime (Spark 4 needs Java 17+): apt-get install openjdk-17-jre-headless"
    return None


def spark_home() -> Path:
    """The pyspark package's folder, which holds Spark's jars, bin/ and sbin/ scripts."""
    require()
    return Path(importlib.util.find_spec("pyspark").origin).parent


def require() -> None:
    """Raise ``UnavailableError`` saying what to install when Spark cannot run here."""
    reason = missing()
    if reason:
        raise UnavailableError(reason)


def get_session(
    master: str | None = None,
    *,
    warehouse_dir: Path | None = None,
    driver_memory: str | None = None,
    executor_memory: str = "1g",
) -> SparkSession:
    """The process's SparkSession (started if needed) on ``master`` (``NETFLIX_SPARK_MASTER``, default local[2]).

    A session already running is returned as it is: one process holds one SparkSession, and dbt-spark's
    session method uses the one that is active.
    """
    require()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if warehouse_dir is None:  # the catalog lives in memory: its tables' files live and go with the process
        SPARK_DIR.mkdir(parents=True, exist_ok=True)
        warehouse_dir = Path(tempfile.mkdtemp(prefix="warehouse-", dir=SPARK_DIR))
        atexit.register(shutil.rmtree, warehouse_dir, ignore_errors=True)
    builder = (
        SparkSession.builder.master(master or os.environ.get("NETFLIX_SPARK_MASTER", DEFAULT_MASTER))
        .appName("netflix_warehouse")
        .config("spark.driver.memory", driver_memory or os.environ.get("NETFLIX_SPARK_DRIVER_MEMORY", "2g"))
        .config("spark.executor.memory", executor_memory)
        .config("spark.sql.catalogImplementation", "in-memory")
        .config("spark.sql.warehouse.dir", str(warehouse_dir.resolve()))
        .config("spark.sql.shuffle.partitions", SHUFFLE_PARTITIONS)
        .config("spark.sql.session.timeZone", "UTC")  # timestamps as PostgreSQL's timestamptz reads in UTC
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.extraJavaOptions", "-Xss16m")
        .config("spark.executor.extraJavaOptions", "-Xss16m")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
    )
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    # iterative jobs (ALS) cut their lineage at checkpoints; without, its plans overflow the JVM's stack
    session.sparkContext.setCheckpointDir(str(warehouse_dir / "_checkpoints"))
    return session
