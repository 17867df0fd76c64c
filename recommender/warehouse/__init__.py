"""The warehouse itself: its PostgreSQL server (embedded or yours), targets, dbt, loading and checking the export,
access (groups, personal and key logins, the watchdog), reference data and the generated sample.

``from recommender.warehouse import read_table, target_from_env`` is what a notebook needs to read the marts.
"""

from recommender.warehouse.targets import Target, read_table, target_from_env

__all__ = ["Target", "read_table", "target_from_env"]
