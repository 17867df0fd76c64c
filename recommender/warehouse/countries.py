"""Writes the ISO 3166 reference seed (``seeds/reference/iso_3166_countries.csv``) from pycountry.

Rows: every current ISO 3166-1 alpha-2 code; the historic codes that were never
reused and are unambiguous (``SU`` USSR, ``YU`` Yugoslavia, ``DD`` East Germany...,
so old titles keep their country); and ``XX``, the user-assigned code the export
uses for an unknown country. ``CS`` is left out: it named two countries in turn.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pycountry

from recommender.warehouse.targets import PROJECT_ROOT

REFERENCE_SEED = PROJECT_ROOT / "seeds" / "reference" / "iso_3166_countries.csv"
HEADER = ("country_code", "country_name", "official_name", "alpha_3", "numeric_code", "country_status")
UNKNOWN = ("XX", "Unknown", "", "", "", "unknown")


def country_rows() -> list[tuple[str, ...]]:
    current = [
        (c.alpha_2, getattr(c, "common_name", c.name), getattr(c, "official_name", ""), c.alpha_3, c.numeric, "current")
        for c in pycountry.countries
    ]
    codes = {row[0] for row in current}
    uses = Counter(c.alpha_2 for c in pycountry.historic_countries)
    historic = [
        (c.alpha_2, c.name, "", c.alpha_3, getattr(c, "numeric", ""), "historic")
        for c in pycountry.historic_countries
        if c.alpha_2 not in codes and uses[c.alpha_2] == 1
    ]
    return sorted([*current, *historic, UNKNOWN])


def write_reference(path: Path = REFERENCE_SEED) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = country_rows()
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(HEADER)
        writer.writerows(rows)
    return len(rows)
