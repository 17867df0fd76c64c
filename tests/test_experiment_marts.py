"""The experiment marts on a hand-made experiment small enough to compute every metric by hand.

Two arms of two users each, three days from 2030-01-01 (far from the simulated cohort's
days), slates of one or two titles; the titles' genres are read from core.title_genres.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import closing
from datetime import date
from decimal import Decimal
from pathlib import Path

import pandas as pd
import pytest
from queries import query

from recommender import activity
from recommender.activity import experiments as ex
from recommender.refresh import pipeline
from recommender.warehouse.dbt import run_dbt
from recommender.warehouse.targets import Target

EXPERIMENT = 9001
FIRST_DAY = date(2030, 1, 1)
A1, A2, B1, B2 = 900_001, 900_002, 900_003, 900_004  # arm a (the control): A1, A2; arm b: B1, B2


def at(day: int, hour: int = 10) -> pd.Timestamp:
    return pd.Timestamp(FIRST_DAY, tz="UTC") + pd.Timedelta(days=day, hours=hour)


def jaccard(first: set, second: set) -> float:
    union = first | second
    return len(first & second) / len(union) if union else 0.0


def gini(counts: list[int], titles: int) -> float:
    """Gini of ``counts`` over ``titles`` titles, the unshown ones (zeros) included."""
    values = sorted([0] * (titles - len(counts)) + counts)
    total = sum(values)
    return 2 * sum(rank * value for rank, value in enumerate(values, 1)) / (titles * total) - (titles + 1) / titles


def rounded(value: float, places: int = 4) -> Decimal:
    return Decimal(str(round(value, places))).quantize(Decimal(1).scaleb(-places))


@pytest.fixture(scope="module")
def experiment(small_warehouse: pipeline.Summary, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The hand-made experiment written through recommender.activity and built by dbt; its titles and genres."""
    target: Target = small_warehouse.target
    # four titles with genres, and their genre sets
    titles = [
        content_id
        for (content_id,) in query(
            target,
            "select content_id from core.title_genres group by content_id"
            " having count(*) between 1 and 3 order by content_id limit 4",
        )
    ]
    genres = {title: set() for title in titles}
    for content_id, genre_id in query(
        target, "select content_id, genre_id from core.title_genres where content_id = any(%s)", (titles,)
    ):
        genres[content_id].add(genre_id)
    t1, t2, t3, t4 = titles
    with closing(target.connect()) as conn:
        users = pd.DataFrame(
            {
                "user_id": [A1, A2, B1, B2],
                "age_band": "25-34",
                "country_code": query(target, "select min(country_code) from core.users")[0][0],
                "signup_date": pd.Timestamp("2029-06-01"),
                "plan": "basic",
                "device": "tv",
                "language": "en",
            }
        )
        activity.write_users(conn, users)
        definition = ex.Experiment(
            EXPERIMENT,
            "hand-made",
            7,
            FIRST_DAY,
            3,
            (ex.Arm("a", "popularity", is_control=True), ex.Arm("b", "random")),
        )
        ex.create_experiment(conn, definition)
        ex.write_assignments(
            conn,
            pd.DataFrame(
                {
                    "experiment_id": EXPERIMENT,
                    "user_id": [A1, A2, B1, B2],
                    "arm": ["a", "a", "b", "b"],
                    "assigned_at": at(0, 0),
                }
            ),
        )
        # slate id -> (user, arm, day, titles)
        slates = {
            90_001: (A1, "a", 0, [t1, t2]),
            90_002: (A2, "a", 0, [t1, t3]),
            90_003: (B1, "b", 0, [t2, t4]),
            90_004: (A1, "a", 1, [t1, t4]),
            90_005: (B1, "b", 1, [t3]),
        }
        impressions = pd.DataFrame(
            [
                {
                    "impression_id": slate * 100 + position,
                    "user_id": user,
                    "content_id": title,
                    "experiment_id": EXPERIMENT,
                    "arm": arm,
                    "slate_id": slate,
                    "position": position,
                    "shown_at": at(day),
                }
                for slate, (user, arm, day, shown) in slates.items()
                for position, title in enumerate(shown, 1)
            ]
        )
        ex.write_impressions(conn, impressions)
        events = pd.DataFrame(
            [
                # user, title, when, seconds, completion, impression cited
                (A1, t1, at(0, 11), 600, 1.0, 9_000_101),
                (A1, t3, at(0, 12), 300, 0.5, None),
                (A1, t1, at(1, 11), 1800, 0.95, 9_000_401),
                (A1, t2, at(3, 11), 6000, 1.0, None),  # after the experiment: not counted
                (A2, t3, at(2, 11), 120, 0.2, None),
                (B1, t4, at(0, 11), 1200, 0.95, 9_000_302),
                (B2, t1, at(0, 13), 60, 0.1, None),
            ],
            columns=["user_id", "content_id", "started_at", "seconds_watched", "completion_ratio", "impression_id"],
        ).assign(rating=None, device="tv", impression_id=lambda frame: frame.impression_id.astype("Int64"))
        activity.write_events(conn, events)
        utilities = {90_001: (0.5, 0.9), 90_002: (0.7, 0.7), 90_003: (0.2, 1.0), 90_004: (0.6, 0.8), 90_005: (0.1, 0.4)}
        ex.write_slate_utilities(
            conn,
            pd.DataFrame(
                [
                    {
                        "slate_id": slate,
                        "experiment_id": EXPERIMENT,
                        "user_id": slates[slate][0],
                        "slate_utility": slate_utility,
                        "oracle_utility": oracle_utility,
                    }
                    for slate, (slate_utility, oracle_utility) in utilities.items()
                ]
            ),
        )
    work = tmp_path_factory.mktemp("dbt")
    result = run_dbt(["build", "--select", "source:app+"], target, target_path=Path(work), capture=True)
    assert result.returncode == 0, result.stdout[-5000:]
    catalogue = query(target, "select count(*) from core.titles")[0][0]
    yield {"target": target, "titles": titles, "genres": genres, "catalogue": catalogue}


