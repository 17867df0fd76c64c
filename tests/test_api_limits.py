"""What a request can make the API hold is bounded: a body needs a valid key before it is read, bodies
have a size limit, a 422 echoes only an excerpt, each key has a rate, /sql answers have a byte cap,
and instants are checked in UTC."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import replace
from typing import Any

import httpx
import pandas as pd
import pytest
from conftest import Api, serving
from fastapi.testclient import TestClient
from queries import query

from recommender import activity
from recommender.api import keys
from recommender.api.app import create_app
from recommender.api.database import Settings
from recommender.api.limits import EXCERPT_CHARS, MAX_ERRORS
from recommender.api.rate_limit import RateLimiter
from recommender.warehouse.targets import Target

BODY_LIMIT, UPLOAD_LIMIT, SQL_BYTES = 100_000, 300_000, 50_000
USER = 990_001  # this module's users (tests/test_api.py uses 9x0_00n below 990_000)


@contextmanager
def api_with(target: Target, **settings: Any) -> Iterator[Api]:
    """The API in process on ``target`` with ``settings`` changed, and a new key per role."""
    with closing(target.connect()) as conn:
        issued = {role: keys.create_key(conn, role, f"pytest limits {role}") for role in keys.ROLES}
    with TestClient(create_app(replace(Settings.from_env(target=target), **settings))) as client:
        yield Api(client, issued, target)


@pytest.fixture(scope="module")
def limited(writable_api: Api) -> Iterator[Api]:
    """The API with small limits and no rate limit, on the writable warehouse."""
    small = {"max_body_bytes": BODY_LIMIT, "max_upload_bytes": UPLOAD_LIMIT, "sql_max_bytes": SQL_BYTES}
    with api_with(writable_api.target, **small, rate_per_s=0) as found:
        yield found


@pytest.fixture(scope="module")
def title(writable_api: Api) -> str:
    return query(writable_api.target, "select min(content_id) from core.titles")[0][0]


@pytest.fixture(scope="module")
def user(writable_api: Api) -> int:
    """A user of this module's own, in the warehouse."""
    response = writable_api.client.post("/users", json=[_user(USER)], headers=writable_api.headers("data_scientist"))
    assert response.status_code in (200, 201), response.text
    return USER


def _user(user_id: int) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "age_band": "25-34",
        "country_code": "US",
        "signup_date": "2024-02-29",
        "plan": "basic",
        "device": "web",
        "language": "en",
    }


def _event(user_id: int, content_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "user_id": user_id,
        "content_id": content_id,
        "started_at": "2024-03-01T20:00:00Z",
        "seconds_watched": 60,
        "completion_ratio": 0.1,
        "device": "web",
    } | changes


@contextmanager
def _served(target: Target, monkeypatch: pytest.MonkeyPatch, **environ: str) -> Iterator[str]:
    """The API served by uvicorn (``serving``) with ``environ`` set while it starts: its URL."""
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    with serving(target) as url:
        yield url


# --- the key before the body -----------------------------------------------------------------------


def _asgi(
    api: Api, path: str, headers: dict[str, str], chunks: Iterator[bytes] | None = None, method: str = "POST"
) -> dict[str, Any]:
    """A request straight into the app, in the test client's event loop: the answer, and how often the app
    asked for the body (``chunks``, if given, is the body, in those pieces)."""
    sent: dict[str, Any] = {"receive_calls": 0, "body": b""}

    async def receive() -> dict[str, Any]:
        sent["receive_calls"] += 1
        if chunks is None:
            raise AssertionError("the app read a body it should not have")
        chunk = next(chunks, None)
        return {"type": "http.request", "body": chunk or b"", "more_body": chunk is not None}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            sent["status"] = message["status"]
            sent["headers"] = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            sent["body"] += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    portal = api.client.portal
    assert portal is not None
    portal.call(api.client.app, scope, receive, send)
    return sent | {"json": json.loads(sent["body"])}


def test_every_route_that_takes_a_body_needs_a_key(limited: Api) -> None:
    # what lets RequestLimits refuse a keyless body before any route is chosen
    document = limited.client.get("/openapi.json").json()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method.upper() not in ("GET", "HEAD", "OPTIONS"):
                assert "anonymous" not in operation["x-roles"], f"{method.upper()} {path} is public"


