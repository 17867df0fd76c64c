"""Experiments over HTTP: registering one (idempotent, conflicts, fields named), assigning users, impressions
and the events that cite them, reading an experiment with its summary, and who may do each."""

from __future__ import annotations

import dataclasses
from contextlib import closing
from datetime import date

import pandas as pd
import pytest
from conftest import Api
from experiment_marts import summary_row, write_summary
from queries import query

from recommender import activity
from recommender.api.client import ApiClient, ApiError

EXPERIMENT = 990_001  # users: 760_001 to 760_020 (and 760_501 on), a range no other module of writable_api uses


def _experiment(experiment_id: int, **changes: object) -> dict:
    return {
        "experiment_id": experiment_id,
        "name": "ease against popularity",
        "seed": 7,
        "first_day": "2024-05-01",
        "days": 14,
        "configuration": {"users": 100},
        "arms": [
            {"arm": "control", "model": "popularity", "is_control": True},
            {"arm": "ease", "model": "ease", "parameters": {"l2": 500.0}, "share": 3},
        ],
    } | changes


def _user(user_id: int) -> dict:
    return {
        "user_id": user_id,
        "age_band": "25-34",
        "country_code": "US",
        "signup_date": "2024-02-29",
        "plan": "premium",
        "device": "tv",
        "language": "en",
    }


def _impression(impression_id: int, user_id: int, content_id: str, **changes: object) -> dict:
    return {
        "impression_id": impression_id,
        "user_id": user_id,
        "content_id": content_id,
        "slate_id": impression_id,
        "position": 1,
        "shown_at": "2024-05-01T20:00:00Z",
    } | changes


def _event(user_id: int, content_id: str, **changes: object) -> dict:
    return {
        "user_id": user_id,
        "content_id": content_id,
        "started_at": "2024-05-01T20:05:00Z",
        "seconds_watched": 600,
        "completion_ratio": 0.5,
        "device": "tv",
    } | changes


@pytest.fixture(scope="module")
def titles(writable_api: Api) -> list[str]:
    return [c for (c,) in query(writable_api.target, "select content_id from core.titles order by 1 limit 3")]


@pytest.fixture(scope="module")
def users(writable_api: Api) -> list[int]:
    """Users of this module, and the experiment EXPERIMENT registered."""
    ids = list(range(760_001, 760_021))
    headers = writable_api.headers("data_scientist")
    assert writable_api.client.post("/users", json=[_user(n) for n in ids], headers=headers).status_code in (200, 201)
    assert writable_api.client.post("/experiments", json=_experiment(EXPERIMENT), headers=headers).status_code in (
        200,
        201,
    )
    return ids


def test_an_experiment_is_registered_once_and_read_back(writable_api: Api) -> None:
    api, headers = writable_api, writable_api.headers("data_scientist")
    body = _experiment(990_101)
    first = api.client.post("/experiments", json=body, headers=headers)
    assert first.status_code == 201, first.text
    assert {arm["arm"]: arm["share"] for arm in first.json()["arms"]} == {"control": 0.25, "ease": 0.75}
    assert api.client.post("/experiments", json=body, headers=headers).status_code == 200
    other = api.client.post("/experiments", json=body | {"name": "another"}, headers=headers)
    assert other.status_code == 409 and "another definition" in other.json()["detail"]
    read = api.client.get("/experiments/990101", headers=api.headers("analyst"))
    assert read.status_code == 200
    found = read.json()
    assert found["status"] == "running" and found["first_day"] == "2024-05-01" and found["summary"] == []
    assert found["configuration"] == {"users": 100}
    assert [arm["arm"] for arm in found["arms"]] == ["control", "ease"] and found["arms"][0]["is_control"]
    assert found["arms"][1]["parameters"] == {"l2": 500.0}
    assert query(api.target, "select name from app.experiments where experiment_id = 990101") == [
        ("ease against popularity",)
    ]