def distance(genres: dict, first: str, second: str) -> float:
    return 1 - jaccard(genres[first], genres[second])


def ild(genres: dict, *slates: list[str]) -> float:
    """Mean over slates of the mean pairwise genre distance of their titles."""
    means = []
    for slate in slates:
        pairs = list(itertools.combinations(slate, 2))
        means.append(sum(distance(genres, a, b) for a, b in pairs) / len(pairs))
    return sum(means) / len(means)


def daily_rows(target: Target) -> dict[tuple[str, int], dict]:
    columns = [
        "arm", "day", "date", "is_control", "users_assigned", "active_users", "retention", "churned_users",
        "slates", "impressions", "clicks", "click_through", "watch_minutes_per_user", "completions_per_user",
        "slate_share", "catalogue_coverage", "exposure_gini", "intra_list_diversity", "homogenization", "regret",
    ]  # fmt: skip
    rows = query(
        target,
        f"select {', '.join(columns)} from marts.experiment_daily_metrics where experiment_id = %s",
        (EXPERIMENT,),
    )
    return {(row[0], row[1]): dict(zip(columns, row, strict=True)) for row in rows}


def test_daily_metrics_match_the_hand_computed_values(experiment: dict) -> None:
    target, genres, n = experiment["target"], experiment["genres"], experiment["catalogue"]
    t1, t2, t3, t4 = experiment["titles"]
    rows = daily_rows(target)
    assert sorted(rows) == [("a", 0), ("a", 1), ("a", 2), ("b", 0), ("b", 1), ("b", 2)]  # every day of every arm
    a0, a1, a2, b0, b1, b2 = (rows[key] for key in sorted(rows))
    assert a0["date"] == FIRST_DAY and a2["date"] == date(2030, 1, 3)
    assert a0["is_control"] and not b0["is_control"]
    assert {row["users_assigned"] for row in rows.values()} == {2}

    # arm a, day 0: both users shown a slate (4 impressions, one clicked); A1 watched 600 s from it and 300 s organic
    assert (a0["active_users"], a0["retention"], a0["churned_users"]) == (2, Decimal("1.0000"), 0)
    assert (a0["slates"], a0["impressions"], a0["clicks"], a0["click_through"]) == (2, 4, 1, Decimal("0.2500"))
    assert a0["watch_minutes_per_user"] == Decimal("7.50")  # 900 s = 15 min over 2 users
    assert a0["completions_per_user"] == Decimal("0.5000")
    assert a0["slate_share"] == rounded(600 / 900)
    assert a0["catalogue_coverage"] == rounded(3 / n)
    assert a0["exposure_gini"] == rounded(gini([2, 1, 1], n))
    assert a0["intra_list_diversity"] == rounded(ild(genres, [t1, t2], [t1, t3]))
    assert a0["regret"] == Decimal("0.2000")  # (0.4 + 0) / 2
    assert a0["homogenization"] == rounded(jaccard({t1, t3}, set()))  # 0

    # day 1: only A1 shown a slate (and clicked); A2 churned (last slate on day 0)
    assert (a1["active_users"], a1["retention"], a1["churned_users"]) == (1, Decimal("0.5000"), 1)
    assert (a1["clicks"], a1["click_through"], a1["watch_minutes_per_user"]) == (1, Decimal("0.5000"), Decimal("15.00"))
    assert a1["slate_share"] == Decimal("1.0000")
    assert a1["intra_list_diversity"] == rounded(ild(genres, [t1, t4]))
    assert a1["regret"] == Decimal("0.2000")

    # day 2: no slate (zeros, ratios over no slate are null); A2 watched t3, which A1 watched on day 0
    assert (a2["active_users"], a2["retention"], a2["churned_users"], a2["slates"]) == (0, Decimal("0.0000"), 2, 0)
    assert (a2["impressions"], a2["clicks"], a2["click_through"]) == (0, 0, None)
    assert a2["watch_minutes_per_user"] == Decimal("1.00") and a2["slate_share"] == Decimal("0.0000")
    assert a2["catalogue_coverage"] == Decimal("0.0000")
    assert (a2["exposure_gini"], a2["intra_list_diversity"], a2["regret"]) == (None, None, None)
    assert a2["homogenization"] == rounded(jaccard({t1, t3}, {t3}))  # 0.5

    # arm b: B1 shown two slates (day 0 clicked, day 1 one title), B2 only organic viewing
    assert (b0["active_users"], b0["clicks"], b0["click_through"]) == (1, 1, Decimal("0.5000"))
    assert b0["watch_minutes_per_user"] == Decimal("10.50")  # (1200 + 60) s over 2 users
    assert b0["slate_share"] == rounded(1200 / 1260)
    assert b0["exposure_gini"] == rounded(gini([1, 1], n))
    assert b0["regret"] == Decimal("0.8000")
    assert (b1["click_through"], b1["regret"]) == (Decimal("0.0000"), Decimal("0.3000"))
    assert b1["intra_list_diversity"] is None  # a slate of one title has no pair
    assert (b1["churned_users"], b2["churned_users"]) == (0, 1)  # B2, never shown a slate, never churns
    assert b2["homogenization"] == Decimal("0.0000")


