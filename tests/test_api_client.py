"""The pipeline over HTTP: the simulator writes and the trainer reads through the API, with the same results.

The API runs in process (its TestClient is the client's httpx.Client) on the module's own
warehouse, and once for real (uvicorn) for the command line's ``--api``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing

import pandas as pd
import pytest
from conftest import Api, serving
from queries import query

from recommender import activity
from recommender.activity.simulate import SimulationConfig, simulate_into
from recommender.api import keys
from recommender.api.client import KEY_VARIABLE, ApiClient, ApiError, BatchRefusedError
from recommender.api.routers.marts import MARTS, PARQUET
from recommender.cli import main
from recommender.ml import train
from recommender.ml.data import title_features, warehouse_interactions
from recommender.warehouse import logins
from recommender.warehouse.targets import PROJECT_ROOT, Target, read_table

# far from the fixture's users (1 to 300) and from each other
COHORT = SimulationConfig(users=50, days=7, seed=11, first_user_id=5_000_001)
CLI_COHORT = SimulationConfig(users=10, days=3, seed=12, first_user_id=6_000_001)
# what train reads, as it reads it, and the whole tables
READS = [
    ("marts.ml_interactions", ["user_id", "content_id", "confidence", "last_interaction_at"]),
    ("marts.ml_interactions", ["last_written_at"]),
    ("marts.ml_interactions", None),
    ("marts.ml_title_features", None),
    ("core.users", ["user_id"]),
    ("core.users", None),
    ("marts.catalogue", ["content_id", "title"]),
    ("marts.catalogue", None),
    ("core.genres", None),
]


@pytest.fixture(scope="module")
def client(writable_api: Api) -> Iterator[ApiClient]:
    with ApiClient(
        str(writable_api.client.base_url), writable_api.keys["data_scientist"], http=writable_api.client
    ) as c:
        yield c


def _written(target: Target, first: int, last: int) -> tuple[list[tuple], list[tuple]]:
    """The app rows of users ``first`` to ``last``: users, then events, batch ids included."""
    users = query(
        target,
        "select user_id, age_band, country_code, signup_date, plan, device, language, attributes, batch_id"
        f" from app.users where user_id between {first} and {last} order by user_id",
    )
    events = query(
        target,
        "select event_id, user_id, content_id, started_at, seconds_watched, completion_ratio, rating, device, batch_id"
        f" from app.viewing_events where user_id between {first} and {last} order by event_id",
    )
    return users, events


def _cohort_ids(config: SimulationConfig) -> tuple[int, int]:
    return config.first_user_id, config.first_user_id + config.users - 1


def test_a_simulation_through_the_api_writes_what_a_direct_one_writes(writable_api: Api, client: ApiClient) -> None:
    target = writable_api.target
    through_api, api_results = simulate_into(client, COHORT)
    rows = _written(target, *_cohort_ids(COHORT))
    assert len(rows[0]) == COHORT.users and len(rows[1]) == len(through_api.events)
    with closing(target.connect()) as conn:
        activity.delete_users(conn, through_api.users.user_id.tolist())
        assert _written(target, *_cohort_ids(COHORT)) == ([], [])
        direct, direct_results = simulate_into(conn, COHORT)
    pd.testing.assert_frame_equal(through_api.events, direct.events)
    assert api_results == direct_results  # the same batches: kind, batch id (a digest of the content), rows
    assert [result.written for result in api_results] == [True, True]
    assert _written(target, *_cohort_ids(COHORT)) == rows
    # sent again through the API: the API knows the batches, nothing changes
    _, again = simulate_into(client, COHORT)
    assert [(r.batch_id, r.written) for r in again] == [(r.batch_id, False) for r in direct_results]
    assert _written(target, *_cohort_ids(COHORT)) == rows


def test_writes_go_in_chunks_each_a_batch(writable_api: Api) -> None:
    target, first = writable_api.target, 6_500_001
    chunked = ApiClient(
        "http://testserver", writable_api.keys["data_scientist"], chunk_rows=40, http=writable_api.client
    )
    config = SimulationConfig(users=12, days=5, seed=13, first_user_id=first)
    simulation, results = simulate_into(chunked, config)
    events = len(simulation.events)
    assert [r.kind for r in results] == ["users"] + ["viewing_events"] * -(-events // 40)
    assert [r.rows for r in results[1:]] == [min(40, events - begin) for begin in range(0, events, 40)]
    assert all(r.written for r in results)
    with closing(target.connect()) as conn:
        written = activity.read_events(conn, user_id=simulation.users.user_id.tolist())
    assert len(written) == events
    pd.testing.assert_frame_equal(
        written.reset_index(drop=True),
        activity.EventBatch.validate(simulation.events).sort_values("event_id").reset_index(drop=True),
    )


def test_the_inputs_of_training_read_through_the_api_equal_those_read_directly(
    writable_api: Api, client: ApiClient
) -> None:
    with closing(writable_api.target.connect()) as conn:
        for name, columns in READS:
            pd.testing.assert_frame_equal(client.read_table(name, columns), read_table(conn, name, columns=columns))
        pd.testing.assert_frame_equal(warehouse_interactions(client.read_table), warehouse_interactions(conn))
        pd.testing.assert_frame_equal(title_features(client.read_table), title_features(conn))
    # by the short name too
    pd.testing.assert_frame_equal(client.read_table("genres"), client.read_table("core.genres"))


def test_training_through_the_api_publishes_what_training_directly_does(writable_api: Api, client: ApiClient) -> None:
    """The whole run over HTTP (reads, start, upload, publish) as the key's own login: the same rows land."""
    target = writable_api.target
    through_api = train.train(None, k=5, read=client.read_table, runs=client)
    with closing(target.connect()) as conn:
        direct = train.train(conn, k=5)
    ((users,),) = query(target, "select count(*) from core.users")
    assert through_api.users == direct.users == users
    assert through_api.rows == direct.rows == users * 5

    def recommendations(run_id: str) -> pd.DataFrame:
        columns = ["user_id", "content_id", "score", "rank", "reason"]
        rows = query(
            target,
            f"select {', '.join(columns)} from predictions.recommendations where run_id = %s order by user_id, rank",
            (run_id,),
        )
        return pd.DataFrame(rows, columns=columns)

    pd.testing.assert_frame_equal(recommendations(through_api.run_id), recommendations(direct.run_id))
    runs = {
        run_id: (snapshot, status, started_by)
        for run_id, snapshot, status, started_by in query(
            target,
            "select run_id, data_snapshot, status, started_by from predictions.model_runs where run_id in (%s, %s)",
            (through_api.run_id, direct.run_id),
        )
    }
    assert runs[through_api.run_id][:2] == runs[direct.run_id][:2] == (runs[direct.run_id][0], "published")
    assert runs[through_api.run_id][2] == logins.key_login(keys.parse_key_id(writable_api.keys["data_scientist"]))

    def scores(metrics: dict) -> dict:
        return {
            name: {key: value for key, value in row.items() if not key.endswith("_s")} if isinstance(row, dict) else row
            for name, row in metrics.items()
        }

    assert scores(through_api.metrics) == scores(direct.metrics)