@pytest.mark.parametrize(
    ("changes", "loc"),
    [
        ({"arms": []}, ["body", "arms"]),
        ({"arms": [{"arm": "Control", "model": "popularity"}]}, ["body", "arms", 0, "arm"]),
        ({"arms": [{"arm": "a", "model": "popularity", "run_id": "run-1"}]}, ["body", "arms", 0, "run_id"]),
        ({"arms": [{"arm": "a"}]}, ["body", "arms", 0, "run_id"]),
        ({"arms": [{"arm": "a", "model": "m"}, {"arm": "a", "model": "n"}]}, ["body", "arms"]),
        (
            {"arms": [{"arm": "a", "model": "m", "is_control": True}, {"arm": "b", "model": "n", "is_control": True}]},
            ["body", "arms"],
        ),
        ({"arms": [{"arm": "a", "model": "m", "share": 0}]}, ["body", "arms", 0, "share"]),
        ({"days": 0}, ["body", "days"]),
        ({"experiment_id": 0}, ["body", "experiment_id"]),
        ({"name": ""}, ["body", "name"]),
        ({"first_day": "someday"}, ["body", "first_day"]),
        ({"configuration": {"text": "nul \u0000"}}, ["body", "configuration"]),
        ({"bogus": 1}, ["body", "bogus"]),
    ],
)
def test_a_bad_definition_is_422_naming_the_field(writable_api: Api, changes: dict, loc: list) -> None:
    response = writable_api.client.post(
        "/experiments", json=_experiment(990_201) | changes, headers=writable_api.headers("data_scientist")
    )
    assert response.status_code == 422, response.text
    assert loc in [problem["loc"] for problem in response.json()["detail"]]
    assert query(writable_api.target, "select count(*) from app.experiments where experiment_id = 990201") == [(0,)]


def test_roles_refused_and_unknown_experiments(writable_api: Api, users: list[int]) -> None:
    api = writable_api
    assert api.client.post("/experiments", json=_experiment(990_301)).status_code == 401
    assert api.client.post("/experiments", json=_experiment(990_301), headers=api.headers("analyst")).status_code == 403
    assert api.client.get(f"/experiments/{EXPERIMENT}").status_code == 401
    for role in ("analyst", "data_scientist", "admin"):
        assert api.client.get(f"/experiments/{EXPERIMENT}", headers=api.headers(role)).status_code == 200
    impression = [_impression(990_301, users[0], "tm84618")]
    assert api.client.post("/impressions", json=impression, headers=api.headers("analyst")).status_code == 403
    assert api.client.post(f"/experiments/{EXPERIMENT}/assignments", json=users[:1]).status_code == 401
    missing = api.client.get("/experiments/990999", headers=api.headers("analyst"))
    assert missing.status_code == 404 and "990999" in missing.json()["detail"]
    assigned = api.client.post("/experiments/990999/assignments", json=users[:1], headers=api.headers("admin"))
    assert assigned.status_code == 404
    assert query(api.target, "select count(*) from app.experiments where experiment_id = 990301") == [(0,)]


