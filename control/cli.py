"""`ftcontrol`: run the control plane and manage workspaces.

ftcontrol --version
ftcontrol serve [--host H] [--port P] [--db PATH] [--offline-after S] [--public-url URL]
                [--bgp-config PATH [--bgp-workdir DIR]] [--no-fleet] [--log-level L]
ftcontrol workspace create NAME [--plan P]       prints the deploy token (only time shown)
ftcontrol workspace rotate-token NAME            revokes old tokens, prints the new one
ftcontrol workspace subscription NAME active|past_due|canceled
ftcontrol workspace prefixes NAME add|remove PREFIX   what the workspace may announce (BGP)
ftcontrol workspace prefixes NAME list
ftcontrol workspace groups NAME list             fleet groups: each declared prefix, 'workspace'
ftcontrol workspace groups NAME set GROUP [--uplink-mbps N] [--multiplier X] [--burst-factor X]
                [--confirm-s N] [--cooldown-s S] [--floor METRIC=N ...]
ftcontrol user create EMAIL --workspace NAME [--role admin|viewer]   password from stdin
ftcontrol user passwd EMAIL                      new password from stdin; signs the user out
ftcontrol user delete EMAIL
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import aiosqlite

from control import __version__
from control.bgp import prefixes as bgp_prefixes
from control.bgp.config import BgpConfigError, load_bgp_config
from control.bgp.lifespan import BgpSettings
from control.core.db import open_db
from control.core.errors import DomainError, InvalidValue
from control.core.limits import MAX_BODY_BYTES
from control.core.ratelimit import DEFAULT_MAX_FAILURES, DEFAULT_WINDOW_S
from control.dashboard import users
from control.dashboard.settings import DEFAULT_ABSOLUTE_S, DEFAULT_IDLE_S, DashboardSettings
from control.fleet import admin as fleet_admin
from control.fleet.settings import FleetSettings
from control.workspace import service as workspaces
from control.workspace.plans import DEFAULT_PLAN, PLAN_NODE_LIMITS, SUBSCRIPTION_STATUSES

DEFAULT_DB = "./ftcontrol.db"
# On stop, uvicorn waits for open connections; a dashboard's live stream never ends by
# itself, so after this long the remaining ones are closed and the server exits.
SHUTDOWN_GRACE_S = 5


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _public_url(text: str) -> str:
    from control.install.assets import SERVER_URL

    url = text.rstrip("/")
    if not SERVER_URL.match(url):
        raise argparse.ArgumentTypeError(f"must be http(s)://host[:port], not {text}")
    return url


def _db_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file (default {DEFAULT_DB})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ftcontrol", description="fasttrace control plane")
    parser.add_argument("--version", action="version", version=f"ftcontrol {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API server (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="listen port (default 8080)")
    serve.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="info",
        help="info (default): incidents, rules, refusals, outages, each once; debug adds"
        " one line per HTTP request",
    )
    serve.add_argument(
        "--offline-after",
        type=_positive,
        default=15.0,
        metavar="SECONDS",
        help="a node without a heartbeat for this long is offline"
        " (default 15: three missed 5 s heartbeats)",
    )
    serve.add_argument(
        "--elevated-factor",
        type=_positive,
        default=1.5,
        metavar="X",
        help="a node reporting more than X times its baseline p95 pps is elevated (default 1.5)",
    )
    serve.add_argument(
        "--auth-max-failures",
        type=_positive_int,
        default=DEFAULT_MAX_FAILURES,
        metavar="N",
        help="failed authentications per client address within the window before 429 "
        f"(default {DEFAULT_MAX_FAILURES})",
    )
    serve.add_argument(
        "--auth-window",
        type=_positive,
        default=DEFAULT_WINDOW_S,
        metavar="SECONDS",
        help=f"window of --auth-max-failures (default {DEFAULT_WINDOW_S:g})",
    )
    serve.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=MAX_BODY_BYTES,
        metavar="BYTES",
        help=f"largest JSON request body, else 413 (default {MAX_BODY_BYTES})",
    )
    serve.add_argument(
        "--session-idle",
        type=_positive,
        default=DEFAULT_IDLE_S,
        metavar="SECONDS",
        help=f"a dashboard session unused this long ends (default {DEFAULT_IDLE_S:g})",
    )
    serve.add_argument(
        "--session-max-age",
        type=_positive,
        default=DEFAULT_ABSOLUTE_S,
        metavar="SECONDS",
        help=f"no dashboard session outlives this (default {DEFAULT_ABSOLUTE_S:g})",
    )
    serve.add_argument(
        "--insecure-cookies",
        action="store_true",
        help="session cookie without the Secure flag, for plain-HTTP labs only",
    )
    serve.add_argument(
        "--public-url",
        type=_public_url,
        metavar="URL",
        help="this server as nodes reach it (https://host[:port]), written into the "
        "served /install.sh; default: the origin each request came to",
    )
    serve.add_argument(
        "--bgp-config",
        type=Path,
        metavar="PATH",
        help="run the BGP speaker (ExaBGP) for upstream mitigation, configured by this TOML "
        "file; without it nothing BGP runs and the BGP routes answer 409",
    )
    serve.add_argument(
        "--bgp-workdir",
        type=Path,
        metavar="DIR",
        help="ExaBGP's configuration, API socket and log (default: <db>.bgp next to the db)",
    )
    serve.add_argument(
        "--no-fleet",
        action="store_true",
        help="turn fleet detection off (no group sums, no fleet incidents, no fleet orders); "
        "also FTCONTROL_FLEET=off",
    )
    _db_option(serve)

    workspace = commands.add_parser("workspace", help="manage workspaces")
    actions = workspace.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="create a workspace, print its deploy token")
    create.add_argument("name")
    create.add_argument("--plan", default=DEFAULT_PLAN, choices=sorted(PLAN_NODE_LIMITS))
    _db_option(create)
    rotate = actions.add_parser("rotate-token", help="revoke the deploy token, print a new one")
    rotate.add_argument("name")
    _db_option(rotate)
    subscription = actions.add_parser("subscription", help="set the subscription status")
    subscription.add_argument("name")
    subscription.add_argument("status", choices=SUBSCRIPTION_STATUSES)
    _db_option(subscription)
    prefixes = actions.add_parser(
        "prefixes", help="the prefixes the workspace may have announced upstream (BGP)"
    )
    prefixes.add_argument("name")
    prefixes.add_argument("prefix_action", choices=("add", "remove", "list"))
    prefixes.add_argument("prefix", nargs="?", help="e.g. 203.0.113.0/24 (add / remove)")
    _db_option(prefixes)
    groups = actions.add_parser(
        "groups", help="fleet groups: uplink and threshold overrides of each group"
    )
    groups.add_argument("name")
    groups.add_argument("group_action", choices=("list", "set"))
    groups.add_argument("group", nargs="?", help="a declared prefix, or 'workspace' (set)")
    groups.add_argument("--uplink-mbps", type=float, metavar="N")
    groups.add_argument("--multiplier", type=float, metavar="X")
    groups.add_argument("--burst-factor", type=float, metavar="X")
    groups.add_argument("--confirm-s", type=int, metavar="N")
    groups.add_argument("--cooldown-s", type=float, metavar="S")
    groups.add_argument(
        "--floor", action="append", default=[], metavar="METRIC=N",
        help="a floor per metric (pps, bps, udp_pps, ..., amp_pps); repeatable",
    )  # fmt: skip
    _db_option(groups)

    user = commands.add_parser("user", help="manage dashboard users")
    user_actions = user.add_subparsers(dest="action", required=True)
    user_create = user_actions.add_parser(
        "create", help="create a dashboard user (password read from stdin)"
    )
    user_create.add_argument("email")
    user_create.add_argument("--workspace", required=True, metavar="NAME")
    user_create.add_argument("--role", default="viewer", choices=users.ROLES)
    _db_option(user_create)
    passwd = user_actions.add_parser("passwd", help="set a new password (read from stdin)")
    passwd.add_argument("email")
    _db_option(passwd)
    user_delete = user_actions.add_parser("delete", help="delete a dashboard user")
    user_delete.add_argument("email")
    _db_option(user_delete)
    return parser


async def _with_db(path: str, action: Callable[[aiosqlite.Connection], Awaitable[None]]) -> None:
    db = await open_db(path)
    try:
        await action(db)
    finally:
        await db.close()


def _workspace(args: argparse.Namespace) -> None:
    async def create(db: aiosqlite.Connection) -> None:
        _, token = await workspaces.create_workspace(db, args.name, args.plan)
        print(
            f"workspace {args.name!r} created (plan {args.plan}); deploy token, shown once:",
            file=sys.stderr,
        )
        print(token)

    async def rotate(db: aiosqlite.Connection) -> None:
        token = await workspaces.rotate_token(db, args.name)
        print(
            f"workspace {args.name!r}: old tokens revoked; new deploy token, shown once:",
            file=sys.stderr,
        )
        print(token)

    async def subscription(db: aiosqlite.Connection) -> None:
        await workspaces.set_subscription(db, args.name, args.status)
        print(f"workspace {args.name!r}: subscription {args.status}", file=sys.stderr)

    async def prefixes(db: aiosqlite.Connection) -> None:
        if args.prefix_action == "list":
            for prefix in await bgp_prefixes.list_prefixes(db, args.name):
                print(prefix)
            return
        if args.prefix is None:
            raise InvalidValue("prefix", f"{args.prefix_action} needs a PREFIX")
        if args.prefix_action == "add":
            done = await bgp_prefixes.add_prefix(db, args.name, args.prefix)
            print(f"workspace {args.name!r}: {done} declared", file=sys.stderr)
        else:
            done = await bgp_prefixes.remove_prefix(db, args.name, args.prefix)
            print(f"workspace {args.name!r}: {done} removed", file=sys.stderr)

    async def groups(db: aiosqlite.Connection) -> None:
        if args.group_action == "list":
            for line in await fleet_admin.describe_groups(db, args.name):
                print(line)
            return
        if args.group is None:
            raise InvalidValue("group", "set needs a GROUP (a declared prefix or 'workspace')")
        key = await fleet_admin.set_group(
            db,
            args.name,
            args.group,
            uplink_mbps=args.uplink_mbps,
            changes={
                "multiplier": args.multiplier,
                "burst_factor": args.burst_factor,
                "confirm_s": args.confirm_s,
                "cooldown_s": args.cooldown_s,
            },
            floors=args.floor,
        )
        print(f"workspace {args.name!r}: group {key} set", file=sys.stderr)

    action = {
        "create": create,
        "rotate-token": rotate,
        "subscription": subscription,
        "prefixes": prefixes,
        "groups": groups,
    }
    asyncio.run(_with_db(args.db, action[args.action]))


def _read_password() -> str:
    """The password from stdin (never argv: it would show in ps and shell history).

    A terminal is asked without echo; a pipe gives its first line."""
    if sys.stdin.isatty():
        import getpass

        return getpass.getpass("password: ")
    return sys.stdin.readline().rstrip("\r\n")


def _user(args: argparse.Namespace) -> None:
    async def create(db: aiosqlite.Connection) -> None:
        await users.create_user(db, args.email, args.workspace, args.role, _read_password())
        print(f"user {args.email!r} created ({args.role} of {args.workspace!r})", file=sys.stderr)

    async def passwd(db: aiosqlite.Connection) -> None:
        await users.set_password(db, args.email, _read_password())
        print(f"user {args.email!r}: password changed, sessions ended", file=sys.stderr)

    async def delete(db: aiosqlite.Connection) -> None:
        await users.delete_user(db, args.email)
        print(f"user {args.email!r} deleted", file=sys.stderr)

    action = {"create": create, "passwd": passwd, "delete": delete}
    asyncio.run(_with_db(args.db, action[args.action]))


def _bgp_settings(args: argparse.Namespace) -> BgpSettings | None:
    if args.bgp_config is None:
        return None
    config = load_bgp_config(args.bgp_config)
    workdir = args.bgp_workdir or Path(f"{args.db}.bgp")
    return BgpSettings(config=config, workdir=workdir.absolute())


def _serve(args: argparse.Namespace) -> None:
    import uvicorn

    _set_log_levels(args.log_level)

    from control.app import create_app

    bgp = _bgp_settings(args)  # a bad file stops here, before anything listens

    app = create_app(
        args.db,
        offline_after_sec=args.offline_after,
        elevated_factor=args.elevated_factor,
        auth_max_failures=args.auth_max_failures,
        auth_window_s=args.auth_window,
        max_body_bytes=args.max_body_bytes,
        public_url=args.public_url,
        bgp=bgp,
        fleet=FleetSettings(enabled=False) if args.no_fleet else None,
        dashboard=DashboardSettings(
            idle_s=args.session_idle,
            absolute_s=args.session_max_age,
            secure_cookies=not args.insecure_cookies,
        ),
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.log_level == "debug",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
    )


# Loggers that write one line per HTTP request: only at --log-level debug (a fleet posts
# every node's points each second; an operator wants incidents in the log, not those).
# uvicorn's access log is its own switch (access_log); httpx logs each notification sent.
PER_REQUEST_LOGGERS = ("httpx", "httpcore")


def _set_log_levels(level: str) -> None:
    # Litestar sends our loggers' lines through its own root handler; uvicorn keeps its own.
    logging.getLogger("ftcontrol").setLevel(level.upper())
    for name in PER_REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            _serve(args)
        elif args.command == "user":
            _user(args)
        else:
            _workspace(args)
    except DomainError as exc:
        print(f"ftcontrol: {exc.reason}", file=sys.stderr)
        return 1
    except BgpConfigError as exc:
        print(f"ftcontrol: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