def test_a_refused_chunk_says_which_rows_of_the_frame_are_wrong(writable_api: Api) -> None:
    chunked = ApiClient(
        "http://testserver", writable_api.keys["data_scientist"], chunk_rows=2, http=writable_api.client
    )
    user = pd.DataFrame(
        {
            "user_id": [7_000_001],
            "age_band": ["25-34"],
            "country_code": ["BR"],
            "signup_date": pd.to_datetime(["2023-02-01"]),
            "plan": ["basic"],
            "device": ["mobile"],
            "language": ["pt"],
        }
    )
    assert [r.written for r in chunked.write_users(user)] == [True]
    ((known,),) = query(writable_api.target, "select content_id from core.titles order by content_id limit 1")
    events = pd.DataFrame(
        {
            "user_id": 7_000_001,
            "content_id": [known, known, "tm999999999", known],
            "started_at": pd.to_datetime(
                ["2023-02-02 20:00", "2023-02-03 20:00", "2023-02-04 20:00", "2023-02-05 20:00"], utc=True
            ),
            "seconds_watched": 600,
            "completion_ratio": 0.5,
            "rating": pd.array([None, 4, None, None], dtype="Int16"),
            "device": "tv",
        }
    )
    with pytest.raises(BatchRefusedError) as refused:
        chunked.write_events(events)
    assert isinstance(refused.value, activity.BatchError) and refused.value.status == 422
    assert refused.value.problems[["row", "column"]].values.tolist() == [[2, "content_id"]]
    assert "row 2: content_id='tm999999999'" in str(refused.value) and "before row 2" in str(refused.value)
    # a naive time is refused by the API's schema, the row and the field named as well
    with pytest.raises(BatchRefusedError, match="started_at") as naive:
        chunked.write_events(events.iloc[:1].assign(started_at=pd.Timestamp("2023-02-02 20:00")))
    assert naive.value.problems[["row", "column"]].values.tolist() == [[0, "started_at"]]


