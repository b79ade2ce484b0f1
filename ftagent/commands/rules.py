"""`ftagent rules`, `ftagent block ADDR|PREFIX [--ttl S]`, `ftagent unblock ADDR|PREFIX`.

They act on the running agent through its pinned maps (/sys/fs/bpf/ftagent/<ifname>/),
so they must run as root in a mount namespace that sees that bpffs; the XDP program uses
a change at once. The interface is --interface, else [agent].interface of --config (read
with plain tomllib, so an unrelated config problem does not block an emergency block).

ADDR (a host address, or a /32 or /128) makes an exact-source rule; any shorter PREFIX a
prefix rule. `block` refuses, like every other path that makes a rule (ftagent.mitigate.protection),
a target covering the config's allow-list or management prefixes, the control plane's
address or the node's own addresses; `--force` blocks it anyway (an emergency tool must
not be stopped by a config it cannot fix now). Exit status: 0 ok, 1 runtime failure (no
agent, rule not found, full table), 2 bad usage (bad address, no interface, protected).
"""

from __future__ import annotations

import argparse
import dataclasses
import ipaddress
import sys
import time
import tomllib
from pathlib import Path
from typing import TextIO

from ftagent.config import AgentSection
from ftagent.datapath import IPNetwork, Rule, RuleSpec
from ftagent.mitigate.protection import Protection
from ftagent.orders.fleet_state import FILE as FLEET_FILE
from ftagent.orders.fleet_state import FleetRulesFile, load, owners_of


class UsageError(Exception):
    pass


def resolve_interface(args: argparse.Namespace) -> str:
    if getattr(args, "interface", None):
        return str(args.interface)
    path = getattr(args, "config", None)
    if not path:
        raise UsageError("no --interface given and no --config to read [agent].interface from")
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError as exc:
        raise UsageError(f"no --interface given and config {path} does not exist") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"cannot read config {path}: {exc}") from exc
    agent = data.get("agent")
    iface = agent.get("interface") if isinstance(agent, dict) else None
    if not isinstance(iface, str) or not iface:
        raise UsageError(f"config {path} has no [agent].interface; pass --interface")
    return iface


def state_dir(args: argparse.Namespace) -> str:
    """[agent].state_dir of --config (read leniently), else the default."""
    path = getattr(args, "config", None)
    default = AgentSection().state_dir
    if not path:
        return default
    try:
        with open(path, "rb") as f:
            agent = tomllib.load(f).get("agent")
    except (OSError, tomllib.TOMLDecodeError):
        return default
    value = agent.get("state_dir") if isinstance(agent, dict) else None
    return value if isinstance(value, str) and value else default


def parse_target(text: str) -> RuleSpec:
    """A host becomes a `src` rule, a shorter prefix a `prefix` rule."""
    try:
        net: IPNetwork = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise UsageError(f"not an address or prefix: {text!r} ({exc})") from exc
    if net.prefixlen == net.max_prefixlen:
        return RuleSpec("src", net)
    return RuleSpec("prefix", net)


