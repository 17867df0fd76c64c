"""The closed loop on a real warehouse: its known answers, its determinism, and the open loop it reduces to."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommender import activity
from recommender.activity.simulate import simulate
from recommender.cli import main
from recommender.errors import ConflictError, InvalidArgumentError
from recommender.experiments.arms import ArmSpec, first_unseen, parse_arms, random_candidates
from recommender.experiments.choice import ChoiceModel
from recommender.experiments.config import LoopConfig, LoopResult
from recommender.experiments.loop import run_experiment
from recommender.refresh import pipeline
from recommender.warehouse.dbt import run_dbt
from recommender.warehouse.targets import Target, read_table

# the loop's known answers and determinism judge our code; the SQL it feeds is test_experiment_marts' (every server)
pytestmark = pytest.mark.one_server
# What every experiment's tables hold, without what differs by construction between two runs
# of one experiment: when rows were written (written_at, and the batch digests of rows that
# name a run), and the ids of the runs its arms published.
EXPERIMENT_TABLES = {
    "app.assignments": "select user_id, arm, assigned_at from app.assignments where experiment_id = %(id)s",
    "app.impressions": "select impression_id, user_id, content_id, arm, slate_id, position, shown_at"
    " from app.impressions where experiment_id = %(id)s",
    "app.slate_utilities": "select slate_id, user_id, slate_utility, oracle_utility"
    " from app.slate_utilities where experiment_id = %(id)s",
    "app.viewing_events": "select e.* from app.viewing_events as e"
    " join app.assignments as a on a.user_id = e.user_id where a.experiment_id = %(id)s",
}


def _config(arms: str, **settings: object) -> LoopConfig:
    return LoopConfig(arms=parse_arms(arms), **{"users": 300, "days": 4, "warmup_days": 7, **settings})


def _tables(target: Target, experiment_id: int) -> dict[str, pd.DataFrame]:
    with closing(target.connect()) as conn:
        found = {}
        for name, query in EXPERIMENT_TABLES.items():
            with conn.cursor() as cur:
                cur.execute(query, {"id": experiment_id})
                frame = pd.DataFrame(cur.fetchall(), columns=[column.name for column in cur.description])
            frame = frame.drop(columns=["written_at", "batch_id"], errors="ignore")
            found[name] = frame.sort_values(list(frame.columns[:2])).reset_index(drop=True)
        return found


def _click_through(target: Target, experiment_id: int) -> tuple[float, float]:
    """Share of impressions an event cites, and the mean position of those cited."""
    with closing(target.connect()) as conn, conn.cursor() as cur:
        cur.execute(
            "select count(distinct e.impression_id)::float / (select count(*) from app.impressions"
            "   where experiment_id = %(id)s),"
            " avg(i.position) from app.impressions as i join"
            " (select distinct impression_id from app.viewing_events) as e using (impression_id)"
            " where i.experiment_id = %(id)s",
            {"id": experiment_id},
        )
        ctr, position = cur.fetchone()
    return ctr, float(position)


def test_arms_are_parsed_with_clear_errors() -> None:
    arms = parse_arms("default, fixed=run:abc,frozen=popularity:once,oracle")
    assert arms == (
        ArmSpec("default", "default"),
        ArmSpec("fixed", None, "abc"),
        ArmSpec("frozen", "popularity", once=True),
        ArmSpec("oracle", "oracle"),
    )
    retrained = {arm.name: [arm.retrains(day, 7) for day in (0, 7)] for arm in arms}
    assert retrained == {
        "default": [True, True],
        "fixed": [False, False],
        "frozen": [True, False],
        "oracle": [False, False],
    }
    for bad, said in [
        ("default,default", "must differ"),
        ("svd", "unknown model 'svd'"),
        ("Big=default", "lower case"),
        ("x=run:", "needs a run id"),
        ("oracle=oracle:once", "never trained"),
        ("x=default:twice", "unknown option"),
        ("", "at least one arm"),
    ]:
        with pytest.raises(InvalidArgumentError, match=said):
            parse_arms(bad)
    with pytest.raises(InvalidArgumentError, match="slate_size must be 0 to 100, not 101"):
        _config("random", slate_size=101, candidates=200)
    with pytest.raises(InvalidArgumentError, match="control 'x' is not one of the arms"):
        _config("random", control="x")


def test_slates_are_the_first_unwatched_candidates() -> None:
    seen = np.zeros((2, 6), dtype=bool)
    seen[0, [1, 2]] = True
    candidates = np.array([[1, 2, 3, 4, 5], [5, -1, 4, 3, 2]])
    assert first_unseen(candidates, seen, np.array([0, 1]), 2).tolist() == [[3, 4], [5, 4]]
    assert first_unseen(candidates[:1], seen, np.array([0]), 4).tolist() == [[3, 4, 5, -1]]
    drawn = random_candidates(np.random.default_rng(1), 50, 20, 5)
    for row in drawn:
        kept = row[row >= 0]
        assert len(kept) == len(set(kept.tolist())) >= 5  # distinct titles, enough for a slate


def test_slates_off_is_the_open_loop_simulator(small_warehouse: pipeline.Summary) -> None:
    """Without slates the loop writes the open-loop simulator's users and events, row for row."""
    target = small_warehouse.target
    config = _config("random,oracle", slate_size=0, seed=21)
    result = run_experiment(target, config, first_user_id=700_001)
    assert (result.slates, result.clicks, result.churned) == (0, 0, 0)
    with closing(target.connect()) as conn:
        features = read_table(conn, "marts.ml_title_features")
        written = activity.read_events(conn, user_id=list(range(700_001, 700_301)))
        users = activity.read_users(conn)
    expected = simulate(features, config.simulation(700_001))
    pd.testing.assert_frame_equal(
        written.reset_index(drop=True),
        activity.EventBatch.validate(expected.events).sort_values("event_id").reset_index(drop=True),
    )
    pd.testing.assert_frame_equal(
        users[users.user_id >= 700_001].reset_index(drop=True), activity.UserBatch.validate(expected.users)
    )