@pytest.mark.parametrize("key", [None, "nwk_000000000000_unknown", "not-a-key", "revoked"])
def test_a_body_without_a_valid_key_is_refused_before_it_is_read(limited: Api, key: str | None) -> None:
    if key == "revoked":
        with closing(limited.target.connect()) as conn:
            key = keys.create_key(conn, "admin", "pytest revoked")
            keys.revoke_key(conn, keys.parse_key_id(key) or "")
    headers = {"content-type": "application/json", "content-length": str(10**9)} | ({"x-api-key": key} if key else {})
    answer = _asgi(limited, "/events", headers)
    assert answer["status"] == 401 and answer["receive_calls"] == 0  # not 413: the key comes first
    assert answer["headers"]["www-authenticate"] == "APIKey" and "API key" in answer["json"]["detail"]


def test_a_declared_length_over_the_limit_is_413_before_the_body_is_read(limited: Api) -> None:
    headers = {"content-length": str(BODY_LIMIT + 1), "x-api-key": limited.keys["data_scientist"]}
    answer = _asgi(limited, "/events", headers)
    assert answer["status"] == 413 and answer["receive_calls"] == 0
    assert "NETFLIX_API_MAX_BODY_BYTES" in answer["json"]["detail"]


def test_a_body_of_unknown_length_stops_being_read_at_the_limit(limited: Api) -> None:
    chunk = b" " * 10_000
    endless = iter(lambda: chunk, None)  # a body that never ends
    headers = {"transfer-encoding": "chunked", "x-api-key": limited.keys["data_scientist"]}
    answer = _asgi(limited, "/events", headers, endless)
    assert answer["status"] == 413 and "NETFLIX_API_MAX_BODY_BYTES" in answer["json"]["detail"]
    assert answer["receive_calls"] == BODY_LIMIT // len(chunk) + 1  # the chunk that passed the limit, no more