def test_marts_are_parquet_for_data_scientists_only(writable_api: Api) -> None:
    http = writable_api.client
    answer = http.get("/marts/genres", headers=writable_api.headers("data_scientist"))
    assert answer.status_code == 200 and answer.headers["content-type"] == PARQUET
    assert http.get("/marts/genres").status_code == 401
    assert http.get("/marts/genres", headers=writable_api.headers("analyst")).status_code == 403
    missing = http.get("/marts/app.users", headers=writable_api.headers("data_scientist"))
    assert missing.status_code == 404 and all(name in missing.json()["detail"] for name in MARTS)
    unknown = http.get("/marts/users?columns=user_id,secret", headers=writable_api.headers("data_scientist"))
    assert unknown.status_code == 422 and "'secret'" in unknown.json()["detail"][0]["msg"]
    analyst = ApiClient("http://testserver", writable_api.keys["analyst"], http=http)
    with pytest.raises(ApiError, match="403") as forbidden:
        analyst.read_table("marts.ml_interactions")
    assert forbidden.value.status == 403 and "data_scientist" in str(forbidden.value)


def test_simulate_and_train_with_api_over_http(
    writable_api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The commands as a user runs them (in process: the command line's imports take seconds), on a real server."""
    target, config = writable_api.target, CLI_COHORT
    for name, value in {**target.env(), KEY_VARIABLE: writable_api.keys["data_scientist"]}.items():
        monkeypatch.setenv(name, value)
    with serving(target) as url:
        simulate = ["simulate", "--api", url, "--users", str(config.users), "--days", str(config.days)]
        assert main([*simulate, "--seed", str(config.seed), "--first-user-id", str(config.first_user_id)]) == 0
        assert f"through {url}" in capsys.readouterr().out
        assert main(["train", "--api", url, "--model", "popularity", "--k", "3"]) == 0
        trained = capsys.readouterr().out
    users, events = _written(target, *_cohort_ids(config))
    assert len(users) == config.users and events
    ((run, model, status),) = query(target, "select run_id, model, status from predictions.model_runs where is_current")
    assert (model, status) == ("popularity", "published") and run in trained


def test_simulate_with_api_but_no_key_exits_2_saying_how_to_get_one() -> None:
    env = {name: value for name, value in os.environ.items() if name != KEY_VARIABLE}
    result = subprocess.run(
        [sys.executable, "-m", "recommender", "simulate", "--api", "http://127.0.0.1:9"],
        cwd=PROJECT_ROOT,
        env=env,
        text=True,
        capture_output=True,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {KEY_VARIABLE} is not set")
    assert "keys create --role data_scientist" in result.stderr


def test_api_flags_say_what_is_wrong(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(KEY_VARIABLE, raising=False)
    assert main(["train", "--api", "http://127.0.0.1:9"]) == 2
    assert KEY_VARIABLE in capsys.readouterr().err
    monkeypatch.setenv(KEY_VARIABLE, "nw_not_a_key")
    assert main(["simulate", "--api", "http://127.0.0.1:9", "--replace"]) == 2
    assert "--replace" in capsys.readouterr().err
    # a key, but no API there: says so, after retrying
    assert main(["simulate", "--api", "http://127.0.0.1:9"]) == 2
    assert "does not answer" in capsys.readouterr().err
