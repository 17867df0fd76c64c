"""A deterministic simulator of users and their viewing, built on the catalogue's features.

Each user has demographics and a latent taste: affinities for genres (shifted by
age band) and for production countries (their own country most). A user picks
titles with probability proportional to taste x popularity (IMDb votes and score)
x recency; a movie is watched once (sometimes twice), a show is binged over
several episodes in a row; liked titles are finished more often, and some events
carry an explicit rating that follows the taste. Same seed and parameters, same
users and events, to the row.

All numbers are numpy arrays over users x titles, a chunk of users at a time, so a
hundred thousand users take seconds, not minutes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Protocol

import numpy as np
import pandas as pd
from psycopg2.extensions import connection

from recommender import activity
from recommender.activity import AGE_BANDS, DEVICES, PLANS
from recommender.errors import InvalidArgumentError, MissingError
from recommender.warehouse import progress
from recommender.warehouse.targets import read_table

# Where the simulated audience lives (weights), and the language each country speaks.
HOME_COUNTRIES = {
    "US": 0.36, "IN": 0.10, "GB": 0.08, "BR": 0.07, "MX": 0.05, "CA": 0.05, "DE": 0.05, "FR": 0.05,
    "JP": 0.04, "KR": 0.04, "ES": 0.03, "NG": 0.02, "EG": 0.02, "TR": 0.02, "NA": 0.02,
}  # fmt: skip
LANGUAGES = {
    "US": "en", "IN": "hi", "GB": "en", "BR": "pt", "MX": "es", "CA": "en", "DE": "de", "FR": "fr",
    "JP": "ja", "KR": "ko", "ES": "es", "NG": "en", "EG": "ar", "TR": "tr", "NA": "en",
}  # fmt: skip
AGE_WEIGHTS = (0.14, 0.26, 0.22, 0.17, 0.12, 0.09)
# Genre tastes that drift with age: young viewers lean to these, older ones to those.
YOUNG_GENRES = ("animation", "action", "scifi", "comedy", "fantasy", "horror")
OLDER_GENRES = ("documentation", "history", "drama", "crime", "war", "western")
PLAN_WEIGHTS = (0.30, 0.45, 0.25)
DEVICE_WEIGHTS = (0.45, 0.30, 0.10, 0.15)


@dataclass(frozen=True)
class SimulationConfig:
    users: int = 3000
    days: int = 30
    seed: int = 7
    start: date = date(2023, 1, 1)
    first_user_id: int = 1
    titles_per_user_per_day: float = 0.5  # mean distinct titles a user starts per day
    chunk_users: int = 2000


@dataclass(frozen=True)
class Simulation:
    users: pd.DataFrame  # UserBatch columns
    events: pd.DataFrame  # EventBatch columns
    truth: pd.DataFrame  # one row per user: genre_<id> and country_<code> affinities (mean 1)


@dataclass(frozen=True)
class Catalogue:
    """What the simulator needs of each title, as arrays aligned on ``content_ids``."""

    content_ids: np.ndarray
    genres: list[str]
    genre_matrix: np.ndarray  # titles x genres, 1 where the title lists the genre
    countries: list[str]
    country_matrix: np.ndarray  # titles x countries
    is_show: np.ndarray
    runtime_seconds: np.ndarray
    popularity: np.ndarray  # log-odds contribution of votes, score and recency

    @classmethod
    def from_features(cls, features: pd.DataFrame) -> Catalogue:
        """From ``marts.ml_title_features`` (titles without a runtime are never watched)."""
        titles = features[features.runtime_minutes > 0].sort_values("content_id").reset_index(drop=True)
        genres = sorted({g for gs in titles.genre_ids for g in gs})
        countries = sorted({c for cs in titles.country_codes for c in cs})
        genre_matrix = np.zeros((len(titles), len(genres)), dtype=np.float32)
        country_matrix = np.zeros((len(titles), len(countries)), dtype=np.float32)
        genre_index = {g: i for i, g in enumerate(genres)}
        country_index = {c: i for i, c in enumerate(countries)}
        for row, (title_genres, title_countries) in enumerate(zip(titles.genre_ids, titles.country_codes, strict=True)):
            genre_matrix[row, [genre_index[g] for g in title_genres]] = 1
            country_matrix[row, [country_index[c] for c in title_countries]] = 1

        def standard(values: pd.Series) -> np.ndarray:
            array = values.to_numpy(dtype=np.float64)
            return (array - array.mean()) / (array.std() or 1)

        popularity = (
            0.9 * standard(titles.log_imdb_votes)
            + 0.5 * standard(titles.imdb_score_filled)
            - 0.35 * titles.years_before_latest.to_numpy(dtype=np.float64) / 5
        )
        return cls(
            content_ids=titles.content_id.to_numpy(dtype=object),
            genres=genres,
            genre_matrix=genre_matrix,
            countries=countries,
            country_matrix=country_matrix,
            is_show=titles.is_show.to_numpy(dtype=bool),
            runtime_seconds=titles.runtime_minutes.to_numpy(dtype=np.int64) * 60,
            popularity=popularity.astype(np.float32),
        )


def _users(rng: np.random.Generator, config: SimulationConfig) -> pd.DataFrame:
    n = config.users
    homes = list(HOME_COUNTRIES)
    country = rng.choice(homes, size=n, p=np.array(list(HOME_COUNTRIES.values())) / sum(HOME_COUNTRIES.values()))
    return pd.DataFrame(
        {
            "user_id": np.arange(config.first_user_id, config.first_user_id + n, dtype=np.int64),
            "age_band": rng.choice(AGE_BANDS, size=n, p=AGE_WEIGHTS),
            "country_code": country,
            "signup_date": pd.Timestamp(config.start) - pd.to_timedelta(rng.integers(1, 1500, size=n), unit="D"),
            "plan": rng.choice(PLANS, size=n, p=PLAN_WEIGHTS),
            "device": rng.choice(DEVICES, size=n, p=DEVICE_WEIGHTS),
            "language": [LANGUAGES[c] for c in country],
            "attributes": [{"activity": float(a)} for a in np.round(rng.lognormal(0, 0.5, size=n), 3)],
        }
    )


def _tastes(rng: np.random.Generator, users: pd.DataFrame, catalogue: Catalogue) -> tuple[np.ndarray, np.ndarray]:
    """Genre affinities (users x genres) and country affinities (users x countries), each with mean 1 per user."""
    n, genres = len(users), catalogue.genres
    genre_taste = rng.gamma(shape=0.6, scale=1.0, size=(n, len(genres))) + 0.05
    age = users.age_band.map({band: i / (len(AGE_BANDS) - 1) for i, band in enumerate(AGE_BANDS)}).to_numpy()
    for name in YOUNG_GENRES:
        if name in genres:
            genre_taste[:, genres.index(name)] *= 1.8 - 1.2 * age
    for name in OLDER_GENRES:
        if name in genres:
            genre_taste[:, genres.index(name)] *= 0.6 + 1.2 * age
    genre_taste /= genre_taste.mean(axis=1, keepdims=True)

    country_taste = rng.gamma(shape=2.0, scale=0.5, size=(n, len(catalogue.countries)))
    home = users.country_code.map({c: i for i, c in enumerate(catalogue.countries)})
    has_home = home.notna().to_numpy()
    country_taste[np.flatnonzero(has_home), home[has_home].astype(int).to_numpy()] *= 4
    country_taste /= country_taste.mean(axis=1, keepdims=True)
    return genre_taste.astype(np.float32), country_taste.astype(np.float32)


def affinity(genre_taste: np.ndarray, country_taste: np.ndarray, catalogue: Catalogue) -> np.ndarray:
    """Users x titles: mean affinity for the title's genres times mean affinity for its countries (1 if none)."""
    genre_counts = catalogue.genre_matrix.sum(axis=1)
    country_counts = catalogue.country_matrix.sum(axis=1)
    by_genre = np.where(genre_counts > 0, genre_taste @ catalogue.genre_matrix.T / np.maximum(genre_counts, 1), 1.0)
    by_country = np.where(
        country_counts > 0, country_taste @ catalogue.country_matrix.T / np.maximum(country_counts, 1), 1.0
    )
    return (by_genre * by_country).astype(np.float32)


