"""`ftagent` command line: one subcommand per module under ftagent.commands.

Exit status: 0 ok, 1 runtime failure, 2 bad usage or bad configuration.
"""

from __future__ import annotations

import argparse
import sys

from ftagent import __version__

DEFAULT_CONFIG = "/etc/ftagent/ftagent.toml"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ftagent", description="XDP DDoS detection and mitigation agent"
    )
    p.add_argument("--version", action="version", version=f"ftagent {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="attach to the interface and detect/mitigate")
    run.add_argument("--config", default=DEFAULT_CONFIG)

    dep = sub.add_parser("deploy", help="register with the control plane and write the config")
    dep.add_argument("--server", required=True)
    dep.add_argument(
        "--token", help="workspace deploy token (default: $FTAGENT_DEPLOY_TOKEN, kept out of ps)"
    )
    dep.add_argument("--name", required=True)
    dep.add_argument("--ip", required=True)
    dep.add_argument("--interface", default="eth0")
    dep.add_argument("--config", default=DEFAULT_CONFIG)

    for name, text in (("status", "show the running agent's state"), ("rules", "list drop rules")):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("--config", default=DEFAULT_CONFIG)
        sp.add_argument("--interface", help="interface (default: from the config)")

    blk = sub.add_parser("block", help="drop traffic from an address or prefix")
    blk.add_argument("address")
    blk.add_argument("--ttl", type=float, default=3600.0, help="seconds (default 3600)")
    blk.add_argument(
        "--force",
        action="store_true",
        help="block even an address the config protects (allow-list, management, control plane, "
        "own addresses)",
    )
    unb = sub.add_parser("unblock", help="remove a block")
    unb.add_argument("address")
    for sp in (blk, unb):
        sp.add_argument("--config", default=DEFAULT_CONFIG)
        sp.add_argument("--interface", help="interface (default: from the config)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Imported lazily: `ftagent rules` must not pay for compiling BPF, `deploy` needs no bcc.
    if args.command == "run":
        from ftagent.commands.run import cmd_run

        return cmd_run(args)
    if args.command == "deploy":
        from ftagent.commands.deploy import cmd_deploy

        return cmd_deploy(args)
    if args.command == "status":
        from ftagent.commands.status import cmd_status

        return cmd_status(args)
    from ftagent.commands.rules import cmd_block, cmd_rules, cmd_unblock

    handler = {"rules": cmd_rules, "block": cmd_block, "unblock": cmd_unblock}[args.command]
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
