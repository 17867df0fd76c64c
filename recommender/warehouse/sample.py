"""Deterministic generator of a sample catalogue export shaped like the real one.

The real Kaggle export may not be redistributed, so the project ships this
invented catalogue instead. It keeps the export's headers, file layouts and
quirks, so every loader and model is exercised by the sample too:

- ``raw_titles.csv`` and ``raw_credits.csv`` end lines with CRLF, the best-of
  files with LF; every file but ``raw_credits.csv`` leads with an ``index`` column;
- ``genres`` and ``production_countries`` are Python-literal lists (``"['crime', 'drama']"``),
  sometimes empty (``[]``);
- blanks where the export has them (certification, seasons of movies, IMDb fields,
  one title), titles with commas, double quotes and non-ASCII characters;
- values a CSV reader may take for null: the country ``NA`` (Namibia), the
  characters ``Nan`` and ``Nat``; the unknown country ``XX``, the historic code
  ``SU``, a country given by name (``Lebanon``);
- names with stray leading/trailing spaces (one a no-break space), and the same
  person credited twice for one title and role under different character names;
- titles sharing a name, best-of lists in their own vocabulary (``documentary``
  where the titles say ``documentation``), and one best-of row that matches no title.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from recommender.warehouse.targets import PROJECT_ROOT

BEST_OF_GENRES = PROJECT_ROOT / "seeds" / "reference" / "best_of_genres.csv"
GENRES = (
    "drama", "comedy", "thriller", "action", "romance", "documentation", "crime",
    "animation", "fantasy", "family", "scifi", "european", "horror", "music",
    "history", "reality", "sport", "war", "western",
)  # fmt: skip
COUNTRIES = (
    ("US", 40), ("IN", 8), ("GB", 7), ("JP", 5), ("FR", 4), ("CA", 4), ("KR", 4),
    ("ES", 4), ("DE", 3), ("MX", 2), ("BR", 2), ("NG", 1), ("EG", 1), ("TR", 1),
    ("NA", 1), ("XX", 1), ("SU", 1), ("Lebanon", 1),
)  # fmt: skip
MOVIE_CERTIFICATES = ("G", "PG", "PG-13", "R", "NC-17")
SHOW_CERTIFICATES = ("TV-Y", "TV-Y7", "TV-G", "TV-PG", "TV-14", "TV-MA")
ADJECTIVES = (
    "Silent", "Golden", "Broken", "Hidden", "Last", "Crimson", "Midnight", "Lost",
    "Wild", "Frozen", "Secret", "Burning", "Distant", "Little", "Electric", "Quiet",
)  # fmt: skip
NOUNS = (
    "Harbor", "Protocol", "Garden", "Kingdom", "Signal", "River", "Empire", "Orchard",
    "Frontier", "Letters", "Island", "Summer", "Machine", "Crossing", "Dynasty", "Choir",
)  # fmt: skip
PLACES = ("Beirut", "Lagos", "Seoul", "Mumbai", "Oaxaca", "Reykjavík", "Kraków", "São Paulo")
FIRST_NAMES = (
    "Ana", "Bilal", "Chen", "Dana", "Emeka", "Freya", "Gustavo", "Hana", "Ivan", "Jo",
    "Kenji", "Lea", "Mateo", "Nadia", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tomás",
)  # fmt: skip
LAST_NAMES = (
    "Adeyemi", "Bauer", "Castillo", "Dubois", "Eriksen", "Fujita", "García", "Haddad",
    "Iyer", "Jansen", "Kim", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Park",
)  # fmt: skip
CHARACTERS = ("Detective", "Captain", "Mother", "The Stranger", "Narrator", "Doctor", "Himself")
NULL_LIKE_CHARACTERS = ("Nan", "Nat")

TITLES_HEADER = (
    "index", "id", "title", "type", "release_year", "age_certification", "runtime",
    "genres", "production_countries", "seasons", "imdb_id", "imdb_score", "imdb_votes",
)  # fmt: skip
CREDITS_HEADER = ("person_id", "id", "name", "character", "role")
BEST_HEADERS = {
    "raw_best_movies": ("index", "TITLE", "RELEASE_YEAR", "SCORE", "NUMBER_OF_VOTES",
                        "DURATION", "MAIN_GENRE", "MAIN_PRODUCTION"),
    "raw_best_shows": ("index", "TITLE", "RELEASE_YEAR", "SCORE", "NUMBER_OF_VOTES",
                       "DURATION", "NUMBER_OF_SEASONS", "MAIN_GENRE", "MAIN_PRODUCTION"),
    "raw_best_movie_by_year": ("index", "TITLE", "RELEASE_YEAR", "SCORE", "MAIN_GENRE",
                               "MAIN_PRODUCTION"),
    "raw_best_show_by_year": ("index", "TITLE", "RELEASE_YEAR", "SCORE", "NUMBER_OF_SEASONS",
                              "MAIN_GENRE", "MAIN_PRODUCTION"),
}  # fmt: skip


@dataclass
class Title:
    content_id: str
    name: str
    kind: str  # MOVIE or SHOW
    release_year: int
    certificate: str
    runtime: int
    genres: list[str]
    countries: list[str]
    seasons: int | None
    imdb_id: str
    imdb_score: float | None
    imdb_votes: int | None
    credits: list[tuple[int, str, str, str]] = field(default_factory=list)


def _py_list(values: Iterable[str]) -> str:
    """Render a list the way the export does: Python's repr of a list of str."""
    return repr(list(values))


