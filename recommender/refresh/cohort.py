"""The refresh's simulated cohort, staged beside app and checked against the catalogue of the generation it builds."""

from __future__ import annotations

from dataclasses import dataclass, replace

from psycopg2.extensions import connection

from recommender import activity
from recommender.activity.simulate import SimulationConfig, simulate
from recommender.refresh.generations import COHORT, NEXT, PENDING, GenerationError, drop_schemas, schema
from recommender.warehouse import sql_files
from recommender.warehouse.targets import read_table


@dataclass(frozen=True)
class Cohort:
    pending: bool  # True: app changes at the switch (the cohort is new, or its catalogue changed)
    written: list[activity.WriteResult]


def stage_cohort(conn: connection, config: SimulationConfig) -> Cohort:
    """Simulate ``config`` on the next generation's catalogue and stage it in ``app__cohort``.

    When app already holds exactly this cohort (same catalogue, same configuration) nothing
    is staged and app is read as it is; else the refresh reads ``app__next`` (app with these
    user ids replaced by the cohort) and ``switch`` applies the cohort to app.
    """
    features = read_table(conn, f"{schema('marts', NEXT)}.ml_title_features")
    if features.empty:
        raise GenerationError("the next generation's marts.ml_title_features is empty: there is nothing to watch")
    simulation = simulate(features, config)
    with conn, conn.cursor() as cur:
        drop_schemas(cur, [PENDING, COHORT])
        cur.execute(sql_files.read(__package__, "cohort.sql"))
    place = activity.Place(
        titles=f"{schema('core', NEXT)}.titles",
        countries=f"{schema('core', NEXT)}.countries",
        users=f"{COHORT}.users",
        schema=COHORT,
    )
    users = activity.prepare_users(conn, simulation.users, place)
    written = [activity.write_prepared(conn, users, place)]
    events = activity.prepare_events(conn, simulation.events, place)
    if activity.is_written(conn, users.batch_id) and activity.is_written(conn, events.batch_id):
        with conn, conn.cursor() as cur:
            drop_schemas(cur, [PENDING, COHORT])
        return Cohort(pending=False, written=[replace(w, written=False) for w in written] + _skipped(events))
    written.append(activity.write_prepared(conn, events, place))
    return Cohort(pending=True, written=written)


def _skipped(batch: activity.PreparedBatch) -> list[activity.WriteResult]:
    return [activity.WriteResult(batch.kind, batch.batch_id, batch.table.num_rows, written=False)]
