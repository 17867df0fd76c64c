"""The simulator, on a generated catalogue: deterministic, and users watch what they have a taste for."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommender import activity
from recommender.activity.simulate import SimulationConfig, simulate

GENRES = ["drama", "comedy", "horror", "documentation", "animation", "scifi", "romance", "war"]


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    """A stand-in for marts.ml_title_features: 500 titles with one to three genres."""
    rng = np.random.default_rng(0)
    n = 500
    return pd.DataFrame(
        {
            "content_id": [f"{'ts' if i % 3 == 0 else 'tm'}{1000 + i}" for i in range(n)],
            "is_show": [int(i % 3 == 0) for i in range(n)],
            "runtime_minutes": np.where(np.arange(n) % 3 == 0, 45, 100),
            "years_before_latest": rng.integers(0, 30, n),
            "imdb_score_filled": rng.uniform(4, 9, n).round(1),
            "log_imdb_votes": rng.uniform(3, 13, n).round(3),
            "genre_ids": [list(rng.choice(GENRES, size=rng.integers(1, 4), replace=False)) for _ in range(n)],
            "country_codes": [list(rng.choice(["US", "GB", "IN", "KR"], size=1)) for _ in range(n)],
        }
    )


def test_same_seed_same_simulation_other_seed_other(features: pd.DataFrame) -> None:
    config = SimulationConfig(users=300, days=20, seed=5)
    first, again = simulate(features, config), simulate(features, config)
    pd.testing.assert_frame_equal(first.users, again.users)
    pd.testing.assert_frame_equal(first.events, again.events)
    pd.testing.assert_frame_equal(first.truth, again.truth)
    other = simulate(features, SimulationConfig(users=300, days=20, seed=6))
    assert not other.events.equals(first.events)


def test_simulation_is_a_valid_batch(features: pd.DataFrame) -> None:
    simulation = simulate(features, SimulationConfig(users=200, days=20, seed=1, first_user_id=50))
    activity.UserBatch.validate(simulation.users)
    events = activity.EventBatch.validate(simulation.events)
    assert simulation.users.user_id.min() == 50
    assert set(events.content_id) <= set(features.content_id)
    assert 0.05 < events.rating.notna().mean() < 0.3  # some events carry an explicit rating
    assert events.started_at.min() >= pd.Timestamp("2023-01-01", tz="UTC")
    shows = events[events.content_id.str.startswith("ts")]
    per_show = shows.groupby(["user_id", "content_id"]).size()
    assert per_show.mean() > 1.5  # shows are binged over several episodes
    runtime = np.where(events.content_id.str.startswith("ts"), 45 * 60, 100 * 60)
    assert (events.seconds_watched <= runtime).all()


def test_users_with_a_strong_taste_watch_it_several_times_more(features: pd.DataFrame) -> None:
    simulation = simulate(features, SimulationConfig(users=3000, days=30, seed=2))
    genres_of = features.set_index("content_id").genre_ids
    events = simulation.events[["user_id", "content_id"]].assign(genres=lambda e: e.content_id.map(genres_of))
    for genre in ("horror", "documentation", "war"):
        has_genre = events.genres.map(lambda gs, g=genre: g in gs)
        base_rate = has_genre.mean()
        fans = simulation.truth.user_id[simulation.truth[f"genre_{genre}"] >= 3]
        fan_rate = has_genre[events.user_id.isin(fans)].mean()
        assert len(fans) > 50
        assert fan_rate >= 2.5 * base_rate, (genre, fan_rate, base_rate)