def test_position_bias_moves_click_through_as_the_model_says(small_warehouse: pipeline.Summary) -> None:
    """A stronger position bias lowers every position's utility but the first's least: fewer clicks, nearer the top."""
    target = small_warehouse.target
    found = {}
    for bias, first_user in ((0.0, 710_001), (2.0, 720_001)):
        config = _config("oracle,random", seed=5, choice=ChoiceModel(position_bias=bias))
        result = run_experiment(target, config, first_user_id=first_user)
        found[bias] = _click_through(target, result.experiment_id)
    (flat_ctr, flat_position), (steep_ctr, steep_position) = found[0.0], found[2.0]
    assert steep_ctr < 0.8 * flat_ctr
    assert steep_position < flat_position - 1
    assert flat_position > 4  # with no bias, clicks spread over the whole slate of 10


def test_the_same_seed_gives_identical_tables(small_warehouse: pipeline.Summary, work_dir: Path) -> None:
    """Running an experiment again in its place (``replace_existing``) rewrites the very same rows."""
    target = small_warehouse.target
    config = _config("popularity,random", retrain_every=2, seed=9)
    first = run_experiment(target, config, experiment_id=901, first_user_id=730_001, target_path=work_dir)
    before = _tables(target, 901)
    again = run_experiment(
        target, config, experiment_id=901, first_user_id=730_001, replace_existing=True, target_path=work_dir
    )
    after = _tables(target, 901)
    assert len(first.runs["popularity"]) == 2 and first.runs["popularity"] != again.runs["popularity"]
    assert (first.slates, first.clicks, first.events) == (again.slates, again.clicks, again.events)
    assert len(before["app.impressions"]) == first.slates * 10 > 0
    for name, rows in before.items():
        pd.testing.assert_frame_equal(after[name], rows, obj=name)
    with pytest.raises(ConflictError, match="experiment 901 exists: --replace"):
        run_experiment(target, config, experiment_id=901, first_user_id=790_001, target_path=work_dir)
    with pytest.raises(ConflictError, match="user 730001 exists"):
        run_experiment(target, config, experiment_id=902, first_user_id=730_001, target_path=work_dir)
    with closing(target.connect()) as conn, conn.cursor() as cur:
        cur.execute("select experiment_id, status from app.experiments where experiment_id in (901, 902)")
        assert cur.fetchall() == [(901, "finished")]  # refused before anything was written