def _score_text(score: float | None, *, always_decimal: bool) -> str:
    """The titles file writes 8.0 as ``8``; the best-of files write ``8.0``."""
    if score is None:
        return ""
    if always_decimal or score != int(score):
        return f"{score:.1f}"
    return str(int(score))


def _title_name(rng: random.Random, used: set[str]) -> str:
    shapes = (
        lambda: f"The {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}",
        lambda: f"{rng.choice(NOUNS)} of {rng.choice(PLACES)}",
        lambda: f"{rng.choice(PLACES)}, {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}",
        lambda: f'{rng.choice(ADJECTIVES)} "{rng.choice(NOUNS)}" Live',
        lambda: f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}… Why?",
        lambda: f"{rng.choice(NOUNS)}\u2019s {rng.choice(NOUNS)}",
    )
    for _ in range(50):
        name = rng.choice(shapes)()
        if name not in used:
            used.add(name)
            return name
    return f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {len(used)}"


def _titles(rng: random.Random, n_titles: int) -> list[Title]:
    countries, weights = zip(*COUNTRIES, strict=True)
    used_names: set[str] = set()
    used_ids: set[str] = set()
    titles: list[Title] = []
    for i in range(n_titles):
        kind = "SHOW" if rng.random() < 0.35 else "MOVIE"
        while (content_id := f"{'ts' if kind == 'SHOW' else 'tm'}{rng.randint(10_000, 1_400_000)}") in used_ids:
            pass
        used_ids.add(content_id)
        # a few titles reuse an earlier title's name (remakes, a film and its series)
        name = rng.choice(titles).name if titles and rng.random() < 0.02 else _title_name(rng, used_names)
        has_imdb = rng.random() > 0.08
        score = round(min(9.6, max(1.5, rng.gauss(6.5, 1.1))), 1) if has_imdb and rng.random() > 0.02 else None
        if score is not None and rng.random() < 0.15:
            score = float(round(score))
        genres = [] if rng.random() < 0.012 else rng.sample(GENRES, rng.choice((1, 1, 2, 2, 3, 4)))
        place = [] if rng.random() < 0.04 else rng.choices(countries, weights, k=rng.choice((1, 1, 1, 2)))
        titles.append(
            Title(
                content_id=content_id,
                name=name,
                kind=kind,
                release_year=min(2022, int(2022 - rng.expovariate(1 / 7))) if i else 1945,
                certificate=""
                if rng.random() < 0.45
                else rng.choice(SHOW_CERTIFICATES if kind == "SHOW" else MOVIE_CERTIFICATES),
                runtime=0 if rng.random() < 0.005 else int(rng.gauss(42, 12) if kind == "SHOW" else rng.gauss(100, 25)),
                genres=genres,
                countries=list(dict.fromkeys(place)),
                seasons=max(1, int(rng.expovariate(1 / 2.2))) if kind == "SHOW" else None,
                imdb_id=f"tt{rng.randint(100_000, 20_000_000):07d}" if has_imdb else "",
                imdb_score=score,
                imdb_votes=int(rng.lognormvariate(8.5, 2)) if score is not None else None,
            )
        )
    # One title without a name or lists, as in the export.
    titles[len(titles) // 3] = Title(
        content_id="tm1063792", name="", kind="MOVIE", release_year=2015, certificate="", runtime=11,
        genres=[], countries=[], seasons=None, imdb_id="tt4661188", imdb_score=None, imdb_votes=None,
    )  # fmt: skip
    return titles


def _person_name(rng: random.Random) -> str:
    name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
    stray = rng.random()
    if stray < 0.004:
        return name + " "
    if stray < 0.006:
        return name + "\u00a0"
    if stray < 0.008:
        return " " + name
    return name


