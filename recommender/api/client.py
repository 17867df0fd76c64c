"""A small client of the HTTP API, for pipelines that write activity and read the marts without a database connection.

    client = ApiClient("http://127.0.0.1:8000", key)          # a data_scientist key
    features = client.read_table("marts.ml_title_features")    # as warehouse.read_table(conn, ...) gives it
    client.write_users(users); client.write_events(events)     # as activity.write_users / write_events take them
    client.create_experiment(experiment); arms = client.assign(experiment_id, user_ids)   # activity.Experiment
    client.write_impressions(impressions)                      # as activity.write_impressions takes them
    run_id = client.start_run("ease", parameters, snapshot)   # a model run, as recommender.ml.publish's
    client.upload_recommendations(run_id, recommendations); client.publish_run(run_id, metrics=..., timings=...)

``python -m recommender simulate --api URL`` and ``train --api URL`` use it, with the key in
``NETFLIX_API_KEY``. Writes go in chunks of ``chunk_rows`` rows, each chunk one batch (all
of it written or none). Each chunk carries an ``Idempotency-Key`` that its retries (after a
timeout, a dropped connection, a 502/503/504) keep, so a retry never writes twice; and as
the API knows a batch by a digest of its content, sending the same rows again later changes
nothing either. A refused chunk raises ``BatchRefusedError`` (an ``activity.BatchError``
whose ``problems`` name rows of the whole frame); any other refusal, or no answer, raises
``ApiError`` with the API's own message.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recommender import activity
from recommender.errors import InvalidArgumentError, MissingError, UnavailableError
from recommender.warehouse.jsonable import plain

KEY_VARIABLE = "NETFLIX_API_KEY"
PARQUET = "application/vnd.apache.parquet"
CHUNK_ROWS = 20_000  # rows per write request (the API takes up to 50,000)
RETRY_STATUSES = (502, 503, 504)


class ApiError(UnavailableError, RuntimeError):
    """The API refused a request (``status``, and its ``detail``), or did not answer (``status`` None)."""

    def __init__(self, message: str, status: int | None = None, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.detail = detail


class BatchRefusedError(ApiError, activity.BatchError):
    """The API refused a chunk of a write (409 or 422); ``problems`` as ``activity.BatchError``'s, rows of the frame."""

    def __init__(self, kind: str, problems: pd.DataFrame, status: int, detail: Any, written_before: int) -> None:
        activity.BatchError.__init__(self, kind, problems)
        self.status, self.detail = status, detail
        if written_before:
            self.args = (
                f"{self.args[0]}\n  (the rows before row {written_before} went in earlier chunks and are written)",
            )