@pytest.fixture(scope="module")
def known_answers(
    small_warehouse: pipeline.Summary, module_work_dir: Path
) -> Iterator[tuple[Target, LoopResult, pd.DataFrame, pd.DataFrame]]:
    """Five arms on 1,500 users for 9 days, retrained every 3 days, and the marts built on them."""
    target = small_warehouse.target
    config = replace(
        _config("default,popularity,random,oracle,frozen=default:once", users=1500, days=9, retrain_every=3),
        warmup_days=14,
        seed=3,
    )
    result = run_experiment(target, config, first_user_id=740_001, target_path=module_work_dir)
    built = run_dbt(["build", "--select", "source:app+"], target, target_path=module_work_dir, capture=True)
    assert built.returncode == 0, built.stdout[-3000:]
    with closing(target.connect()) as conn:
        summary = read_table(conn, "marts.experiment_summary", where={"experiment_id": [result.experiment_id]})
        daily = read_table(conn, "marts.experiment_daily_metrics", where={"experiment_id": [result.experiment_id]})
    yield target, result, summary.set_index("arm"), daily


def test_oracle_wins_random_loses_with_intervals_apart(known_answers: tuple) -> None:
    _, _, summary, _ = known_answers
    assert len(summary) == 5 and summary["users"].sum() == 1500
    others = summary.drop(index="oracle")
    assert summary.at["oracle", "watch_minutes_ci_low"] > others["watch_minutes_ci_high"].max()
    # random is lowest; its interval lies apart from every arm that learns tastes (popularity, which learns none,
    # is above it by about 15 % here, with ~300 users an arm its interval may touch random's)
    rest = summary.drop(index="random")
    assert summary.at["random", "watch_minutes_per_user"] < rest["watch_minutes_per_user"].min()
    learned = summary.loc[["default", "frozen", "oracle"]]
    assert summary.at["random", "watch_minutes_ci_high"] < learned["watch_minutes_ci_low"].min()
    assert summary["regret_per_slate"].idxmin() == "oracle" and summary.at["oracle", "regret_per_slate"] == 0
    assert summary["regret_per_slate"].idxmax() == "random"
    for arm, row in summary.iterrows():
        assert row["watch_minutes_ci_low"] <= row["watch_minutes_per_user"] <= row["watch_minutes_ci_high"], arm


def test_default_beats_popularity_by_a_margin(known_answers: tuple) -> None:
    """On this seed and size the default model keeps its users watching at least 5 % longer than popularity."""
    _, _, summary, _ = known_answers
    assert summary.at["default", "watch_minutes_per_user"] >= 1.05 * summary.at["popularity", "watch_minutes_per_user"]
    assert summary.at["default", "click_through"] > summary.at["popularity", "click_through"]
    assert summary.at["default", "is_control"] and summary.at["default", "lift_watch_minutes"] == 0
    assert summary.at["popularity", "lift_ci_low"] <= summary.at["popularity", "lift_watch_minutes"]


def test_retraining_shows_the_feedback_loop(known_answers: tuple) -> None:
    """Retrained on what its own slates made users watch, the default homogenizes its users' viewing over the days;
    the same model trained once does less so."""
    _, result, _, daily = known_answers
    assert len(result.runs["default"]) == 3 and len(result.runs["frozen"]) == 1
    by_arm = daily.pivot(index="day", columns="arm", values="homogenization").astype(float)
    rise = by_arm.iloc[-1] - by_arm.iloc[0]
    assert rise["default"] > 0
    assert rise["default"] > rise["frozen"]


def test_the_command_refuses_bad_arguments_before_any_work(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "run", "--arms", "default,svd"]) == 2
    assert "unknown model 'svd'" in capsys.readouterr().err
    assert main(["experiment", "run", "--replace"]) == 2
    assert "--replace needs --experiment-id" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["experiment", "run", "--days", "0"])
    assert exit_.value.code == 2