def _chunk_events(
    rng: np.random.Generator, users: pd.DataFrame, affinity: np.ndarray, catalogue: Catalogue, config: SimulationConfig
) -> pd.DataFrame:
    n_users, n_titles = affinity.shape
    activity = np.array([a["activity"] for a in users.attributes])
    picks = np.clip(rng.poisson(activity * config.titles_per_user_per_day * config.days), 1, min(300, n_titles))
    # Gumbel top-k: sampling without replacement with probability proportional to exp(utility)
    utility = 2.2 * np.log(affinity) + catalogue.popularity[None, :]
    keys = utility - np.log(-np.log(rng.random(utility.shape, dtype=np.float32) + 1e-12))
    top = np.argpartition(-keys, picks.max() - 1, axis=1)[:, : picks.max()]
    order = np.take_along_axis(keys, top, axis=1).argsort(axis=1)[:, ::-1]
    top = np.take_along_axis(top, order, axis=1)
    user_row = np.repeat(np.arange(n_users), picks)
    title = top[np.arange(picks.max())[None, :] < picks[:, None]]
    window = (0.0, config.days * 86400 - 4 * 3600)
    events, event_user_row = watch(
        rng, users, user_row, title, affinity[user_row, title], catalogue, config.start, window
    )
    sequence = np.arange(len(events)) - np.repeat(
        np.searchsorted(event_user_row, np.arange(n_users)), np.bincount(event_user_row, minlength=n_users)
    )
    return pd.concat([pd.DataFrame({"event_id": events["user_id"].to_numpy() * 100_000 + sequence}), events], axis=1)


