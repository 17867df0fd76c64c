"""The HTTP API: serve it, manage its keys."""

from __future__ import annotations

import argparse
import os
from contextlib import closing

from recommender.api import keys
from recommender.cli.connect import add_lake_option, warehouse


def cmd_serve(args: argparse.Namespace) -> int:
    # imported here: only this command needs the web server
    import uvicorn

    from recommender.api.app import LOG_CONFIG

    # the workers build their app from the environment: point it at the warehouse chosen here
    os.environ.update(warehouse().env())
    if args.lake:
        os.environ["NETFLIX_LAKE_DIR"] = str(args.lake.resolve())
    print(f"API docs: http://{args.host}:{args.port}/docs", flush=True)
    uvicorn.run(
        "recommender.api.app:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,  # the app logs each request as one JSON line
        log_config=LOG_CONFIG,
    )
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    with closing(warehouse().connect()) as conn:
        keys.ensure_schema(conn)  # a warehouse the API never served has no schema api yet
        if args.action == "create":
            key = keys.create_key(conn, args.role, args.name)
            print(f"{args.role} key {keys.parse_key_id(key)} for {args.name} (shown once, keep it secret):")
            print(key)
        elif args.action == "revoke":
            keys.revoke_key(conn, args.key_id)
            print(f"key {args.key_id} revoked")
        else:
            for info in keys.list_keys(conn):
                state = f"revoked {info.revoked_at:%Y-%m-%d %H:%M}" if info.revoked_at else "active"
                print(f"{info.key_id}  {info.role:<14}  {state:<22}  {info.name}")
    return 0


def add_commands(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="start the HTTP API (docs at /docs)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument("--workers", type=int, default=1, help="processes serving requests")
    add_lake_option(serve, "users, events and ratings")
    serve.set_defaults(func=cmd_serve)

    api_keys = commands.add_parser("keys", help="create, revoke or list the HTTP API's keys")
    key_actions = api_keys.add_subparsers(dest="action", required=True)
    create = key_actions.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--role", required=True, choices=keys.ROLES, help="what the key may do")
    create.add_argument("--name", required=True, help="whose key it is, e.g. alice")
    key_actions.add_parser("revoke", help="revoke a key at once").add_argument("key_id", help="the id keys list shows")
    key_actions.add_parser("list", help="every key: id, role, state, name (never the key)")
    api_keys.set_defaults(func=cmd_keys)
