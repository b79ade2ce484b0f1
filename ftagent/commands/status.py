"""`ftagent status`: the running agent's state, from its local /health endpoint."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import httpx

from ftagent.config import ConfigError, load


def render(h: dict[str, Any]) -> str:
    lines = [
        f"status:       {h.get('status')}",
        f"version:      {h.get('version')}   uptime {h.get('uptime_s')} s",
        f"interface:    {h.get('interface')} (XDP {h.get('xdp_mode')}, prog {h.get('prog_id')})",
        f"traffic:      {h.get('pps')} pps, {h.get('bps')} bps, dropped {h.get('dropped_pps')} pps",
        f"baseline:     {'ready' if h.get('baseline_ready') else 'learning'}"
        f" ({h.get('baseline_samples')} s)",
        "thresholds:   " + ", ".join(f"{k} {v:g}" for k, v in (h.get("thresholds") or {}).items()),
        f"mitigation:   {h.get('mitigation_mode')}, {h.get('rules_active')} rules active",
        "socket guard: "
        + ("on" if h.get("socket_guard") else f"off ({h.get('socket_guard_reason')})")
        + f", tcp_syncookies {h.get('tcp_syncookies')}",
    ]
    for text in h.get("warnings") or []:
        lines.append(f"  warning     {text}")
    for r in h.get("rules") or []:
        lines.append(f"  rule        {r}")
    link = h.get("link")
    if link:
        lines.append(f"link:         {render_link(link)}")
    inc = h.get("incident")
    if inc:
        lines.append(
            f"incident:     {inc['uuid']} {inc['family']} ({inc['subtype']}) severity "
            f"{inc['severity']} since {inc['started_at']}, peak {inc['peak_pps']} pps"
        )
    else:
        lines.append("incident:     none")
    for o in h.get("fleet_orders") or []:
        since = o.get("in_force_since")
        lines.append(
            f"fleet order:  {o['incident_uuid']} {o['family']} on {o['group'] or 'the fleet'}, "
            f"{'in force since ' + since if since else 'not in force (' + o['mode'] + ')'}, "
            f"expires in {o['expires_in_s']} s unless renewed"
        )
        for r in o.get("rules") or []:
            lines.append(f"  fleet rule  {r}")
    return "\n".join(lines)


def render_link(link: dict[str, Any]) -> str:
    if not link.get("readable"):
        return f"losses not readable ({link.get('error')})"
    verdict = (
        f"SATURATED since {link.get('saturated_since')}"
        if link.get("saturated")
        else "not saturated"
    )
    return f"{link.get('rx_lost_pps')} pps lost before XDP (rx dropped+missed+fifo), {verdict}"


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
        health = resp.json()
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        print(f"ftagent: no running agent answers at {url}: {exc}", file=sys.stderr)
        return 1
    if getattr(args, "json", False):
        print(json.dumps(health, indent=2))
    else:
        print(render(health))
    return 0