def watch(
    rng: np.random.Generator,
    users: pd.DataFrame,
    user_row: np.ndarray,
    title: np.ndarray,
    liking: np.ndarray,
    catalogue: Catalogue,
    start: date,
    window: tuple[np.ndarray | float, np.ndarray | float],
) -> tuple[pd.DataFrame, np.ndarray]:
    """The viewing sessions of users (rows of ``users``) who chose ``title`` (catalogue indexes) with ``liking``
    (their affinity for it): a movie once (sometimes twice), a show binged for several episodes; liked titles are
    finished more often, some sessions carry a rating that follows the taste. The first session starts uniformly
    within ``window`` (seconds from ``start``, per choice or for all). Returns the events (EventBatch columns but
    ``event_id``) and each event's user row."""
    show = catalogue.is_show[title]
    sessions = np.where(show, 1 + rng.geometric(1 / (1.5 + 1.5 * np.minimum(liking, 3)), size=title.size), 1)
    sessions += (~show) & (rng.random(title.size) < 0.04 * liking)
    event_user_row = np.repeat(user_row, sessions)
    event_title = np.repeat(title, sessions)
    episode = np.arange(sessions.sum()) - np.repeat(np.cumsum(sessions) - sessions, sessions)
    event_liking = np.repeat(liking, sessions)

    runtime = catalogue.runtime_seconds[event_title]
    first_start = rng.uniform(window[0], window[1], size=title.size)
    started = np.repeat(first_start, sessions) + episode * (runtime + 300)
    finish = rng.random(event_title.size) < 1 / (1 + np.exp(-(1.5 * np.log(event_liking) - 1.0)))
    completion = np.where(finish, 1.0, rng.uniform(0.03, 0.9, size=event_title.size))
    rated = rng.random(event_title.size) < 0.15
    rating = np.clip(np.round(3 + 1.6 * np.log(event_liking) + rng.normal(0, 0.7, event_title.size)), 1, 5)
    own_device = users.device.to_numpy()[event_user_row]
    events = pd.DataFrame(
        {
            "user_id": users.user_id.to_numpy()[event_user_row],
            "content_id": catalogue.content_ids[event_title],
            "started_at": pd.Timestamp(start, tz="UTC") + pd.to_timedelta(started.round(), unit="s"),
            "seconds_watched": np.round(runtime * completion).astype(np.int64),
            "completion_ratio": completion.round(4),
            "rating": pd.array(np.where(rated, rating, np.nan), dtype="Int16"),
            "device": np.where(rng.random(event_title.size) < 0.8, own_device, rng.choice(DEVICES, event_title.size)),
            "impression_id": pd.array([pd.NA] * event_title.size, dtype="Int64"),  # organic: no slate shown it
        }
    )
    return events, event_user_row


def _chunks(config: SimulationConfig) -> Iterator[slice]:
    for begin in range(0, config.users, config.chunk_users):
        yield slice(begin, min(begin + config.chunk_users, config.users))


@dataclass(frozen=True)
class Population:
    """The simulated users and their hidden tastes (rows aligned with ``users``) on ``catalogue``."""

    catalogue: Catalogue
    users: pd.DataFrame
    genre_taste: np.ndarray  # users x catalogue.genres, mean 1 per user
    country_taste: np.ndarray  # users x catalogue.countries, mean 1 per user

    def affinity(self, rows: np.ndarray, titles: np.ndarray) -> np.ndarray:
        """Affinity of user ``rows[i]`` for title ``titles[i]``, pair by pair (``affinity`` for whole matrices)."""
        catalogue = self.catalogue
        return (
            _mean_or_one(self.genre_taste[rows], catalogue.genre_matrix[titles])
            * _mean_or_one(self.country_taste[rows], catalogue.country_matrix[titles])
        ).astype(np.float32)


