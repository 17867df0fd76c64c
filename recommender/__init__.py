"""netflix_warehouse's Python side, in layers (each imports only those before it):

- ``warehouse``: the PostgreSQL server, targets, dbt, loading and checking the export, access, the sample;
- ``activity``: users and their activity in schema ``app`` (validated writes, reads) and the simulator;
- ``spark`` (beside ``activity``; the spark extra): a SparkSession, the activity lake, dbt's spark target, a cluster;
- ``ml``: algorithms, data, splits, metrics, evaluation, training and publishing recommendations;
- ``refresh``: the all-or-nothing rebuild of the warehouse, which uses all three;
- ``api`` (the HTTP API) and ``cli`` (``python -m recommender``) on top.

Modules moved by the layout of release 0.2 stay importable under their old names for one release, with a
DeprecationWarning; ``recommender.models`` (``build_model``), an interface others rely on, stays without one.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
import warnings

# With the spark extra installed, pandera imports pyspark.pandas, which warns at import that pyspark 4.3 does not
# fully support pandas 3: every command would print it. What we hand Spark (Arrow transfers) is tested.
warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas", category=FutureWarning)

MOVED = {
    "models": "ml.algorithms",
    "simulate": "activity.simulate",
    "embedded": "warehouse.embedded",
    "dbt": "warehouse.dbt",
    "access": "warehouse.access",
    "logins": "warehouse.logins",
    "passwords": "warehouse.passwords",
    "watchdog": "warehouse.watchdog",
    "exports": "warehouse.exports",
    "quality": "warehouse.quality",
    "countries": "warehouse.countries",
    "sample": "warehouse.sample",
    "metrics": "ml.metrics",
    "splits": "ml.splits",
    "movielens": "ml.movielens",
    "evaluate": "ml.evaluate",
    "train": "ml.train",
    "publish": "ml.publish",
    "reasons": "ml.reasons",
    "generations": "refresh.generations",
    "pipeline": "refresh.pipeline",
}

STABLE = {"models"}  # recommender.models.build_model is a documented interface


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports ``recommender.<old>`` as the module it moved to (the same module object)."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:
        prefix, _, old = fullname.partition(".")
        if prefix == __name__ and old in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        old = spec.name.partition(".")[2]
        new = f"{__name__}.{MOVED[old]}"
        if old not in STABLE:
            warnings.warn(f"{spec.name} moved to {new}; the old name goes in the next release", DeprecationWarning, 2)
        return importlib.import_module(new)

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: ``create_module`` returned the imported module."""

    def get_code(self, fullname: str) -> types.CodeType | None:
        """The moved module's code, for ``python -m recommender.<old>`` (runpy runs it as ``__main__``)."""
        new = f"{__name__}.{MOVED[fullname.partition('.')[2]]}"
        return importlib.util.find_spec(new).loader.get_code(new)


sys.meta_path.append(_MovedModules())