def test_users_are_assigned_by_the_hash_once(writable_api: Api, users: list[int]) -> None:
    api, headers = writable_api, writable_api.headers("data_scientist")
    url = f"/experiments/{EXPERIMENT}/assignments"
    first = api.client.post(url, json=users[:10], headers=headers)
    assert first.status_code == 201 and first.json()["written"] == 10
    expected = activity.assign(
        activity.Experiment(
            EXPERIMENT,
            "x",
            7,
            date(2024, 5, 1),
            14,
            (activity.Arm("control", "popularity", share=1), activity.Arm("ease", "ease", share=3)),
        ),
        users,
    )
    assert {row["user_id"]: row["arm"] for row in first.json()["users"]} == expected[users[:10]].to_dict()
    again = api.client.post(url, json=users[5:15], headers=headers)
    assert again.status_code == 201 and again.json()["written"] == 5
    assert [row["arm"] for row in again.json()["users"]] == expected[users[5:15]].tolist()
    assert api.client.post(url, json=users[:15], headers=headers).status_code == 200
    stored = query(api.target, "select user_id, arm from app.assignments where experiment_id = %s", (EXPERIMENT,))
    assert dict(stored) == expected[users[:15]].to_dict()
    unknown = api.client.post(url, json=[users[15], 99_999_999], headers=headers)
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["body", 1]
    twice = api.client.post(url, json=[users[15], users[15]], headers=headers)
    assert twice.status_code == 422 and twice.json()["detail"][0]["loc"] == ["body", 1]
    assert api.client.post(url, json=[0], headers=headers).status_code == 422
    assert query(api.target, "select count(*) from app.assignments where user_id = %s", (users[15],)) == [(0,)]


def test_impressions_and_the_events_that_cite_them(writable_api: Api, users: list[int], titles: list[str]) -> None:
    api, headers = writable_api, writable_api.headers("data_scientist")
    user = users[16]
    assigned = api.client.post(f"/experiments/{EXPERIMENT}/assignments", json=[user], headers=headers).json()
    arm = assigned["users"][0]["arm"]
    other_arm = "control" if arm == "ease" else "ease"
    shown = [
        _impression(990_401, user, titles[0], experiment_id=EXPERIMENT, arm=arm, slate_id=990_401, position=1),
        _impression(990_402, user, titles[1], experiment_id=EXPERIMENT, arm=arm, slate_id=990_401, position=2),
        _impression(990_403, user, titles[2], slate_id=990_403, run_id="run-x"),
    ]
    first = api.client.post("/impressions", json=shown, headers=headers)
    assert first.status_code == 201 and first.json()["rows"] == 3 and first.json()["kind"] == "impressions"
    assert api.client.post("/impressions", json=shown, headers=headers).status_code == 200
    stored = query(
        api.target,
        "select impression_id, experiment_id, arm from app.impressions where user_id = %s order by 1",
        (user,),
    )
    assert stored == [(990_401, EXPERIMENT, arm), (990_402, EXPERIMENT, arm), (990_403, None, None)]

    # an event and a rating citing what the user was shown
    cited = api.client.post("/events", json=[_event(user, titles[0], impression_id=990_401)], headers=headers)
    assert cited.status_code == 201, cited.text
    rating = {"content_id": titles[1], "rating": 4, "rated_at": "2024-05-01T21:00:00Z", "impression_id": 990_402}
    assert api.client.post(f"/users/{user}/ratings", json=rating, headers=headers).status_code == 201
    assert query(api.target, "select impression_id from app.viewing_events where user_id = %s", (user,)) == [(990_401,)]
    assert query(api.target, "select impression_id from app.ratings where user_id = %s", (user,)) == [(990_402,)]

    # citing an impression of another title, another user, or none at all: refused, nothing written
    bad_events = [
        [_event(user, titles[0]), _event(user, titles[2], impression_id=990_401, seconds_watched=5)],
        [_event(users[17], titles[0], impression_id=990_401)],
        [_event(user, titles[0], impression_id=990_499, seconds_watched=7)],
    ]
    for events in bad_events:
        response = api.client.post("/events", json=events, headers=headers)
        assert response.status_code == 422, response.text
        assert [len(events) - 1, "impression_id"] == response.json()["detail"][0]["loc"][1:]
    single = {k: v for k, v in _event(user, titles[1], impression_id=990_401).items() if k != "user_id"}
    response = api.client.post(f"/users/{user}/events", json=single, headers=headers)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "impression_id"]
    response = api.client.post(f"/users/{user}/ratings", json=rating | {"impression_id": 990_403}, headers=headers)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "impression_id"]
    assert query(api.target, "select count(*) from app.viewing_events where user_id = %s", (user,)) == [(1,)]

    # impressions: the arm must be the user's, and go with the experiment
    refused = {
        "arm": [_impression(990_411, user, titles[0], experiment_id=EXPERIMENT, arm=other_arm, slate_id=990_411)],
        "experiment without arm": [_impression(990_412, user, titles[0], experiment_id=EXPERIMENT, slate_id=990_412)],
        "position": [_impression(990_413, user, titles[0], position=0, slate_id=990_413)],
        "content_id": [_impression(990_414, user, "tm0", slate_id=990_414)],
    }
    for case, impressions in refused.items():
        response = api.client.post("/impressions", json=[shown[0], *impressions], headers=headers)
        assert response.status_code in (409, 422), case
        field = case if case in ("position", "content_id") else "arm"
        assert response.status_code == 422 and [1, field] in [p["loc"][1:] for p in response.json()["detail"]], (
            case,
            response.text,
        )
    assert query(api.target, "select count(*) from app.impressions where user_id = %s", (user,)) == [(3,)]


