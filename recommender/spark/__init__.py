"""Apache Spark for the activity path when one PostgreSQL host is outgrown (the ``spark`` extra: ``make spark``).

``session`` starts a SparkSession (local mode or a cluster, by the master URL), ``lake`` copies
the app's activity from PostgreSQL into date-partitioned Parquet by the ``written_at`` watermark
and registers it as tables, ``dbt_build`` runs dbt's ``spark`` target in the same process, and
``cluster`` starts a standalone master and workers from the scripts in the pyspark wheel.
Nothing here imports pyspark at import time: the default install works without it.
"""
