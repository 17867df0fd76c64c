"""Values as JSON carries them: for jsonb columns, HTTP answers and requests (one sanitiser for all)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

import numpy as np
import pandas as pd


def plain(value: Any, non_finite: Literal["null", "text"] = "null") -> Any:
    """``value`` as plain JSON data, containers recursively.

    Missing values (None, NA, NaT) become null; numpy scalars and arrays Python numbers and
    lists; exact decimals numbers; times ISO 8601 text; bytes ``\\x``-hex; anything else its str.
    NaN and infinities become null, or their text with ``non_finite="text"`` (where a query's
    NaN must stay apart from its NULL).
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | np.floating | Decimal):
        finite = value.is_finite() if isinstance(value, Decimal) else math.isfinite(value)
        return float(value) if finite else (None if non_finite == "null" else str(value))
    if isinstance(value, np.datetime64):
        return plain(pd.Timestamp(value), non_finite)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    if isinstance(value, Mapping):
        return {str(key): plain(item, non_finite) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [plain(item, non_finite) for item in value]
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def dumps(value: Any) -> str:
    """JSON text of ``value`` (``plain``), keys sorted: what a jsonb column or a request body gets."""
    return json.dumps(plain(value), sort_keys=True, allow_nan=False)