def _mean_or_one(taste: np.ndarray, membership: np.ndarray) -> np.ndarray:
    counts = membership.sum(axis=1)
    return np.where(counts > 0, (taste * membership).sum(axis=1) / np.maximum(counts, 1), 1.0)


def population(features: pd.DataFrame, config: SimulationConfig) -> Population:
    """The users ``simulate`` invents for ``config`` and their hidden tastes, without their viewing."""
    catalogue = Catalogue.from_features(features)
    rng = np.random.default_rng(config.seed)
    users = _users(rng, config)
    return Population(catalogue, users, *_tastes(rng, users, catalogue))


def simulate(features: pd.DataFrame, config: SimulationConfig) -> Simulation:
    """Users, their viewing events and their latent tastes, from ``marts.ml_title_features``."""
    people = population(features, config)
    catalogue, users, genre_taste, country_taste = (
        people.catalogue,
        people.users,
        people.genre_taste,
        people.country_taste,
    )
    events = []
    chunks = list(_chunks(config))
    for chunk in progress.bar(chunks, "simulating", "chunks"):
        chunk_affinity = affinity(genre_taste[chunk], country_taste[chunk], catalogue)
        chunk_rng = np.random.default_rng([config.seed, chunk.start])
        events.append(_chunk_events(chunk_rng, users.iloc[chunk], chunk_affinity, catalogue, config))
    truth = pd.concat(
        [
            users[["user_id"]],
            pd.DataFrame(genre_taste.round(4), columns=[f"genre_{g}" for g in catalogue.genres]),
            pd.DataFrame(country_taste.round(4), columns=[f"country_{c}" for c in catalogue.countries]),
        ],
        axis=1,
    )
    return Simulation(users=users, events=pd.concat(events, ignore_index=True), truth=truth)


class Destination(Protocol):
    """Where a simulation is read from and written to: ``Direct`` (a connection), or the HTTP API's client
    (``recommender.api.client.ApiClient``). Each write returns one result per batch written."""

    def read_table(self, name: str, columns: Sequence[str] | None = None) -> pd.DataFrame: ...

    def write_users(self, users: pd.DataFrame) -> list[activity.WriteResult]: ...

    def write_events(self, events: pd.DataFrame) -> list[activity.WriteResult]: ...


@dataclass(frozen=True)
class Direct:
    """The warehouse through a connection of its owner, each table written as one batch.

    With ``replace``, rows these user ids hold from another simulation (another seed,
    catalogue or period) are deleted first; without it such a clash is a BatchError.
    """

    conn: connection
    replace: bool = False

    def read_table(self, name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        return read_table(self.conn, name, columns=columns)

    def write_users(self, users: pd.DataFrame) -> list[activity.WriteResult]:
        batch = activity.prepare_users(self.conn, users)
        if self.replace and not activity.is_written(self.conn, batch.batch_id):
            activity.delete_users(self.conn, users.user_id.tolist())
        return [activity.write_prepared(self.conn, batch)]

    def write_events(self, events: pd.DataFrame) -> list[activity.WriteResult]:
        batch = activity.prepare_events(self.conn, events)
        if self.replace and not activity.is_written(self.conn, batch.batch_id):
            activity.delete_events(self.conn, pd.unique(events.user_id).tolist())
        return [activity.write_prepared(self.conn, batch)]


def _destination(target: connection | Destination, replace: bool) -> Destination:
    if isinstance(target, connection):
        return Direct(target, replace)
    if replace:
        raise InvalidArgumentError("replacing deletes what the user ids hold, which only a direct connection may do")
    return target


def write(
    target: connection | Destination, simulation: Simulation, *, replace: bool = False
) -> list[activity.WriteResult]:
    """Write the simulated users, then their events; writing the same simulation again changes nothing.

    ``target`` is a connection (``Direct``) or another destination, such as the API's client.
    With ``replace`` (a connection only), rows these user ids hold from another simulation
    are deleted first; without it such a clash is a BatchError.
    """
    destination = _destination(target, replace)
    return [*destination.write_users(simulation.users), *destination.write_events(simulation.events)]


def simulate_into(
    target: connection | Destination, config: SimulationConfig, *, replace: bool = False
) -> tuple[Simulation, list[activity.WriteResult]]:
    """Simulate on the warehouse's own catalogue (``marts.ml_title_features``) and write the result.

    ``target`` is a connection or another destination (the API's client), read from and written to.
    """
    destination = _destination(target, replace)
    features = destination.read_table("marts.ml_title_features")
    if features.empty:
        raise MissingError("marts.ml_title_features is empty: run `make run` (or dbt build) first")
    simulation = simulate(features, config)
    return simulation, write(destination, simulation)
