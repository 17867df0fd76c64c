"""The generated sample export: deterministic, committed as generated, and as quirky as the real one."""

from __future__ import annotations

import ast
import csv
from collections import Counter
from pathlib import Path

from recommender.warehouse.countries import REFERENCE_SEED, write_reference
from recommender.warehouse.exports import ORIGINAL_NAMES, SAMPLE_DIR
from recommender.warehouse.sample import write_sample


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return list(csv.DictReader(fh))


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    write_sample(tmp_path / "a", n_titles=120, seed=7)
    write_sample(tmp_path / "b", n_titles=120, seed=7)
    write_sample(tmp_path / "c", n_titles=120, seed=8)
    for name in ORIGINAL_NAMES:
        a = (tmp_path / "a" / f"{name}.csv").read_bytes()
        assert a == (tmp_path / "b" / f"{name}.csv").read_bytes()
    assert (tmp_path / "a" / "raw_titles.csv").read_bytes() != (tmp_path / "c" / "raw_titles.csv").read_bytes()


def test_committed_sample_is_what_the_generator_writes(tmp_path: Path) -> None:
    counts = write_sample(tmp_path)
    for name, rows in counts.items():
        committed = SAMPLE_DIR / f"{name}.csv"
        assert committed.read_bytes() == (tmp_path / f"{name}.csv").read_bytes(), (
            f"regenerate with `make sample`: {name}"
        )
        assert len(_rows(committed)) == rows


def test_sample_carries_the_export_quirks() -> None:
    raw = {name: (SAMPLE_DIR / f"{name}.csv").read_bytes() for name in ORIGINAL_NAMES}
    assert raw["raw_titles"].count(b"\r\n") == raw["raw_titles"].count(b"\n")
    assert raw["raw_credits"].count(b"\r\n") == raw["raw_credits"].count(b"\n")
    assert b"\r\n" not in raw["raw_best_movies"]

    titles = _rows(SAMPLE_DIR / "raw_titles.csv")
    assert next(iter(titles[0])) == "index"
    assert any(t["title"] == "" for t in titles)
    assert any(t["genres"] == "[]" for t in titles)
    assert any(t["production_countries"] == "[]" for t in titles)
    countries = Counter(c for t in titles for c in ast.literal_eval(t["production_countries"]))
    assert {"NA", "XX", "SU", "Lebanon"} <= countries.keys()
    assert any("," in t["title"] for t in titles) and any('"' in t["title"] for t in titles)
    assert any(not t["title"].isascii() for t in titles)
    assert {t["seasons"] for t in titles if t["type"] == "MOVIE"} == {""}
    assert all(t["seasons"] for t in titles if t["type"] == "SHOW")
    assert any(t["imdb_score"] == "" for t in titles) and any(t["age_certification"] == "" for t in titles)
    assert len({t["title"] for t in titles}) < len(titles)  # titles sharing a name

    credits = _rows(SAMPLE_DIR / "raw_credits.csv")
    assert "index" not in credits[0]
    assert {"Nan", "Nat"} <= {c["character"] for c in credits}
    assert any(c["name"] != c["name"].strip() for c in credits)
    assert any(c["name"].endswith("\u00a0") for c in credits)
    per_role = Counter((c["person_id"], c["id"], c["role"]) for c in credits)
    assert max(per_role.values()) > 1

    best_shows = _rows(SAMPLE_DIR / "raw_best_shows.csv")
    catalogue = {(t["title"], t["release_year"]) for t in titles if t["type"] == "SHOW"}
    assert any((b["TITLE"], b["RELEASE_YEAR"]) not in catalogue for b in best_shows)
    assert "documentation" not in {b["MAIN_GENRE"] for b in _rows(SAMPLE_DIR / "raw_best_movies.csv")}


def test_sample_headers_are_the_real_headers(real_export: Path) -> None:
    for name, original in ORIGINAL_NAMES.items():
        with (real_export / original).open(encoding="utf-8-sig", newline="") as fh:
            real_header = next(csv.reader(fh))
        with (SAMPLE_DIR / f"{name}.csv").open(encoding="utf-8", newline="") as fh:
            assert next(csv.reader(fh)) == real_header, name


def test_committed_country_reference_is_what_the_generator_writes(tmp_path: Path) -> None:
    rows = write_reference(tmp_path / "countries.csv")
    assert REFERENCE_SEED.read_bytes() == (tmp_path / "countries.csv").read_bytes(), "regenerate with `make sample`"
    countries = {row["country_code"]: row for row in _rows(REFERENCE_SEED)}
    assert len(countries) == rows
    assert countries["NA"]["country_name"] == "Namibia"
    assert countries["SU"]["country_status"] == "historic"
    assert countries["XX"]["country_status"] == "unknown"
    assert "CS" not in countries  # it named two countries in turn