def _json_column(column: pd.Series) -> list[Any]:
    """A column as JSON values: timestamps ISO 8601 (with +00:00 when time-zone aware), missing values None."""
    dtype = column.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        utc = column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
        values: list[Any] = np.char.add(np.datetime_as_string(utc, unit="us"), "+00:00").tolist()
    elif pd.api.types.is_datetime64_dtype(dtype):
        values = np.datetime_as_string(column.to_numpy(dtype="datetime64[us]"), unit="us").tolist()
    elif pd.api.types.is_object_dtype(dtype):
        return [plain(value) for value in column]
    else:
        values = column.tolist()  # numbers, booleans and text as Python's own
    missing = column.isna().to_numpy()
    if missing.any():
        values = [None if gone else value for value, gone in zip(values, missing, strict=True)]
    return values


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as JSON objects: dates and times ISO 8601, NaN, NA and NaT as null, numpy as Python."""
    names = [str(name) for name in frame.columns]
    columns = [_json_column(frame[name]) for name in frame.columns]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def _column(field: pa.Field, column: pa.ChunkedArray) -> pd.Series | list[Any]:
    """One Parquet column typed as ``warehouse.read_table`` types it (what psycopg2's values become in pandas)."""
    pg_type = (field.metadata or {}).get(b"pg_type", b"").decode()
    if pg_type in ("json", "jsonb"):
        return pd.Series([None if value is None else json.loads(value) for value in column.to_pylist()], dtype=object)
    if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
        return pd.Series(column.to_pylist(), dtype=object)  # lists, as psycopg2 gives arrays
    series = column.to_pandas()
    if pa.types.is_integer(field.type):
        return series.astype("float64" if column.null_count else "int64")  # ints with nulls are float, as from_records
    if pa.types.is_floating(field.type):
        return series.astype("float64")
    return series


def frame_from_parquet(data: bytes) -> pd.DataFrame:
    """A ``GET /marts/...`` answer as a DataFrame equal to ``warehouse.read_table``'s of the same table and columns."""
    table = pq.read_table(io.BytesIO(data))
    if table.num_rows == 0:
        return pd.DataFrame.from_records([], columns=table.column_names)  # untyped, as read_table's empty frames
    return pd.DataFrame(
        {field.name: _column(field, column) for field, column in zip(table.schema, table.columns, strict=True)}
    )


def _problems(detail: Any, offset: int) -> pd.DataFrame | None:
    """FastAPI's 422 (or the API's 409) list as ``BatchError.problems``, rows counted in the whole frame."""
    if not isinstance(detail, list) or not all(isinstance(item, dict) and "loc" in item for item in detail):
        return None
    rows = []
    for item in detail:
        loc = [part for part in item["loc"] if part != "body"]
        index = next((part for part in loc if isinstance(part, int)), None)
        fields = [str(part) for part in loc if not isinstance(part, int)]
        rows.append(
            {
                "row": None if index is None else offset + index,
                "column": fields[-1] if fields else "body",
                "value": item.get("input"),
                "reason": item.get("msg", ""),
            }
        )
    return pd.DataFrame(rows).astype({"row": "Int64"})


def _message(response: httpx.Response) -> tuple[str, Any]:
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text
    if isinstance(detail, list):
        text = "; ".join(
            f"{'.'.join(map(str, item.get('loc', [])))}: {item.get('msg')}" if isinstance(item, dict) else str(item)
            for item in detail[:10]
        ) + (f"; ... and {len(detail) - 10} more" if len(detail) > 10 else "")
    else:
        text = str(detail)
    return text, detail


class ApiClient:
    """The API at ``base_url`` with ``key`` (header X-API-Key); ``http`` is a ready client to use (e.g. a TestClient).

    ``read_table`` needs a key of role data_scientist (or admin), as do the writes.
    """

    def __init__(
        self,
        base_url: str,
        key: str,
        *,
        timeout: float = 300.0,
        retries: int = 2,
        chunk_rows: int = CHUNK_ROWS,
        http: httpx.Client | None = None,
    ) -> None:
        if not 1 <= chunk_rows <= 50_000:
            raise InvalidArgumentError(f"chunk_rows must be between 1 and 50,000 (the API's limit), not {chunk_rows}")
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.chunk_rows = chunk_rows
        self._owns_http = http is None
        self._http = http if http is not None else httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0))
        self._headers = {"X-API-Key": key, "User-Agent": "netflix_warehouse recommender.api.client"}

    @classmethod
    def from_env(cls, base_url: str, environ: Mapping[str, str] = os.environ, **options: Any) -> ApiClient:
        """A client with the key in ``NETFLIX_API_KEY``; LookupError saying how to get one if it is not set."""
        key = environ.get(KEY_VARIABLE, "").strip()
        if not key:
            raise MissingError(
                f"{KEY_VARIABLE} is not set: put a data_scientist key of the API at {base_url} in it"
                " (python -m recommender keys create --role data_scientist --name NAME)"
            )
        return cls(base_url, key, **options)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        content: bytes | None = None,
        headers: Any = None,
        retries: int | None = None,
    ) -> httpx.Response:
        """Send, retrying what is safe to retry (no answer, 502, 503, 504) ``retries`` times (default: the
        client's); ApiError if the API never answers."""
        retries = self.retries if retries is None else retries
        for attempt in range(retries + 1):
            try:
                response = self._http.request(
                    method,
                    f"{self.base_url}{path}",
                    params=params,
                    content=content,
                    headers={**self._headers, **(headers or {})},
                )
            except httpx.TransportError as exc:
                if attempt == retries:
                    raise ApiError(f"the API at {self.base_url} does not answer ({method} {path}): {exc}") from exc
            else:
                if response.status_code not in RETRY_STATUSES or attempt == retries:
                    return response
            time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def _refused(self, response: httpx.Response, method: str, path: str) -> ApiError:
        text, detail = _message(response)
        return ApiError(
            f"the API refused {method} {path} ({response.status_code} {response.reason_phrase}): {text}",
            response.status_code,
            detail,
        )

    def read_table(self, name: str, columns: Sequence[str] | None = None) -> pd.DataFrame:
        """A whole mart (``GET /marts/{name}``: e.g. ``marts.ml_interactions`` or ``ml_interactions``), as
        ``warehouse.read_table(conn, name, columns=columns)`` reads it: same columns, dtypes and rows."""
        path = f"/marts/{name}"
        response = self._request("GET", path, params={"columns": list(columns)} if columns else None)
        if not response.is_success:
            raise self._refused(response, "GET", path)
        return frame_from_parquet(response.content)

    def _write(self, path: str, kind: str, frame: pd.DataFrame) -> list[activity.WriteResult]:
        results = []
        for begin in range(0, len(frame), self.chunk_rows):
            chunk = frame.iloc[begin : begin + self.chunk_rows]
            body = json.dumps(records(chunk), allow_nan=False, separators=(",", ":")).encode()
            # one key per chunk and call, kept by its retries: a retry replays the first answer. Not the content
            # alone: the API replays a key's answer for ever, so rows deleted since would not be written again.
            key = f"{kind}-{hashlib.sha256(body).hexdigest()[:16]}-{uuid.uuid4().hex[:16]}"
            response = self._request(
                "POST", path, content=body, headers={"Content-Type": "application/json", "Idempotency-Key": key}
            )
            if not response.is_success:
                _, detail = _message(response)
                problems = _problems(detail, begin) if response.status_code in (409, 422) else None
                if problems is None:
                    raise self._refused(response, "POST", path)
                raise BatchRefusedError(kind, problems, response.status_code, detail, begin)
            answer = response.json()
            results.append(activity.WriteResult(answer["kind"], answer["batch_id"], answer["rows"], answer["written"]))
        return results

    def write_users(self, users: pd.DataFrame) -> list[activity.WriteResult]:
        """``POST /users`` in chunks: columns of ``activity.UserBatch``; one result per chunk."""
        return self._write("/users", "users", users)

    def write_events(self, events: pd.DataFrame) -> list[activity.WriteResult]:
        """``POST /events`` in chunks: columns of ``activity.EventBatch`` (``event_id`` optional); one result per chunk.

        The users must be written first (an earlier call, or the warehouse already has them).
        """
        return self._write("/events", "viewing_events", events)

    def write_impressions(self, impressions: pd.DataFrame) -> list[activity.WriteResult]:
        """``POST /impressions`` in chunks: columns of ``activity.ImpressionBatch`` (``experiment_id``, ``arm`` and
        ``run_id`` optional); one result per chunk. Events and ratings that cite them go after."""
        return self._write("/impressions", "impressions", impressions)

    def _json(self, method: str, path: str, body: Any) -> httpx.Response:
        content = json.dumps(plain(body), allow_nan=False).encode()
        response = self._request(method, path, content=content, headers={"Content-Type": "application/json"})
        if not response.is_success:
            raise self._refused(response, method, path)
        return response

    def create_experiment(self, experiment: activity.Experiment) -> bool:
        """``POST /experiments``: register ``experiment`` and its arms; False if this definition was there already
        (as ``activity.create_experiment``). Another definition under its id: ApiError with status 409."""
        body = {
            "experiment_id": experiment.experiment_id,
            "name": experiment.name,
            "seed": experiment.seed,
            "first_day": experiment.first_day.isoformat(),
            "days": experiment.days,
            "configuration": experiment.configuration,
            "arms": [
                {
                    "arm": arm.arm,
                    "model": arm.model,
                    "run_id": arm.run_id,
                    "parameters": arm.parameters,
                    "share": arm.share,
                    "is_control": arm.is_control,
                }
                for arm in experiment.arms
            ],
        }
        return self._json("POST", "/experiments", body).status_code == 201

    def assign(self, experiment_id: int, user_ids: Sequence[int]) -> pd.Series:
        """``POST /experiments/{id}/assignments`` in chunks: each user's arm, indexed by user_id (as
        ``activity.assign``), written; users assigned before keep theirs."""
        arms: dict[int, str] = {}
        users = [int(user_id) for user_id in user_ids]
        for begin in range(0, len(users), self.chunk_rows):
            chunk = users[begin : begin + self.chunk_rows]
            answer = self._json("POST", f"/experiments/{experiment_id}/assignments", chunk)
            arms.update((row["user_id"], row["arm"]) for row in answer.json()["users"])
        index = pd.Index(users, name="user_id")
        return pd.Series([arms[user] for user in users], index=index, name="arm", dtype=object)

    def _run_step(self, method: str, path: str, content: bytes, media_type: str) -> dict[str, Any]:
        """One step of a model run, never retried: a step that went through must not run twice (an upload's
        rows are attached once), and one that failed has failed the run."""
        response = self._request(method, path, content=content, headers={"Content-Type": media_type}, retries=0)
        if not response.is_success:
            raise self._refused(response, method, path)
        return response.json()

    def _run_json(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._run_step("POST", path, json.dumps(plain(body), allow_nan=False).encode(), "application/json")

    def start_run(self, model: str, parameters: dict[str, Any], data_snapshot: dict[str, Any]) -> str:
        """``POST /runs``: register a running run of ``model``; its run_id (as ``publish.start_run``)."""
        return self._run_json("/runs", {"model": model, "parameters": parameters, "data_snapshot": data_snapshot})[
            "run_id"
        ]

    def upload_recommendations(self, run_id: str, recommendations: pd.DataFrame) -> dict[str, Any]:
        """``PUT /runs/{run_id}/recommendations`` as Parquet (columns as ``publish.stage`` takes them): checked whole
        and attached, not yet current; the answer (rows, users). Refused rows: ApiError (422) naming the columns
        and rows, and the run has failed."""
        sink = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(recommendations, preserve_index=False), sink)
        return self._run_step("PUT", f"/runs/{run_id}/recommendations", sink.getvalue(), PARQUET)

    def publish_run(
        self, run_id: str, *, metrics: dict[str, Any], timings: dict[str, Any], current: bool = True
    ) -> dict[str, Any]:
        """``POST /runs/{run_id}/publish``: record what the run measured and, with ``current``, make it current;
        the run as the API answers it."""
        return self._run_json(f"/runs/{run_id}/publish", {"metrics": metrics, "timings": timings, "current": current})

    def fail_run(self, run_id: str, error: str) -> None:
        """``POST /runs/{run_id}/fail``: mark the running run failed (one that failed already keeps its error)."""
        self._run_json(f"/runs/{run_id}/fail", {"error": error})
