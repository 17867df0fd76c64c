"""The activity path and training on Apache Spark, published as any run: ``python -m recommender spark demo``.

The app's new events flow into the lake (``recommender.spark.lake``), dbt's ``spark`` target builds
the activity models from them (``recommender.spark.dbt_build``), and ``train`` fits ``spark_als`` on
the Spark-built ``marts.ml_interactions`` and publishes its top-k through the same publisher as a
Python run: analysts, the API and rollback see a run like any other.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
from psycopg2.extensions import connection

from recommender.ml.data import ReadTable
from recommender.ml.train import TrainResult, train
from recommender.spark import dbt_build, lake
from recommender.warehouse import progress
from recommender.warehouse.targets import read_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# what the spark target builds and training reads from Spark (the users too: a lake written directly has
# users PostgreSQL does not); everything else comes from PostgreSQL
SPARK_BUILT = ("core.users", "marts.ml_interactions", "marts.user_activity_summary")


@dataclass(frozen=True)
class SparkRun:
    exported: dict[str, int]  # rows moved into the lake per table
    models_built: int
    trained: TrainResult

    def __str__(self) -> str:
        moved = ", ".join(f"{name} {rows:,}" for name, rows in self.exported.items())
        return f"lake: {moved} rows exported; dbt on Spark: {self.models_built} models built; {self.trained}"


def spark_table(spark: SparkSession, name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A table of ``spark``'s catalog as PostgreSQL's reads give it: decimals as floats, timestamps in UTC."""
    frame = spark.table(name).select(*(columns or spark.table(name).columns)).toPandas()
    for column, kind in spark.table(name).select(*frame.columns).dtypes:
        if kind.startswith("decimal"):
            frame[column] = frame[column].astype("float64")
        elif kind == "timestamp":
            frame[column] = pd.to_datetime(frame[column]).dt.tz_localize("UTC")
    return frame


def spark_reader(conn: connection, spark: SparkSession) -> ReadTable:
    """``ReadTable`` of the Spark-built tables from ``spark``, the rest from the warehouse."""

    def read(name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        if name in SPARK_BUILT:
            return spark_table(spark, name, columns)
        return read_table(conn, name, columns=columns)

    return read


def run(
    conn: connection, spark: SparkSession, lake_dir: Path = lake.LAKE_DIR, *, k: int = 20, holdout: bool = True
) -> SparkRun:
    """Export new activity to the lake, build the activity models on ``spark``, train and publish ``spark_als``
    (evaluated on the temporal holdout first unless not ``holdout``)."""
    with progress.phase("spark", "lake", "new app rows into date-partitioned Parquet"):
        exported = lake.export(conn, lake_dir)
    with progress.phase("spark", "dbt", "the activity models on Spark (dbt --target spark)"):
        built = dbt_build.build_activity(spark, lake_dir)
    trained = train(conn, "spark_als", k=k, read=spark_reader(conn, spark), holdout=holdout)
    return SparkRun(exported, built, trained)
