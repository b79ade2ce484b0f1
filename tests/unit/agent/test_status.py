import argparse
import socket
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ftagent.commands.status import cmd_status
from ftagent.commands.status import render as render_health
from ftagent.local.views import Health

HEALTH = {
    "status": "attack",
    "version": "0.1.0",
    "uptime_s": 12.3,
    "interface": "eth0",
    "xdp_mode": "native",
    "prog_id": 5,
    "pps": 1000.0,
    "bps": 8e5,
    "dropped_pps": 900.0,
    "baseline_ready": True,
    "baseline_samples": 300,
    "attack_active": True,
    "thresholds": {"pps": 5000.0, "syn_pps": 2000.0},
    "mitigation_mode": "on",
    "rules_active": 1,
    "rules": ["signature proto=17 sport=11211"],
    "incident": {
        "uuid": "u-1",
        "family": "memcached_amplification",
        "subtype": "reflection_sport_11211",
        "severity": "high",
        "started_at": "2026-11-27T19:00:00.000Z",
        "peak_pps": 10000,
    },
}


def render(health: dict[str, Any]) -> str:
    """`ftagent status` of this /health document (decoded as the command decodes it)."""
    return render_health(msgspec.json.decode(msgspec.json.encode(health), type=Health))


def test_render_shows_the_incident_and_rules():
    text = render(HEALTH)
    assert "thresholds:   pps 5000, syn_pps 2000" in text
    assert "rule        signature proto=17 sport=11211" in text
    assert "u-1 memcached_amplification (reflection_sport_11211) severity high" in text
    assert "incident:     none" in render({**HEALTH, "incident": None})


def test_no_running_agent_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp_path / "ftagent.toml"
    cfg.write_text(f"[http]\nport = {port}\n")
    assert cmd_status(argparse.Namespace(config=str(cfg))) == 1
    assert "no running agent answers" in capsys.readouterr().err


def test_render_shows_the_socket_guard_and_its_warnings():
    on = render({**HEALTH, "socket_guard": True, "tcp_syncookies": 1, "warnings": []})
    assert "socket guard: on, tcp_syncookies 1" in on and "warning" not in on
    off = render(
        {
            **HEALTH,
            "socket_guard": False,
            "socket_guard_reason": "kernel lacks bpf_sk_lookup_udp",
            "tcp_syncookies": 0,
            "warnings": ["net.ipv4.tcp_syncookies is 0: ..."],
        }
    )
    assert "socket guard: off (kernel lacks bpf_sk_lookup_udp), tcp_syncookies 0" in off
    assert "  warning     net.ipv4.tcp_syncookies is 0: ..." in off


def test_render_shows_the_fleet_orders_and_their_rules():
    order = {
        "incident_uuid": "f-1",
        "family": "dns_amplification",
        "group": "203.0.113.0/24",
        "rules": ["signature proto=17 sport=53 spare=connected"],
        "mode": "on",
        "expires_in_s": 42.0,
        "in_force_since": "2026-12-08T00:00:01.000Z",
    }
    text = render({**HEALTH, "fleet_orders": [order]})
    assert (
        "fleet order:  f-1 dns_amplification on 203.0.113.0/24, in force since "
        "2026-12-08T00:00:01.000Z, expires in 42.0 s unless renewed"
    ) in text
    assert "  fleet rule  signature proto=17 sport=53 spare=connected" in text
    dry = render({**HEALTH, "fleet_orders": [{**order, "mode": "dry_run", "in_force_since": None}]})
    assert "not in force (dry_run)" in dry
    assert "fleet order" not in render(HEALTH)  # an older agent's /health has none


def test_render_shows_the_control_plane_reporter():
    assert "control:      none (stand-alone" in render(HEALTH)  # also an older agent's
    up = {
        "server": "https://ft.example",
        "breaker": "closed",
        "spooled": 0,
        "sent_batches": 12,
        "failures": 0,
        "last_error": None,
    }
    assert "control:      https://ft.example reachable, 0 report(s) spooled" in render(
        {**HEALTH, "control_plane": up}
    )
    down = {**up, "breaker": "open", "spooled": 42, "failures": 3, "last_error": "heartbeat: boom"}
    assert (
        "control:      https://ft.example UNREACHABLE (retrying; last error: heartbeat: boom), "
        "42 report(s) spooled"
    ) in render({**HEALTH, "control_plane": down})