def test_an_experiment_reads_its_summary_rows_by_name(writable_api: Api, users: list[int]) -> None:
    api = writable_api
    write_summary(api.target, [summary_row(EXPERIMENT, "ease", False, 2.0), summary_row(EXPERIMENT, "control", True)])
    found = api.client.get(f"/experiments/{EXPERIMENT}", headers=api.headers("analyst")).json()
    assert [row["arm"] for row in found["summary"]] == ["control", "ease"]
    control, ease = found["summary"]
    assert control["is_control"] and control["lift_watch_minutes"] is None and control["users"] == 100
    assert ease["users"] == 200 and ease["lift_watch_minutes"] == pytest.approx(0.1)
    assert isinstance(ease["regret_per_slate"], float) and "an_extra_column" not in ease
    # an experiment of its own, registered here: no other test's order decides what this one reads
    body = _experiment(990_102)
    assert api.client.post("/experiments", json=body, headers=api.headers("data_scientist")).status_code == 201
    assert api.client.get("/experiments/990102", headers=api.headers("analyst")).json()["summary"] == []


def test_the_client_registers_assigns_and_records_impressions(writable_api: Api, titles: list[str]) -> None:
    api = writable_api
    users = pd.DataFrame([_user(n) for n in range(760_501, 760_506)]).assign(
        signup_date=lambda f: pd.to_datetime(f.signup_date)
    )
    arms = (activity.Arm("popular", "popularity", is_control=True), activity.Arm("ease", "ease", {"l2": 100.0}))
    experiment = activity.Experiment(990_501, "through the client", 3, date(2024, 6, 1), 7, arms, {"k": 10})
    with ApiClient(str(api.client.base_url), api.keys["data_scientist"], http=api.client, chunk_rows=2) as client:
        client.write_users(users)
        assert client.create_experiment(experiment) is True and client.create_experiment(experiment) is False
        assigned = client.assign(experiment.experiment_id, users["user_id"].tolist())
        with closing(api.target.connect()) as conn:
            stored = activity.read_experiment(conn, 990_501)
        # as defined (arms in any order) and as stored (by name): the same arms
        assert assigned.to_dict() == activity.assign(experiment, users["user_id"]).to_dict()
        assert assigned.to_dict() == activity.assign(stored, users["user_id"]).to_dict()
        shown = pd.DataFrame(
            [
                _impression(990_501 + n, user, titles[0], experiment_id=990_501, arm=assigned[user])
                for n, user in enumerate(users["user_id"])
            ]
        ).assign(shown_at=lambda f: pd.to_datetime(f.shown_at, utc=True))
        assert sum(result.rows for result in client.write_impressions(shown)) == 5
        with pytest.raises(ApiError) as refused:
            client.create_experiment(dataclasses.replace(experiment, name="another"))
        assert refused.value.status == 409
    assert query(api.target, "select count(*) from app.impressions where experiment_id = 990501") == [(5,)]