def test_a_served_api_answers_before_the_body_arrives(writable_api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    with _served(writable_api.target, monkeypatch, NETFLIX_API_MAX_BODY_BYTES=str(BODY_LIMIT)) as url:
        port = int(url.rsplit(":", 1)[1])

        def head_only(*headers: str) -> int:
            """Send a request's head, none of its body, and read the status that comes back."""
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                head = "\r\n".join(["POST /events HTTP/1.1", "Host: 127.0.0.1", *headers, "", ""])
                sock.sendall(head.encode())
                return int(sock.recv(65536).decode().split(" ", 2)[1])

        key = f"X-API-Key: {writable_api.keys['data_scientist']}"
        assert head_only("Content-Length: 1000000000") == 401
        assert head_only("Transfer-Encoding: chunked") == 401
        assert head_only("Content-Length: 1000000000", key) == 413

        def chunks() -> Iterator[bytes]:
            yield from [b" " * 10_000] * (3 * BODY_LIMIT // 10_000)

        headers = {"X-API-Key": writable_api.keys["data_scientist"], "Content-Type": "application/json"}
        response = httpx.post(f"{url}/events", content=chunks(), headers=headers, timeout=30)
        assert response.request.headers["transfer-encoding"] == "chunked" and response.status_code == 413


def test_bodies_under_the_limit_still_work(limited: Api, title: str) -> None:
    headers = limited.headers("data_scientist")
    assert limited.client.post("/users", json=[_user(USER + 2)], headers=headers).status_code == 201
    written = limited.client.post("/events", json=[_event(USER + 2, title)], headers=headers)
    assert written.status_code == 201 and written.json()["rows"] == 1
    statement = json.dumps({"sql": "select 1 as one"}).encode()
    at_limit = statement + b" " * (BODY_LIMIT - len(statement))  # whitespace is valid JSON
    analyst = limited.headers("analyst") | {"content-type": "application/json"}
    answer = limited.client.post("/sql", content=at_limit, headers=analyst)
    assert answer.status_code == 200 and answer.json()["rows"] == [[1]]
    assert limited.client.post("/sql", content=at_limit + b" ", headers=analyst).status_code == 413


def test_uploads_of_recommendations_have_a_limit_of_their_own(limited: Api) -> None:
    admin = {"x-api-key": limited.keys["admin"], "content-type": "text/csv"}
    between = b" " * (BODY_LIMIT * 2)  # over the body limit, under the upload limit

    def put(path: str, body: bytes, declared: bool) -> dict[str, Any]:
        headers = admin | ({"content-length": str(len(body))} if declared else {"transfer-encoding": "chunked"})
        pieces = iter([body[i : i + 50_000] for i in range(0, len(body), 50_000)])
        return _asgi(limited, path, headers, pieces, method="PUT")

    assert put("/runs/r1/recommendations", between, declared=True)["status"] != 413
    read = put("/runs/r1/recommendations", between, declared=False)
    assert read["status"] != 413 and read["receive_calls"] > BODY_LIMIT // 50_000  # read past the body limit
    assert put("/runs/r1/recommendations/more", between, declared=True)["status"] == 413  # not an upload path
    for declared in (True, False):  # refused from its length, or once read past the limit
        too_big = put("/runs/r1/recommendations", b" " * (UPLOAD_LIMIT + 1), declared)
        assert too_big["status"] == 413 and "NETFLIX_API_MAX_UPLOAD_BYTES" in too_big["json"]["detail"]


# --- what a 422 echoes ---------------------------------------------------------------------------


def test_a_422_of_a_large_bad_body_is_short_and_names_the_field(writable_api: Api, user: int, title: str) -> None:
    headers = writable_api.headers("data_scientist")
    bad = [_event(user, "tm" + "1" * 2_000_000)]
    response = writable_api.client.post("/events", json=bad, headers=headers)
    assert response.status_code == 422 and len(response.content) < 4_000
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", 0, "content_id"] and problem["input"].endswith("…")
    assert len(problem["input"]) == EXCERPT_CHARS + 1

    unknown_field = [_event(user, title) | {"x" * 1_000_000: 1}]
    response = writable_api.client.post("/events", json=unknown_field, headers=headers)
    assert response.status_code == 422 and len(response.content) < 4_000


def test_a_422_lists_at_most_so_many_problems_and_counts_the_rest(writable_api: Api, user: int, title: str) -> None:
    headers = writable_api.headers("data_scientist")
    by_pydantic = [_event(user, title, rating=9) for _ in range(500)]
    # well formed, but no such title: refused by recommender.activity (users.py's refusal)
    by_activity = [
        _event(user, "tm999999999", started_at=f"2024-03-01T20:{n // 60:02d}:{n % 60:02d}Z") for n in range(500)
    ]
    for events in (by_pydantic, by_activity):
        response = writable_api.client.post("/events", json=events, headers=headers)
        assert response.status_code == 422
        detail = response.json()["detail"]
        assert len(detail) == MAX_ERRORS + 1 and detail[0]["loc"][:2] == ["body", 0]
        assert detail[-1]["type"] == "too_many_errors" and detail[-1]["msg"] == f"and {500 - MAX_ERRORS} more errors"


# --- rate per key --------------------------------------------------------------------------------


def test_a_key_past_its_burst_hears_429_until_it_has_waited(writable_api: Api) -> None:
    # a token a thousand seconds: nothing refills during the test; the clock is moved instead
    with api_with(writable_api.target, rate_per_s=0.001, rate_burst=3) as rated:
        analyst, other = rated.headers("analyst"), rated.headers("data_scientist")
        assert [rated.client.get("/runs", headers=analyst).status_code for _ in range(3)] == [200, 200, 200]
        refused = rated.client.get("/runs", headers=analyst)
        assert refused.status_code == 429 and "0.001 requests a second" in refused.json()["detail"]
        wait = int(refused.headers["Retry-After"])
        assert 1 <= wait <= 1000
        body = rated.client.post("/sql", json={"sql": "select 1"}, headers=analyst)
        assert body.status_code == 429 and int(body.headers["Retry-After"]) >= 1  # refused before its body
        assert rated.client.get("/runs", headers=other).status_code == 200  # another key is not affected
        assert rated.client.get("/titles").status_code == 200  # nor anonymous reads

        limiter: RateLimiter = rated.client.app.state.rate_limiter
        later = time.monotonic() + wait
        limiter.clock = lambda: later
        assert rated.client.get("/runs", headers=analyst).status_code == 200
        assert rated.client.get("/runs", headers=analyst).status_code == 429


def test_the_buckets_are_bounded_and_zero_disables() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=0.001, burst=1, max_keys=2, clock=lambda: now[0])
    limiter.take("a")
    with pytest.raises(Exception, match="spent"):
        limiter.take("a")
    limiter.take("b")
    limiter.take("c")  # a third key: the least recently seen ("a") is forgotten
    limiter.take("a")  # with a full bucket again
    with pytest.raises(Exception, match="spent"):
        limiter.take("c")
    unlimited = RateLimiter(rate=0, burst=200)
    for _ in range(1000):
        unlimited.take("a")


# --- /sql's byte cap -----------------------------------------------------------------------------


def _sql(api: Api, statement: str, **options: str) -> httpx.Response:
    response = api.client.post("/sql", json={"sql": statement, **options}, headers=api.headers("analyst"))
    assert response.status_code == 200, response.text
    return response


def test_sql_answers_stop_at_the_byte_cap(limited: Api) -> None:
    row = 1_000  # characters a row
    result = _sql(limited, f"select repeat('x', {row}) as x from generate_series(1, 1000)").json()
    assert result["truncated"] and result["truncated_by"] == "bytes"
    sent = len(json.dumps(result["rows"]))
    assert SQL_BYTES <= sent <= SQL_BYTES + row + 10 and result["row_count"] == len(result["rows"]) < 1000

    text = _sql(limited, f"select repeat('x', {row}) as x from generate_series(1, 1000)", format="csv")
    assert text.headers["X-Truncated"] == "true" and text.headers["X-Truncated-By"] == "bytes"
    assert SQL_BYTES - row <= len(text.content) <= SQL_BYTES + row + 10


def test_an_answer_that_ends_at_the_cap_is_whole(limited: Api) -> None:
    # 1,000 characters and 3 of quotes and separator a row: the 50th row reaches 50,000 bytes
    whole = _sql(limited, "select repeat('x', 1000) from generate_series(1, 50)").json()
    assert (whole["row_count"], whole["truncated"], whole["truncated_by"]) == (50, False, None)
    cut = _sql(limited, "select repeat('x', 1000) from generate_series(1, 51)").json()
    assert (cut["row_count"], cut["truncated"], cut["truncated_by"]) == (50, True, "bytes")


def test_the_row_cap_still_holds(limited: Api) -> None:
    max_rows = Settings.from_env(target=limited.target).sql_max_rows
    result = _sql(limited, "select g from generate_series(1, 5000) as g").json()
    assert result["rows"] == [[g] for g in range(1, max_rows + 1)] and result["truncated_by"] == "rows"
    exact = _sql(limited, f"select g from generate_series(1, {max_rows}) as g").json()
    assert exact["row_count"] == max_rows and not exact["truncated"]


def test_wide_rows_answer_the_default_cap(writable_api: Api) -> None:
    cap = Settings.from_env(target=writable_api.target).sql_max_bytes
    response = _sql(writable_api, "select repeat('x', 500000) from generate_series(1, 1000)")
    result = response.json()
    assert result["truncated_by"] == "bytes" and cap <= len(response.content) <= cap + 500_100


# --- instants in UTC -----------------------------------------------------------------------------

REFUSED = ["2100-12-31T23:00:00-02:00", "1900-01-01T00:30:00+01:00", "1899-12-31T23:59:59Z", "2101-01-01T00:00:00Z"]
# the year of the offset is out of range, the year in UTC is not
ACCEPTED = ["2101-01-01T00:30:00+01:00", "1899-12-31T23:30:00-01:00", "1900-01-01T00:00:00Z", "2100-12-31T23:59:59Z"]


def test_instants_are_bounded_by_their_year_in_utc(writable_api: Api, user: int, title: str) -> None:
    headers = writable_api.headers("data_scientist")
    for n, moment in enumerate(REFUSED + ACCEPTED):
        expected = 422 if moment in REFUSED else 201
        rating = {"content_id": title, "rating": 3, "rated_at": moment}
        event = {k: v for k, v in _event(user, title, started_at=moment, seconds_watched=n).items() if k != "user_id"}
        for path, body, field in (("ratings", rating, "rated_at"), ("events", event, "started_at")):
            response = writable_api.client.post(f"/users/{user}/{path}", json=body, headers=headers)
            assert response.status_code == expected, f"{field} {moment}: {response.text[:300]}"
            if expected == 422:
                assert response.json()["detail"][0]["loc"] == ["body", field]


def test_activity_checks_the_same_bounds(writable_api: Api, user: int, title: str) -> None:
    at = pd.to_datetime(REFUSED[2:] + ACCEPTED[2:], utc=True, format="ISO8601")
    ratings = pd.DataFrame({"user_id": user, "content_id": title, "rating": 3, "rated_at": at})
    with closing(writable_api.target.connect()) as conn, pytest.raises(activity.BatchError) as refused:
        activity.prepare_ratings(conn, ratings)
    assert sorted(refused.value.problems["row"]) == [0, 1]
    assert set(refused.value.problems["column"]) == {"rated_at"}
