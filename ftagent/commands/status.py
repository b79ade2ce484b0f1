"""`ftagent status`: the running agent's state, from its local /health endpoint."""

from __future__ import annotations

import argparse
import sys

import httpx
import msgspec

from ftagent.config import ConfigError, load
from ftagent.events import ReportingState
from ftagent.local.views import Health, LinkHealth


def render(h: Health) -> str:
    lines = [
        f"status:       {h.status}",
        f"version:      {h.version}   uptime {h.uptime_s} s",
        f"interface:    {h.interface} (XDP {h.xdp_mode}, prog {h.prog_id})",
        f"traffic:      {h.pps} pps, {h.bps} bps, dropped {h.dropped_pps} pps",
        f"baseline:     {'ready' if h.baseline_ready else 'learning'} ({h.baseline_samples} s)",
        "thresholds:   " + ", ".join(f"{k} {v:g}" for k, v in h.thresholds.items()),
        f"mitigation:   {h.mitigation_mode}, {h.rules_active} rules active",
        "socket guard: "
        + ("on" if h.socket_guard else f"off ({h.socket_guard_reason})")
        + f", tcp_syncookies {h.tcp_syncookies}",
    ]
    for text in h.warnings:
        lines.append(f"  warning     {text}")
    for r in h.rules:
        lines.append(f"  rule        {r}")
    if h.link is not None:
        lines.append(f"link:         {render_link(h.link)}")
    lines.append(f"control:      {render_control(h.control_plane)}")
    inc = h.incident
    if inc is not None:
        lines.append(
            f"incident:     {inc.uuid} {inc.family} ({inc.subtype}) severity "
            f"{inc.severity} since {inc.started_at}, peak {inc.peak_pps} pps"
        )
    else:
        lines.append("incident:     none")
    for o in h.fleet_orders:
        since = o.in_force_since
        lines.append(
            f"fleet order:  {o.incident_uuid} {o.family} on {o.group or 'the fleet'}, "
            f"{'in force since ' + since if since else 'not in force (' + o.mode + ')'}, "
            f"expires in {o.expires_in_s} s unless renewed"
        )
        for r in o.rules:
            lines.append(f"  fleet rule  {r}")
    return "\n".join(lines)


def render_control(c: ReportingState | None) -> str:
    if c is None:
        return "none (stand-alone: detection and mitigation only)"
    if c.breaker == "closed":
        state = "reachable"
    else:
        state = f"UNREACHABLE (retrying; last error: {c.last_error})"
    return f"{c.server} {state}, {c.spooled} report(s) spooled"


def render_link(link: LinkHealth) -> str:
    if not link.readable:
        return f"losses not readable ({link.error})"
    verdict = f"SATURATED since {link.saturated_since}" if link.saturated else "not saturated"
    return f"{link.rx_lost_pps} pps lost before XDP (rx dropped+missed+fifo), {verdict}"


def cmd_status(args: argparse.Namespace) -> int:
    host, port = "127.0.0.1", 9477
    try:
        cfg = load(args.config)
        host, port = cfg.http.listen, cfg.http.port
    except ConfigError as exc:
        # A missing config still lets us try the default address.
        if "cannot read" not in str(exc):
            print(f"ftagent: bad config {args.config}: {exc}", file=sys.stderr)
            return 2
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    url = f"http://{'[' + host + ']' if ':' in host else host}:{port}/health"
    try:
        resp = httpx.get(url, timeout=3.0)
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        print(f"ftagent: no running agent answers at {url}: {exc}", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        # As the agent sent it (an agent of another version may send other keys).
        print(msgspec.json.format(resp.content, indent=2).decode())
        return 0
    try:
        health = msgspec.json.decode(resp.content, type=Health)
    except msgspec.ValidationError as exc:
        print(
            f"ftagent: the agent at {url} answered a /health this version cannot read: {exc}",
            file=sys.stderr,
        )
        return 1
    except msgspec.DecodeError as exc:
        print(f"ftagent: no running agent answers at {url}: {exc}", file=sys.stderr)
        return 1
    print(render(health))
    return 0
