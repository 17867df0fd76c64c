"""Simulated users and their activity."""

from __future__ import annotations

import argparse
import time
from contextlib import closing
from datetime import date
from pathlib import Path

from recommender import activity
from recommender.activity.simulate import SimulationConfig, simulate_into
from recommender.cli.connect import add_lake_option, api_client, warehouse
from recommender.errors import InvalidArgumentError
from recommender.spark import lake


def cmd_simulate(args: argparse.Namespace) -> int:
    config = SimulationConfig(
        users=args.users, days=args.days, seed=args.seed, start=args.start, first_user_id=args.first_user_id
    )
    if (args.api or args.lake) and args.replace:
        raise InvalidArgumentError(
            "--replace deletes rows, which only a direct connection may do; drop --api or --lake, or --replace"
        )
    if args.api and args.lake:
        raise InvalidArgumentError("write through the API or into the lake, not both: drop --api or --lake")
    started = time.perf_counter()
    with api_client(args) or closing(warehouse().connect()) as destination:
        if not args.api:
            activity.ensure_schema(destination)
        if args.lake:
            destination = lake.LakeWriter(destination, args.lake)
        simulation, results = simulate_into(destination, config, replace=args.replace)
    if args.truth:
        simulation.truth.to_csv(args.truth, index=False)
    for result in results:
        print(result)
    print(
        f"simulated {len(simulation.users):,} users and {len(simulation.events):,} events"
        f"{f' through {args.api}' if args.api else ''}{f' into the lake {args.lake}' if args.lake else ''}"
        f" in {time.perf_counter() - started:.1f} s"
        f"{f'; tastes in {args.truth}' if args.truth else ''}"
    )
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    sim = commands.add_parser("simulate", help="simulate users and viewing, write them to app.*")
    sim.add_argument("--users", type=int, default=SimulationConfig.users, help="users to simulate")
    sim.add_argument("--days", type=int, default=SimulationConfig.days, help="days of viewing from --start")
    sim.add_argument("--seed", type=int, default=SimulationConfig.seed, help="seed of the random generator")
    sim.add_argument("--start", type=date.fromisoformat, default=SimulationConfig.start, help="first day, YYYY-MM-DD")
    sim.add_argument(
        "--first-user-id", type=int, default=SimulationConfig.first_user_id, help="the users' ids count up from it"
    )
    sim.add_argument("--truth", type=Path, help="write each user's latent taste to this CSV file (default: none)")
    sim.add_argument("--replace", action="store_true", help="replace what these user ids hold from another simulation")
    sim.add_argument(
        "--api",
        metavar="URL",
        help="read the catalogue and write through the HTTP API at URL, key in NETFLIX_API_KEY"
        " (default: a direct connection to the warehouse)",
    )
    add_lake_option(sim, "users and events")
    sim.set_defaults(func=cmd_simulate)
