"""Identifier patterns that the dbt models, the app tables, the batch checks and the API share.

The content-id pattern is defined once, as the dbt var ``content_id_pattern`` in
``dbt_project.yml``, and read from there, so dbt's tests and Python's checks cannot drift.
"""

from __future__ import annotations

import yaml

from recommender.warehouse.targets import PROJECT_ROOT

CONTENT_ID_PATTERN: str = yaml.safe_load((PROJECT_ROOT / "dbt_project.yml").read_text())["vars"]["content_id_pattern"]