def _cast(rng: random.Random, titles: list[Title]) -> None:
    people = [(1000 + i * 7, _person_name(rng)) for i in range(max(50, len(titles) * 4))]
    # a small repertory appears again and again, most people only once or twice
    weights = [1 / (rank + 1) ** 0.8 for rank in range(len(people))]
    for title in titles:
        if title.name == "":
            continue
        if title.kind == "MOVIE" or rng.random() < 0.2:
            person_id, name = rng.choice(people)
            title.credits.append((person_id, name, "", "DIRECTOR"))
        for person_id, name in dict(rng.choices(people, weights, k=rng.randint(0, 14))).items():
            roll = rng.random()
            if roll < 0.12:
                character = ""
            elif roll < 0.13:
                character = rng.choice(NULL_LIKE_CHARACTERS)
            elif roll < 0.14:
                character = f'Miles "{rng.choice(NOUNS)}" {rng.choice(LAST_NAMES)} (voice)'
            else:
                character = f"{rng.choice(CHARACTERS)} {rng.choice(LAST_NAMES)}"
            title.credits.append((person_id, name, character, "ACTOR"))
            if character and rng.random() < 0.01:  # same person, title and role, another character
                title.credits.append((person_id, name, f"Young {character}", "ACTOR"))


# The best-of lists use a vocabulary of their own (no european, family or history; "documentary" for the
# catalogue's "documentation"): the reference seed core.title_rankings joins on, read as a catalogue -> list map.
with BEST_OF_GENRES.open(newline="") as file:
    LIST_GENRE = {row["genre_id"]: row["list_genre"] for row in csv.DictReader(file)}


def _best_genre(title: Title) -> str:
    return next((LIST_GENRE[genre] for genre in title.genres if genre in LIST_GENRE), "drama")


def _best_rows(titles: list[Title], kind: str, limit: int, *, by_year: bool) -> list[Title]:
    ranked = sorted(
        (t for t in titles if t.kind == kind and t.imdb_score is not None and t.name),
        key=lambda t: (-t.imdb_score, -(t.imdb_votes or 0), t.content_id),
    )
    if not by_year:
        return ranked[:limit]
    best_of_year: dict[int, Title] = {}
    for title in ranked:
        best_of_year.setdefault(title.release_year, title)
    return sorted(best_of_year.values(), key=lambda t: t.release_year)[:limit]


def _write(path: Path, header: tuple[str, ...], rows: Iterable[list[object]], line_end: str) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh, lineterminator=line_end)
        writer.writerow(header)
        writer.writerows(rows)


def write_sample(out_dir: Path, *, n_titles: int = 600, seed: int = 42) -> dict[str, int]:
    """Write the six export files (seed names, e.g. ``raw_titles.csv``) into ``out_dir``.

    Returns the number of data rows written per file stem. Same ``seed`` and
    ``n_titles``, same bytes.
    """
    rng = random.Random(seed)
    titles = _titles(rng, n_titles)
    _cast(rng, titles)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}

    title_rows = [
        [i, t.content_id, t.name, t.kind, t.release_year, t.certificate, t.runtime, _py_list(t.genres),
         _py_list(t.countries), t.seasons or "", t.imdb_id, _score_text(t.imdb_score, always_decimal=False),
         t.imdb_votes if t.imdb_votes is not None else ""]
        for i, t in enumerate(titles)
    ]  # fmt: skip
    _write(out_dir / "raw_titles.csv", TITLES_HEADER, title_rows, "\r\n")
    counts["raw_titles"] = len(title_rows)

    credit_rows = [[p, t.content_id, name, character, role] for t in titles for p, name, character, role in t.credits]
    _write(out_dir / "raw_credits.csv", CREDITS_HEADER, credit_rows, "\r\n")
    counts["raw_credits"] = len(credit_rows)

    lists = {
        "raw_best_movies": _best_rows(titles, "MOVIE", max(5, n_titles // 15), by_year=False),
        "raw_best_shows": _best_rows(titles, "SHOW", max(5, n_titles // 24), by_year=False),
        "raw_best_movie_by_year": _best_rows(titles, "MOVIE", 60, by_year=True),
        "raw_best_show_by_year": _best_rows(titles, "SHOW", 40, by_year=True),
    }
    for stem, best in lists.items():
        rows = []
        for i, t in enumerate(best):
            values = {
                "index": i, "TITLE": t.name, "RELEASE_YEAR": t.release_year,
                "SCORE": _score_text(t.imdb_score, always_decimal=True), "NUMBER_OF_VOTES": t.imdb_votes,
                "DURATION": t.runtime, "NUMBER_OF_SEASONS": t.seasons, "MAIN_GENRE": _best_genre(t),
                "MAIN_PRODUCTION": t.countries[0] if t.countries else "XX",
            }  # fmt: skip
            rows.append([values[column] for column in BEST_HEADERS[stem]])
        if stem == "raw_best_shows":
            # A best-of row the catalogue does not hold: loaders must keep it, not drop it.
            rows.append([len(rows), "The Uncatalogued Serial", 2019, "9.1", 120_000, 45, 3, "drama", "US"])
        _write(out_dir / f"{stem}.csv", BEST_HEADERS[stem], rows, "\n")
        counts[stem] = len(rows)
    return counts
