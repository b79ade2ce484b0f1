"""Addresses the mitigator must never block: this node's own, and the control plane's."""

from __future__ import annotations

import ipaddress
import logging
import socket
from urllib.parse import urlsplit

from ftagent.datapath import IPNetwork

log = logging.getLogger("ftagent.netinfo")


def own_networks() -> list[IPNetwork]:
    """Every address configured on this network namespace's interfaces, as host networks."""
    from pyroute2 import IPRoute

    out: list[IPNetwork] = []
    with IPRoute() as ipr:
        for msg in ipr.get_addr():
            addr = msg.get_attr("IFA_ADDRESS") or msg.get_attr("IFA_LOCAL")
            if not addr:
                continue
            try:
                ip = ipaddress.ip_address(str(addr).split("%", 1)[0])
            except ValueError:
                continue
            net = ipaddress.ip_network(f"{ip}/{ip.max_prefixlen}")
            if net not in out:
                out.append(net)
    return out


def control_networks(server_url: str) -> list[IPNetwork]:
    """The control plane's addresses (host networks), resolved once at start.

    A name that does not resolve is logged and skipped: the agent must start anyway."""
    host = urlsplit(server_url).hostname
    if not host:
        return []
    try:
        ip = ipaddress.ip_address(host)
        return [ipaddress.ip_network(f"{ip}/{ip.max_prefixlen}")]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError as exc:
        log.warning("cannot resolve control plane %s (%s): not protected by address", host, exc)
        return []
    out: list[IPNetwork] = []
    for info in infos:
        ip = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        net = ipaddress.ip_network(f"{ip}/{ip.max_prefixlen}")
        if net not in out:
            out.append(net)
    return out
