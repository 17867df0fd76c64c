"""The HTTP API on real warehouses: reads against the database's own answers, validated atomic writes,
idempotency, who may call what, the OpenAPI document, and schemathesis finding no server error."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import pytest
import schemathesis
from conftest import Api, serving
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from queries import cli, query

from recommender.api.app import create_app
from recommender.api.database import Settings
from recommender.ml import publish, train
from recommender.warehouse.targets import Target

# --- reading -------------------------------------------------------------------------------------


def test_health_names_the_current_run(api: Api) -> None:
    body = api.client.get("/health").json()
    assert body == {"status": "ok", "database": "ok", "current_run": query(api.target, CURRENT_RUN)[0][0]}


CURRENT_RUN = "select run_id from predictions.model_runs where is_current"


def test_an_unbuilt_warehouse_is_healthy_and_says_what_to_run(database: Target) -> None:
    with TestClient(create_app(Settings.from_env(target=database))) as client:
        assert client.get("/health").json() == {"status": "ok", "database": "ok", "current_run": None}
        response = client.get("/titles")
        assert response.status_code == 503 and "make run" in response.json()["detail"]


def test_title_search_filters_and_pages_as_the_catalogue_says(api: Api) -> None:
    (genre, country, year), *_ = query(
        api.target,
        "select genre_ids[1], country_codes[1], release_year from marts.catalogue"
        " where cardinality(genre_ids) > 0 and cardinality(country_codes) > 0 order by imdb_votes desc nulls last",
    )
    params = {"genre": genre, "country": country, "year_min": year - 10, "type": "movie", "sort": "-imdb_score"}
    expected = query(
        api.target,
        "select content_id from marts.catalogue where %s = any(genre_ids) and %s = any(country_codes)"
        " and release_year >= %s and content_type = 'movie' order by imdb_score desc nulls last, content_id",
        (genre, country, year - 10),
    )
    first = api.client.get("/titles", params={**params, "limit": 2}).json()
    rest = api.client.get("/titles", params={**params, "limit": 100, "offset": 2}).json()
    assert first["total"] == rest["total"] == len(expected)
    assert [t["content_id"] for t in first["items"] + rest["items"]] == [c for (c,) in expected]


def test_full_text_search_finds_a_title_by_a_word_of_it(api: Api) -> None:
    ((content_id, title),) = query(
        api.target, "select content_id, title from marts.catalogue where title ~ '^[A-Za-z]{4,} ' limit 1"
    )
    found = api.client.get("/titles", params={"q": title.split()[0].lower(), "limit": 100}).json()
    assert content_id in [t["content_id"] for t in found["items"]]
    assert all(title.split()[0].lower() in t["title"].lower() for t in found["items"])


def test_a_page_past_the_end_still_gives_the_total(api: Api) -> None:
    body = api.client.get("/titles", params={"offset": 100_000}).json()
    assert body["items"] == [] and body["total"] == query(api.target, "select count(*) from marts.catalogue")[0][0]


@pytest.mark.parametrize(
    "params", [{"type": "film"}, {"limit": 0}, {"limit": 101}, {"year_min": "abc"}, {"country": "usa"}]
)
def test_bad_title_filters_are_422_naming_the_parameter(api: Api, params: dict) -> None:
    response = api.client.get("/titles", params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", next(iter(params))]


def test_one_title_has_its_genres_countries_credits_and_ranks(api: Api) -> None:
    ((content_id,),) = query(
        api.target,
        "select content_id from core.title_rankings where content_id is not null"
        " and content_id in (select content_id from core.credits) limit 1",
    )
    body = api.client.get(f"/titles/{content_id}").json()

    def count(table: str) -> int:
        return query(api.target, f"select count(*) from core.{table} where content_id = %s", (content_id,))[0][0]

    assert len(body["genres"]) == count("title_genres")
    assert len(body["countries"]) == count("title_production_countries")
    assert len(body["credits"]) == count("credits") > 0
    assert len(body["rankings"]) == count("title_rankings") > 0


def test_unknown_and_malformed_titles(api: Api) -> None:
    assert api.client.get("/titles/tm999999999").status_code == 404
    assert api.client.get("/titles/x;drop").status_code == 422


def test_similar_titles_are_other_titles_best_first(api: Api) -> None:
    ((content_id,),) = query(
        api.target, "select content_id from marts.ml_interactions group by 1 order by count(*) desc limit 1"
    )
    similar = api.client.get(f"/titles/{content_id}/similar", params={"limit": 7}).json()
    assert len(similar) == 7 and content_id not in [t["content_id"] for t in similar]
    assert [t["similarity"] for t in similar] == sorted((t["similarity"] for t in similar), reverse=True)
    assert similar[0]["co_viewers"] > 0


def test_people_and_filmographies(api: Api) -> None:
    ((person_id, name, titles),) = query(
        api.target,
        "select person_id, min(person_name), count(*) from marts.person_filmography"
        " group by person_id order by count(*) desc, person_id limit 1",
    )
    found = api.client.get("/people", params={"q": name[1:-1].upper()}).json()
    assert person_id in [p["person_id"] for p in found["items"]]
    body = api.client.get(f"/people/{person_id}").json()
    assert body["person_name"] == name and len(body["filmography"]) == titles
    assert api.client.get("/people/999999999999").status_code == 404
    assert api.client.get("/people", params={"q": "%"}).json()["total"] == 0  # a wildcard is a character here


def test_genres_and_countries_count_their_titles(api: Api) -> None:
    genres = {g["genre_id"]: g["titles"] for g in api.client.get("/genres").json()}
    assert genres == dict(query(api.target, "select genre_id, count(*) from core.title_genres group by 1")) | {
        g: 0
        for (g,) in query(api.target, "select genre_id from core.genres except select genre_id from core.title_genres")
    }
    countries = {c["country_code"]: c["titles"] for c in api.client.get("/countries").json()}
    assert countries == dict(query(api.target, "select country_code, titles from marts.country_summary"))


def test_a_user_with_their_activity(api: Api) -> None:
    ((user_id, sessions),) = query(
        api.target, "select user_id, count(*) from app.viewing_events group by 1 order by 2 desc, 1 limit 1"
    )
    body = api.client.get(f"/users/{user_id}", headers=api.headers("analyst")).json()
    assert body["sessions"] == sessions and len(body["recent_events"]) == min(sessions, 20)
    events = api.client.get(f"/users/{user_id}/events", params={"limit": 5}, headers=api.headers("analyst")).json()
    assert events["total"] == sessions and len(events["items"]) == 5
    assert api.client.get("/users/987654321", headers=api.headers("analyst")).status_code == 404


def test_recommendations_are_the_current_runs_with_reasons(api: Api) -> None:
    ((user_id,),) = query(api.target, "select min(user_id) from marts.user_recommendations")
    expected = query(
        api.target,
        "select content_id, reason, run_id from marts.user_recommendations where user_id = %s"
        " order by recommendation_rank limit 5",
        (user_id,),
    )
    body = api.client.get(f"/users/{user_id}/recommendations", params={"limit": 5}, headers=api.headers("analyst"))
    body = body.json()
    assert [(r["content_id"], r["reason"], body["run_id"]) for r in body["items"]] == expected
    assert [r["rank"] for r in body["items"]] == [1, 2, 3, 4, 5]
    assert api.client.get("/users/987654321/recommendations", headers=api.headers("analyst")).status_code == 404


def test_recommendations_follow_a_new_run_and_a_rollback(writable_api: Api) -> None:
    """Answers are kept per run: a publish or a rollback shows at the next request, never a stale list."""
    ((user_id,),) = query(writable_api.target, "select min(user_id) from marts.user_recommendations")
    url, headers = f"/users/{user_id}/recommendations", writable_api.headers("analyst")

    def answer() -> tuple[str, list[str]]:
        body = writable_api.client.get(url, headers=headers).json()
        return body["run_id"], [item["content_id"] for item in body["items"]]

    def expected() -> tuple[str, list[str]]:
        rows = query(
            writable_api.target,
            "select run_id, content_id from marts.user_recommendations where user_id = %s order by recommendation_rank",
            (user_id,),
        )
        return rows[0][0], [content_id for _, content_id in rows]

    first = answer()
    assert answer() == first == expected()  # the second one is kept from the first
    with closing(writable_api.target.connect()) as conn:
        new_run = train.train(conn, "popularity").run_id
    assert answer() == expected() and answer()[0] == new_run != first[0]
    with closing(writable_api.target.connect()) as conn:
        publish.rollback(conn)
    assert answer() == first


def test_a_user_newer_than_the_run_gets_its_popular_titles(writable_api: Api) -> None:
    api, headers = writable_api, writable_api.headers("data_scientist")
    assert api.client.post("/users", json=[_user(952_001)], headers=headers).status_code == 201
    body = api.client.get("/users/952001/recommendations", params={"limit": 5}, headers=headers).json()
    ((current,),) = query(api.target, "select run_id from predictions.model_runs where is_current")
    most_watched = query(
        api.target, "select content_id from marts.ml_interactions group by 1 order by count(*) desc, 1 limit 5"
    )
    assert body["run_id"] == current and body["model"] is not None
    assert [(item["rank"], item["content_id"]) for item in body["items"]] == [
        (rank, content_id) for rank, (content_id,) in enumerate(most_watched, start=1)
    ]
    assert {item["reason"] for item in body["items"]} == {"popular with viewers"}
    assert all(0 < item["score"] <= 1 for item in body["items"])  # the share of users, as the models score it


def test_model_runs_with_their_metrics(api: Api) -> None:
    runs = api.client.get("/runs", headers=api.headers("data_scientist")).json()
    assert runs["total"] == query(api.target, "select count(*) from predictions.model_runs")[0][0]
    current = next(run for run in runs["items"] if run["is_current"])
    one = api.client.get(f"/runs/{current['run_id']}", headers=api.headers("analyst")).json()
    assert one["metrics"]["popularity"]["ndcg"] >= 0 and one["status"] == "published"
    assert api.client.get("/runs/nope", headers=api.headers("analyst")).status_code == 404


# --- writing -------------------------------------------------------------------------------------


def _user(user_id: int, **changes: object) -> dict:
    return {
        "user_id": user_id,
        "age_band": "25-34",
        "country_code": "US",
        "signup_date": "2024-02-29",
        "plan": "premium",
        "device": "tv",
        "language": "en",
        "attributes": {"source": "api test"},
    } | changes


def _event(user_id: int, content_id: str, minute: int, **changes: object) -> dict:
    return {
        "user_id": user_id,
        "content_id": content_id,
        "started_at": f"2024-03-01T20:{minute:02d}:00+01:00",
        "seconds_watched": 600,
        "completion_ratio": 0.5,
        "rating": 4,
        "device": "tv",
    } | changes


@pytest.fixture(scope="module")
def titles(writable_api: Api) -> list[str]:
    return [c for (c,) in query(writable_api.target, "select content_id from core.titles order by 1 limit 3")]


def _count(api: Api, table: str, user_ids: list[int]) -> int:
    return query(api.target, f"select count(*) from app.{table} where user_id = any(%s)", (user_ids,))[0][0]


def test_users_and_events_are_written_once(writable_api: Api, titles: list[str]) -> None:
    api, headers = writable_api, writable_api.headers("data_scientist")
    users = [_user(910_001), _user(910_002, plan="basic")]
    first = api.client.post("/users", json=users, headers=headers)
    assert first.status_code == 201 and first.json()["rows"] == 2 and first.json()["written"]
    again = api.client.post("/users", json=users, headers=headers)
    assert again.status_code == 200 and not again.json()["written"]
    events = [_event(910_001, titles[0], 1), _event(910_002, titles[1], 2, rating=None)]
    assert api.client.post("/events", json=events, headers=headers).status_code == 201
    one = api.client.post(
        "/users/910001/events", json=_event(910_001, titles[2], 3) | {"user_id": None}, headers=headers
    )
    assert one.status_code == 422  # the user is the path's, not the body's
    single = {k: v for k, v in _event(910_001, titles[2], 3).items() if k != "user_id"}
    assert api.client.post("/users/910001/events", json=single, headers=headers).status_code == 201
    assert _count(api, "viewing_events", [910_001, 910_002]) == 3
    stored = query(api.target, "select started_at from app.viewing_events where user_id = 910002")
    assert stored[0][0].isoformat() == "2024-03-01T19:02:00+00:00"


@pytest.mark.parametrize(
    ("bad", "loc"),
    [
        ({"rating": 7}, ["body", 2, "rating"]),
        ({"completion_ratio": 1.5}, ["body", 2, "completion_ratio"]),
        ({"content_id": "tm0"}, ["body", 2, "content_id"]),  # well formed, not in the catalogue
        ({"user_id": 99_999_999}, ["body", 2, "user_id"]),  # no such user
        ({"started_at": "2024-03-01T20:00:00"}, ["body", 2, "started_at"]),  # no time zone
        ({"device": "toaster"}, ["body", 2, "device"]),
    ],
)
def test_one_bad_event_refuses_the_whole_request(writable_api: Api, titles: list[str], bad: dict, loc: list) -> None:
    api, headers = writable_api, writable_api.headers("data_scientist")
    api.client.post("/users", json=[_user(920_001)], headers=headers)
    before = _count(api, "viewing_events", [920_001])
    events = [_event(920_001, titles[0], 10), _event(920_001, titles[1], 11), _event(920_001, titles[2], 12) | bad]
    response = api.client.post("/events", json=events, headers=headers)
    assert response.status_code == 422
    assert loc in [problem["loc"] for problem in response.json()["detail"]]
    assert _count(api, "viewing_events", [920_001]) == before


def test_a_user_id_taken_by_other_content_is_a_conflict(writable_api: Api) -> None:
    api, headers = writable_api, writable_api.headers("data_scientist")
    assert api.client.post("/users", json=[_user(930_001)], headers=headers).status_code == 201
    response = api.client.post("/users", json=[_user(930_001, plan="basic"), _user(930_002)], headers=headers)
    assert response.status_code == 409
    assert query(api.target, "select plan from app.users where user_id in (930001, 930002)") == [("premium",)]


def test_an_idempotency_key_replays_the_first_answer(writable_api: Api) -> None:
    api, headers = writable_api, writable_api.headers("data_scientist") | {"Idempotency-Key": "signup-940001"}
    first = api.client.post("/users", json=[_user(940_001)], headers=headers)
    replay = api.client.post("/users", json=[_user(940_001)], headers=headers)
    assert first.status_code == replay.status_code == 201 and replay.json() == first.json()
    other = api.client.post("/users", json=[_user(940_002)], headers=headers)
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["detail"]
    assert _count(api, "users", [940_001, 940_002]) == 1


def test_ratings_are_checked_and_counted(writable_api: Api, titles: list[str]) -> None:
    api, headers = writable_api, writable_api.headers("data_scientist")
    api.client.post("/users", json=[_user(950_001)], headers=headers)
    rating = {"content_id": titles[0], "rating": 5, "rated_at": "2024-04-01T10:00:00Z"}
    assert api.client.post("/users/950001/ratings", json=rating, headers=headers).status_code == 201
    bad = api.client.post("/users/950001/ratings", json=rating | {"rating": 0}, headers=headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "rating"]
    unknown = api.client.post("/users/950002/ratings", json=rating, headers=headers)
    assert unknown.status_code == 422 and unknown.json()["detail"][0]["loc"] == ["path", "user_id"]
    assert _count(api, "ratings", [950_001, 950_002]) == 1
    assert api.client.get("/users/950001", headers=headers).json()["ratings_given"] == 1


def test_a_rating_without_its_time_is_given_now(writable_api: Api, titles: list[str]) -> None:
    api, headers = writable_api, writable_api.headers("data_scientist")
    api.client.post("/users", json=[_user(951_001)], headers=headers)
    ((before,),) = query(api.target, "select now()")
    rating = {"content_id": titles[0], "rating": 4}
    assert api.client.post("/users/951001/ratings", json=rating, headers=headers).status_code == 201
    ((after,),) = query(api.target, "select now()")
    ((rated_at, written_at),) = query(api.target, "select rated_at, written_at from app.ratings where user_id = 951001")
    assert before <= rated_at == written_at <= after  # the database's clock, as written_at's


def test_concurrent_writes_wait_for_a_connection_and_all_land(writable_api: Api, titles: list[str]) -> None:
    api, headers = writable_api, writable_api.headers("data_scientist")
    api.client.post("/users", json=[_user(970_001)], headers=headers)
    requests = [[_event(970_001, titles[n % 3], n)] for n in range(12)]  # more than the API's write connections
    with ThreadPoolExecutor(12) as pool:
        statuses = list(
            pool.map(lambda events: api.client.post("/events", json=events, headers=headers).status_code, requests)
        )
    assert statuses == [201] * 12 and _count(api, "viewing_events", [970_001]) == 12


def test_one_idempotency_key_at_a_time(writable_api: Api) -> None:
    """Two different requests racing under one key: one is written, the other is told the key is taken."""
    api = writable_api
    headers = api.headers("data_scientist") | {"Idempotency-Key": "race-980000"}
    bodies = [[_user(980_001 + n)] for n in range(2)]
    with ThreadPoolExecutor(2) as pool:
        statuses = sorted(
            pool.map(lambda body: api.client.post("/users", json=body, headers=headers).status_code, bodies)
        )
    assert statuses == [201, 409] and _count(api, "users", [980_001, 980_002]) == 1


# --- who may call what ---------------------------------------------------------------------------

CALLERS = ("anonymous", "analyst", "data_scientist", "admin", "revoked")
# status by caller, in CALLERS' order
PUBLIC = (200, 200, 200, 200, 200)
READERS = (401, 200, 200, 200, 401)
WRITER = (401, 403, 201, 201, 401)
ANALYST = (401, 200, 403, 200, 401)
ADMIN = (401, 403, 403, 200, 401)
# publishing: a role check first; then the door refuses another login's run (the current one is the owner's) with 403
OWNERS_RUN = (401, 403, 403, 403, 401)
REACHED = None  # the caller reaches the endpoint: any status but 401 and 403 (a rollback depends on the runs there)
MATRIX = [
    ("GET", "/health", None, PUBLIC),
    ("GET", "/titles", None, PUBLIC),
    ("GET", "/titles/{content_id}", None, PUBLIC),
    ("GET", "/titles/{content_id}/similar", None, PUBLIC),
    ("GET", "/people", None, PUBLIC),
    ("GET", "/genres", None, PUBLIC),
    ("GET", "/countries", None, PUBLIC),
    ("GET", "/users/{user_id}", None, READERS),
    ("GET", "/users/{user_id}/events", None, READERS),
    ("GET", "/users/{user_id}/recommendations", None, READERS),
    ("GET", "/runs", None, READERS),
    ("POST", "/users", "user", WRITER),
    ("POST", "/events", "event", WRITER),
    ("POST", "/users/{user_id}/events", "single event", WRITER),
    ("POST", "/users/{user_id}/ratings", "rating", WRITER),
    ("POST", "/sql", "sql", ANALYST),
    ("GET", "/people/{person_id}", None, PUBLIC),
    ("GET", "/runs/{run_id}", None, READERS),
    ("GET", "/marts/{name}", None, (401, 403, 200, 200, 401)),
    ("GET", "/keys", None, ADMIN),
    ("POST", "/keys", "key", (401, 403, 403, 201, 401)),
    ("DELETE", "/keys/{key_id}", None, (401, 403, 403, 404, 401)),  # admin reaches it: no such key
    ("POST", "/runs", "run", WRITER),
    ("PUT", "/runs/{run_id}/recommendations", None, (401, 403, 415, 415, 401)),  # no body: neither CSV nor Parquet
    ("POST", "/runs/{run_id}/publish", "publish", OWNERS_RUN),
    ("POST", "/runs/{run_id}/fail", "failure", OWNERS_RUN),
    ("POST", "/runs/rollback", None, (401, 403, REACHED, REACHED, 401)),
    ("POST", "/experiments", "experiment", WRITER),
    ("POST", "/experiments/{experiment_id}/assignments", "assignment", (401, 403, 201, 200, 401)),  # then assigned
    ("POST", "/impressions", "impression", WRITER),
    ("GET", "/experiments/{experiment_id}", None, READERS),
]
MATRIX_EXPERIMENT = 960_000


def _experiment(experiment_id: int) -> dict:
    return {
        "experiment_id": experiment_id,
        "name": "matrix",
        "seed": 1,
        "first_day": "2024-05-01",
        "days": 7,
        "arms": [{"arm": "control", "model": "popularity", "is_control": True}, {"arm": "ease", "model": "ease"}],
    }


BODILESS_POSTS = {"/runs/rollback"}


@pytest.fixture(scope="module")
def callers(writable_api: Api) -> dict[str, dict[str, str]]:
    revoked = cli(writable_api.target, "keys", "create", "--role", "admin", "--name", "to revoke").stdout.split()[-1]
    key_id = revoked.split("_")[1]
    assert cli(writable_api.target, "keys", "revoke", key_id).returncode == 0
    return {"anonymous": {}, "revoked": {"X-API-Key": revoked}} | {
        role: writable_api.headers(role) for role in ("analyst", "data_scientist", "admin")
    }


@pytest.mark.parametrize(("method", "path", "body", "statuses"), MATRIX, ids=[f"{m} {p}" for m, p, _, _ in MATRIX])
def test_role_by_endpoint_matrix(
    writable_api: Api, titles: list[str], callers: dict, method: str, path: str, body: str | None, statuses: tuple
) -> None:
    user_id = 960_000
    writable_api.client.post("/users", json=[_user(user_id)], headers=callers["admin"])
    writable_api.client.post("/experiments", json=_experiment(MATRIX_EXPERIMENT), headers=callers["admin"])
    bodies = {
        "user": lambda n: [_user(960_100 + n)],
        "event": lambda n: [_event(user_id, titles[0], n)],
        "single event": lambda n: {k: v for k, v in _event(user_id, titles[1], n).items() if k != "user_id"},
        "rating": lambda n: {"content_id": titles[0], "rating": 3, "rated_at": f"2024-05-01T10:{n:02d}:00Z"},
        "sql": lambda n: {"sql": "select 1"},
        "key": lambda n: {"role": "analyst", "name": f"matrix {n}"},
        "run": lambda n: {"model": "matrix"},
        "publish": lambda n: {"metrics": {"n": n}},
        "failure": lambda n: {"error": "matrix"},
        "experiment": lambda n: _experiment(MATRIX_EXPERIMENT + 1 + n),
        "assignment": lambda n: [user_id],
        "impression": lambda n: [
            {
                "impression_id": 960_000 + n,
                "user_id": user_id,
                "content_id": titles[0],
                "slate_id": 960_000 + n,
                "position": 1,
                "shown_at": "2024-05-01T10:00:00Z",
            }
        ],
    }
    ((person_id,),) = query(writable_api.target, "select min(person_id) from core.people")
    ((run_id,),) = query(writable_api.target, "select run_id from predictions.model_runs where is_current")
    url = path.format(
        content_id=titles[0],
        user_id=user_id,
        person_id=person_id,
        run_id=run_id,
        name="genres",
        key_id="0" * 12,
        experiment_id=MATRIX_EXPERIMENT,
    )
    for n, (caller, expected) in enumerate(zip(CALLERS, statuses, strict=True)):
        payload = bodies[body](n) if body else None
        response = writable_api.client.request(method, url, json=payload, headers=callers[caller])
        reached = expected is REACHED and response.status_code not in (401, 403)
        assert reached or response.status_code == expected, f"{caller}: {response.status_code} {response.text[:200]}"


def test_sql_as_csv_writes_arrays_and_json_as_json_text(api: Api) -> None:
    statement = """select array['a', 'b'] as tags, '{"k": 1}'::jsonb as doc, 1.5::numeric as n"""
    response = api.client.post("/sql", json={"sql": statement, "format": "csv"}, headers=api.headers("analyst"))
    header, row = csv.reader(io.StringIO(response.text))
    assert header == ["tags", "doc", "n"] and response.headers["X-Truncated"] == "false"
    assert [json.loads(value) for value in row] == [["a", "b"], {"k": 1}, 1.5]


def test_an_anonymous_sql_request_never_reaches_the_database(api: Api) -> None:
    response = api.client.post("/sql", json={"sql": "select pg_sleep(0)"})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "APIKey"


def test_the_docs_list_every_endpoint_with_its_roles_and_schemas(api: Api) -> None:
    document = api.client.get("/openapi.json").json()
    routes = {(m.upper(), p): op for p, ops in document["paths"].items() for m, op in ops.items()}
    assert {(method, path) for method, path, _, _ in MATRIX} == set(routes)  # the matrix covers every endpoint
    for (method, path), operation in routes.items():
        assert operation["x-roles"], f"{method} {path} declares no role"
        ok = operation["responses"].get("200") or operation["responses"].get("201") or operation["responses"]["204"]
        if method == "POST" and path not in BODILESS_POSTS:
            assert operation["requestBody"]["content"]["application/json"]["schema"], f"{method} {path}"
        if "204" not in operation["responses"]:
            assert next(iter(ok["content"].values()))["schema"], f"{method} {path} has no response schema"
    assert "swagger-ui" in api.client.get("/docs").text


def test_each_request_is_logged_as_one_json_line(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="recommender.api.access"):
        api.client.get("/runs", headers=api.headers("analyst"))
    entry = json.loads(caplog.records[-1].getMessage())
    assert entry["path"] == "/runs" and entry["status"] == 200 and entry["role"] == "analyst"
    assert entry["key_id"] == api.keys["analyst"].split("_")[1]


# --- schemathesis --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_api(writable_api: Api) -> Iterator[str]:
    """The API served by uvicorn on a free port, on the module's warehouse."""
    with serving(writable_api.target) as url:
        yield url


def test_schemathesis_finds_no_server_error(live_api: str, writable_api: Api) -> None:
    """Every operation, with generated valid and invalid input, as admin (who may call everything)."""
    schema = schemathesis.openapi.from_url(f"{live_api}/openapi.json")
    headers = {"X-API-Key": writable_api.keys["admin"]}
    server_errors: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            response = case.call(headers=headers)
            if response.status_code >= 500:
                server_errors.append(
                    f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
                )

        call()
    assert not server_errors, "\n".join(server_errors)
