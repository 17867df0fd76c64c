"""What a batch of activity is checked against before anything of it is written: its model and the warehouse.

pandera checks the columns, types and ranges (``_validate``); the references to titles,
countries, users and impressions are looked up in the warehouse (``_unknown_references``,
``_unknown_activity_references``), or, for a lake written directly, among its own users
(``KnownUsers``). Every problem is a row naming the batch's row, column, value and why;
``_refuse_if_any`` raises them together as one ``BatchError``. ``Place`` says which tables
a batch is checked against and written to. Used by ``writes`` and ``experiments``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa
from psycopg2 import sql
from psycopg2.extensions import connection

from recommender.errors import BadInputError


class BatchError(BadInputError, ValueError):
    """A batch was refused whole. ``problems`` has one row per offending row and reason."""

    def __init__(self, kind: str, problems: pd.DataFrame) -> None:
        self.problems = problems
        shown = "\n  ".join(
            f"row {row.row}: {row.column}={row.value!r}: {row.reason}" for row in problems.head(20).itertuples()
        )
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{kind} batch refused, nothing written: {len(problems)} problem(s)\n  {shown}{more}")


@dataclass(frozen=True)
class Place:
    """Where a batch is checked and written: the tables its references must be in, the schema it goes to.

    ``LIVE`` is the warehouse people read. A refresh writes its simulated cohort elsewhere,
    checked against the catalogue of the generation it builds (``recommender.refresh.generations``).
    """

    titles: str = "core.titles"
    countries: str = "core.countries"
    users: str = "app.users"
    schema: str = "app"

    def table(self, name: str) -> str:
        """Another of the place's tables (impressions, assignments), as schema.table."""
        return f"{self.schema}.{name}"


LIVE = Place()


@dataclass(frozen=True)
class KnownUsers:
    """The users a batch may refer to when they are not in a PostgreSQL table (a lake's own): ids, and where."""

    ids: Collection[int]
    where: str


def _validate(
    model: type[pa.DataFrameModel] | pa.DataFrameSchema, frame: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The frame coerced to ``model`` (or as given, if it does not conform) and its problems, one row each."""
    try:
        return model.validate(frame, lazy=True), _no_problems()
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        problems = pd.DataFrame(
            {
                "row": cases["index"].astype("Int64"),
                "column": cases["column"].fillna(cases["schema_context"]).astype(str),
                "value": cases["failure_case"],
                "reason": cases["check"].astype(str),
            }
        )
        return frame, problems


def _no_problems() -> pd.DataFrame:
    return pd.DataFrame(columns=["row", "column", "value", "reason"])


def _refuse_if_any(kind: str, problems: list[pd.DataFrame]) -> None:
    found = [p for p in problems if len(p)]
    if found:
        merged = pd.concat(found, ignore_index=True).astype({"row": "Int64"})
        raise BatchError(kind, merged.sort_values(["row", "column"], na_position="first", kind="stable"))


def _unknown_references(conn: connection, frame: pd.DataFrame, column: str, table: str) -> pd.DataFrame:
    """Rows whose ``column`` value is not a ``column`` of warehouse ``table`` (schema.table), one problem each."""
    if column not in frame.columns:
        return _no_problems()
    schema, name = table.split(".")
    query = sql.SQL("select {column} from {schema}.{table} where {column} = any(%s)").format(
        column=sql.Identifier(column), schema=sql.Identifier(schema), table=sql.Identifier(name)
    )
    with conn.cursor() as cur:
        cur.execute(query, (pd.unique(frame[column].dropna()).tolist(),))
        known = {value for (value,) in cur.fetchall()}
    return _not_in(frame, column, known, table)


def _not_in(frame: pd.DataFrame, column: str, known: Collection[object], where: str) -> pd.DataFrame:
    """Rows whose ``column`` value is not in ``known`` (the values of ``where``), one problem each."""
    missing = ~frame[column].isin(known)
    return pd.DataFrame(
        {
            "row": frame.index[missing],
            "column": column,
            "value": frame.loc[missing, column],
            "reason": f"unknown {column} (not in {where})",
        }
    )


def _unknown_activity_references(
    conn: connection,
    model: type[pa.DataFrameModel],
    frame: pd.DataFrame,
    place: Place,
    users: KnownUsers | None = None,
) -> list[pd.DataFrame]:
    """Rows of an activity batch (events, ratings) whose title or user is not in ``place`` (core.titles, app.users),
    or whose user is not among ``users`` where given.

    ``frame`` is as given when it failed validation, so each key column is typed as
    ``model`` types it first; one whose values do not take that type is not looked up
    (pandera has named its rows already, and the lookup would fail on the type).
    """
    columns = model.to_schema().columns
    found = []
    for column, table in (("content_id", place.titles), ("user_id", place.users)):
        if column not in frame.columns:
            continue
        try:
            typed = frame.assign(**{column: columns[column].dtype.coerce(frame[column])})
        except (TypeError, ValueError):
            continue
        if column == "user_id" and users is not None:
            found.append(_not_in(typed, column, users.ids, users.where))
        else:
            found.append(_unknown_references(conn, typed, column, table))
    if "impression_id" in frame.columns:
        found.append(_foreign_impressions(conn, frame, place))
    return found


def _foreign_impressions(conn: connection, frame: pd.DataFrame, place: Place) -> pd.DataFrame:
    """Rows that cite an impression which is not in ``place`` or was shown to another user or of another title."""
    cited = frame[frame["impression_id"].notna()]
    if cited.empty:
        return _no_problems()
    try:
        keys = pd.DataFrame(
            {
                "impression_id": cited["impression_id"].astype("int64"),
                "user_id": cited["user_id"].astype("int64"),
                "content_id": cited["content_id"].astype(str),
            }
        )
    except (TypeError, ValueError):
        return _no_problems()  # pandera has named these rows already
    query = sql.SQL("select impression_id, user_id, content_id from {} where impression_id = any(%s)").format(
        sql.Identifier(*place.table("impressions").split("."))
    )
    with conn.cursor() as cur:
        cur.execute(query, (pd.unique(keys["impression_id"]).tolist(),))
        shown = pd.DataFrame(cur.fetchall(), columns=["impression_id", "user_id", "content_id"])
    matched = keys.reset_index().merge(shown, on=["impression_id", "user_id", "content_id"], how="left", indicator=True)
    bad = matched[matched["_merge"] == "left_only"]
    return pd.DataFrame(
        {
            "row": bad["index"].to_numpy(),
            "column": "impression_id",
            "value": bad["impression_id"].to_numpy(),
            "reason": f"unknown impression_id (not in {place.table('impressions')} for this user and title)",
        }
    )
