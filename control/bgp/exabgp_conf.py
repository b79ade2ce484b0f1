"""ExaBGP's configuration file and environment, generated from our BgpConfig."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path

from control.bgp.config import AddressFamily, BgpConfig

RELAY = Path(__file__).with_name("relay.py")
PROCESS = "ftcontrol"

_FAMILY_WORDS: dict[AddressFamily, str] = {
    "ipv4_unicast": "ipv4 unicast",
    "ipv6_unicast": "ipv6 unicast",
    "ipv4_flowspec": "ipv4 flow",
    "ipv6_flowspec": "ipv6 flow",
}


def exabgp_config(config: BgpConfig, socket_path: Path) -> str:
    """One neighbor block per peer; all of them fed by one API process (the relay)."""
    lines = [
        f"process {PROCESS} {{",
        f"    run {sys.executable} {RELAY} {socket_path};",
        "    encoder json;",
        "}",
        "",
    ]
    for peer in config.peers:
        families = " ".join(f"{_FAMILY_WORDS[f]};" for f in peer.families)
        lines += [
            f"neighbor {peer.address} {{",
            f"    router-id {config.router_id};",
            f"    local-address {config.local_address(peer)};",
            f"    local-as {config.local_as};",
            f"    peer-as {peer.peer_as};",
            f"    connect {peer.port};",
            "    group-updates false;",
            f"    family {{ {families} }}",
            f"    api {{ processes [ {PROCESS} ]; neighbor-changes; }}",
            "}",
            "",
        ]
    return "\n".join(lines)


def exabgp_environment(config: BgpConfig) -> dict[str, str]:
    """ExaBGP settings (environment variables override its ini file)."""
    return {
        "exabgp_daemon_user": getpass.getuser(),  # no privilege drop: the relay needs our socket
        "exabgp_daemon_daemonize": "false",
        "exabgp_log_destination": "stdout",
        "exabgp_log_level": "INFO",
        "exabgp_api_ack": "true",  # every command answered "done" or "error"
        "exabgp_api_respawn": "false",
        "exabgp_api_terminate": "true",  # the relay gone (ftcontrol gone): ExaBGP exits
        "exabgp_api_cli": "false",  # no named pipes: ftcontrol is the only driver
        "exabgp_tcp_bind": config.listen.address,
        "exabgp_tcp_port": str(config.listen.port),
    }