def test_summary_has_one_row_per_arm_with_intervals_and_lift(experiment: dict) -> None:
    target, genres, n = experiment["target"], experiment["genres"], experiment["catalogue"]
    t1, t2, t3, t4 = experiment["titles"]
    columns = [
        "arm", "is_control", "users", "watch_minutes_per_user", "watch_minutes_ci_low", "watch_minutes_ci_high",
        "lift_watch_minutes", "lift_ci_low", "lift_ci_high", "click_through", "completions_per_user",
        "retention_last_day", "churn_rate", "slate_share", "catalogue_coverage", "exposure_gini",
        "intra_list_diversity", "homogenization_last_day", "regret_per_slate",
    ]  # fmt: skip
    rows = query(
        target,
        f"select {', '.join(columns)} from marts.experiment_summary where experiment_id = %s order by arm",
        (EXPERIMENT,),
    )
    a, b = (dict(zip(columns, row, strict=True)) for row in rows)
    assert len(rows) == 2 and a["is_control"] and not b["is_control"]
    assert (a["users"], b["users"]) == (2, 2)
    # a: A1 2700 s, A2 120 s (the 6000 s after the experiment do not count); b: B1 1200 s, B2 60 s
    assert (a["watch_minutes_per_user"], b["watch_minutes_per_user"]) == (Decimal("23.50"), Decimal("10.50"))
    for row in (a, b):
        assert row["watch_minutes_ci_low"] <= row["watch_minutes_per_user"] <= row["watch_minutes_ci_high"]
        assert row["lift_ci_low"] <= row["lift_watch_minutes"] <= row["lift_ci_high"]
    assert (a["lift_watch_minutes"], a["lift_ci_low"], a["lift_ci_high"]) == (Decimal("0.0000"),) * 3
    assert b["lift_watch_minutes"] == rounded((10.5 - 23.5) / 23.5)
    assert (a["click_through"], b["click_through"]) == (rounded(2 / 6), rounded(1 / 3))
    assert (a["completions_per_user"], b["completions_per_user"]) == (Decimal("1.0000"), Decimal("0.5000"))
    assert (a["retention_last_day"], a["churn_rate"]) == (Decimal("0.0000"), Decimal("1.0000"))
    assert (b["retention_last_day"], b["churn_rate"]) == (Decimal("0.0000"), Decimal("0.5000"))
    assert (a["slate_share"], b["slate_share"]) == (rounded(2400 / 2820), rounded(1200 / 1260))
    assert (a["catalogue_coverage"], b["catalogue_coverage"]) == (rounded(4 / n), rounded(3 / n))
    assert (a["exposure_gini"], b["exposure_gini"]) == (rounded(gini([3, 1, 1, 1], n)), rounded(gini([1, 1, 1], n)))
    assert a["intra_list_diversity"] == rounded(ild(genres, [t1, t2], [t1, t3], [t1, t4]))
    assert b["intra_list_diversity"] == rounded(ild(genres, [t2, t4]))  # a slate of one title has no pair
    assert (a["homogenization_last_day"], b["homogenization_last_day"]) == (Decimal("0.5000"), Decimal("0.0000"))
    assert (a["regret_per_slate"], b["regret_per_slate"]) == (Decimal("0.2000"), Decimal("0.5500"))


def test_user_outcomes_and_cited_impressions(experiment: dict) -> None:
    target = experiment["target"]
    outcomes = query(
        target,
        "select user_id, arm, watch_seconds, slate_seconds, completions, slates, impressions, clicks,"
        " active_days, first_slate_day, last_slate_day"
        " from marts.experiment_user_outcomes where experiment_id = %s order by user_id",
        (EXPERIMENT,),
    )
    assert outcomes == [
        (A1, "a", 2700, 2400, 2, 2, 4, 2, 2, 0, 1),
        (A2, "a", 120, 0, 0, 1, 2, 0, 1, 0, 0),
        (B1, "b", 1200, 1200, 1, 2, 3, 1, 2, 0, 1),
        (B2, "b", 60, 0, 0, 0, 0, 0, 0, None, None),
    ]
    cited = query(
        target,
        "select count(*) from core.viewing_events where user_id between %s and %s and impression_id is not null",
        (A1, B2),
    )
    assert cited == [(3,)]