def format_rules(rules: list[Rule], now_ns: int, fleet: FleetRulesFile | None = None) -> str:
    """The kernel's rules as a table; OWNER says which a fleet order keeps (the fleet
    incident), from the agent's fleet rules file."""
    if not rules:
        return "no rules\n"
    fleet = fleet or FleetRulesFile()
    rows = [
        (
            "RULE",
            "ACTION",
            "EXPIRES",
            "DROPPED PKTS",
            "DROPPED BYTES",
            "SPARED PKTS",
            "SPARED BYTES",
            "OWNER",
        )
    ]
    for r in sorted(rules, key=lambda r: (r.spec.kind, r.spec.describe())):
        left = (r.expires_ns - now_ns) / 1e9
        expires = f"in {left:.0f}s" if left > 0 else "expired"
        action = f"rate {r.spec.rate_pps} pps" if r.spec.rate_pps else "drop"
        text = dataclasses.replace(r.spec, rate_pps=None).describe()  # the rate is ACTION
        owners = owners_of(r.spec, fleet)
        owner = "fleet " + ",".join(owners) if owners else "-"
        rows.append(
            (
                text,
                action,
                expires,
                str(r.dropped_packets),
                str(r.dropped_bytes),
                str(r.spared_packets),
                str(r.spared_bytes),
                owner,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() + "\n"
        for row in rows
    )


def protection_from_config(path: str | None) -> Protection:
    """The node's protected networks as its config and interfaces state them.

    Read leniently (plain tomllib; entries that do not parse are skipped: the agent itself
    refuses such a config), so that a config problem never blocks an emergency block."""
    from ftagent.mitigate.netinfo import control_networks, own_networks

    data: dict[str, object] = {}
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except (OSError, tomllib.TOMLDecodeError):
            data = {}
    mitigation = data.get("mitigation")
    control = data.get("control")
    mitigation = mitigation if isinstance(mitigation, dict) else {}
    control = control if isinstance(control, dict) else {}
    server = control.get("server")
    return Protection(
        allowlist=_networks(mitigation.get("allowlist")),
        control=control_networks(server) if isinstance(server, str) else [],
        own=own_networks(),
        management=_networks(mitigation.get("management_prefixes")),
    )


def _networks(value: object) -> list[IPNetwork]:
    out: list[IPNetwork] = []
    for text in value if isinstance(value, list) else []:
        try:
            out.append(ipaddress.ip_network(str(text), strict=False))
        except ValueError:
            continue
    return out


def _run(args: argparse.Namespace, action: str, out: TextIO) -> int:
    try:
        iface = resolve_interface(args)
        spec = parse_target(args.address) if action != "list" else None
        ttl = float(getattr(args, "ttl", 0.0) or 0.0)
        if action == "block" and not ttl > 0:
            raise UsageError(f"--ttl must be positive, got {ttl}")
        if action == "block" and spec is not None and spec.network is not None:
            reason = protection_from_config(getattr(args, "config", None)).reason_for(spec.network)
            if reason is not None and not getattr(args, "force", False):
                raise UsageError(
                    f"{spec.network} is protected ({reason}); pass --force to block it anyway"
                )
    except UsageError as exc:
        print(f"ftagent: {exc}", file=sys.stderr)
        return 2
    from ftagent.bpf.pinned import NoAgentError, open_pinned
    from ftagent.bpf.rule_spec import RuleError

    try:
        maps = open_pinned(iface)
        if action == "list":
            fleet = load(Path(state_dir(args)) / FLEET_FILE)
            out.write(format_rules(maps.list_rules(), time.monotonic_ns(), fleet))
            return 0
        assert spec is not None
        if action == "block":
            rule = maps.add_rule(spec, ttl)
            print(
                f"blocked {spec.network} on {iface} for {ttl:g}s "
                f"({spec.kind} rule, {rule.dropped_packets} packets dropped so far)",
                file=out,
            )
            return 0
        if maps.remove_rule(spec):
            print(f"unblocked {spec.network} on {iface}", file=out)
            return 0
        print(f"ftagent: no {spec.kind} rule for {spec.network} on {iface}", file=sys.stderr)
        return 1
    except (NoAgentError, RuleError) as exc:
        print(f"ftagent: {exc}", file=sys.stderr)
        return 1
    except RuntimeError as exc:  # compile/kernel-header errors
        print(f"ftagent: {exc}", file=sys.stderr)
        return 1


def cmd_rules(args: argparse.Namespace) -> int:
    return _run(args, "list", sys.stdout)


def cmd_block(args: argparse.Namespace) -> int:
    return _run(args, "block", sys.stdout)


def cmd_unblock(args: argparse.Namespace) -> int:
    return _run(args, "unblock", sys.stdout)
