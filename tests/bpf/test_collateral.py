"""The collateral lab: four namespaces joined by a bridge, real services on the victim,
a resolver in the client namespace, legitimate traffic that succeeds without a flood,
and paced floods that reach the victim's one interface (and nobody else)."""

from __future__ import annotations

import shutil
import socket

import pytest

from lab.collateral import BRIDGE, CollateralLab
from lab.legit import LegitTraffic
from lab.netns import NETNS_DIR, enter_netns
from lab.rxrate import rx_packets
from lab.services import DOWNLOAD_BYTES_S, LabServices
from lab.trafgen import run_flood
from tests.capability import require, require_root

pytestmark = pytest.mark.lab


@pytest.fixture(autouse=True)
def root() -> None:
    require_root()


def _links(lab: CollateralLab, ns: str) -> dict[str, dict[str, object]]:
    with lab.ipr(ns) as ipr:
        return {
            str(link.get_attr("IFLA_IFNAME")): {
                "index": link["index"],
                "master": link.get_attr("IFLA_MASTER"),
            }
            for link in ipr.get_links()
        }


def test_four_namespaces_one_victim_interface_and_no_default_route() -> None:
    with CollateralLab.create() as a, CollateralLab.create() as b:
        names = {a.bridge_ns, b.bridge_ns, *(h.ns for lab in (a, b) for h in lab.hosts.values())}
        assert len(names) == 8 and all((NETNS_DIR / n).exists() for n in names)
        assert {h.role for h in a.hosts.values()} == {"attacker", "victim", "client"}
        for host in a.hosts.values():
            assert set(_links(a, host.ns)) == {"lo", host.ifname}  # exactly one interface
            with a.ipr(host.ns) as ipr:
                idx = ipr.link_lookup(ifname=host.ifname)[0]
                addrs = {x.get_attr("IFA_ADDRESS") for x in ipr.get_addr(index=idx)}
                assert {host.v4, host.v6} <= addrs
        bridge = _links(a, a.bridge_ns)
        ports = {name for name, link in bridge.items()
                 if link["master"] == bridge[BRIDGE]["index"]}  # fmt: skip
        assert ports == {h.port for h in a.hosts.values()}
        for ns in (a.bridge_ns, *(h.ns for h in a.hosts.values())):
            with a.ipr(ns) as ipr:
                for family in (socket.AF_INET, socket.AF_INET6):
                    for route in ipr.get_routes(family=family, table=254):
                        assert route["dst_len"] != 0, f"default route in {ns}"
        assert a.victim_if == a.victim.ifname and a.attacker_mac == a.attacker.mac
    assert not any((NETNS_DIR / n).exists() for n in names)


def test_removed_after_an_exception() -> None:
    made: list[str] = []
    with pytest.raises(RuntimeError, match="boom"), CollateralLab.create() as lab:
        made = [lab.bridge_ns, *(h.ns for h in lab.hosts.values())]
        raise RuntimeError("boom")
    assert len(made) == 4 and not any((NETNS_DIR / n).exists() for n in made)


@pytest.mark.parametrize("ip_version", [4, 6])
def test_legit_traffic_all_succeeds_without_a_flood(ip_version: int) -> None:
    with (
        CollateralLab.create() as lab,
        LabServices.start(lab),
        LegitTraffic.start(lab, ip_version=ip_version) as legit,
    ):
        result = legit.measure(3.0)
    assert result.ip_version == ip_version
    assert result.tcp_connect.attempts == 60 and result.udp_request.attempts == 150
    assert result.dns_lookup.attempts == 30 and result.ping.attempts == 30
    for name, cls in result.classes().items():
        assert cls.success_rate >= 0.95, (name, cls)
    assert result.download_bytes_s > 0.5 * DOWNLOAD_BYTES_S
    assert result.download_longest_stall_s < 1.0


def test_legit_traffic_fails_when_the_services_are_gone() -> None:
    # The generator measures, it does not assume: with the services stopped, the TCP,
    # UDP and DNS classes fail (ping still succeeds: the victim's kernel answers it).
    with CollateralLab.create() as lab:
        services = LabServices.start(lab)
        with LegitTraffic.start(lab) as legit:
            services.close()
            result = legit.measure(1.0)
    assert result.tcp_connect.succeeded == 0 and result.tcp_connect.attempts == 20
    assert result.udp_request.succeeded == 0 and result.dns_lookup.succeeded == 0
    assert result.ping.success_rate >= 0.9


def test_paced_flood_reaches_the_victim_only() -> None:
    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    with CollateralLab.create() as lab:
        with enter_netns(lab.client_ns):
            client_before = rx_packets(lab.client.ifname)
        res = run_flood(lab, "udp_flood", packets=20_000, pps=10_000, timeout_s=30)
        with enter_netns(lab.client_ns):
            client_after = rx_packets(lab.client.ifname)
    assert res.sent == 20_000 and res.achieved is not None
    assert res.achieved.packets >= 20_000
    assert res.achieved.max_window_pps <= 2 * res.achieved.mean_pps, res.achieved.windows_pps
    assert res.achieved.mean_pps <= 10_000 * 1.1
    assert client_after - client_before < 100  # at most neighbour discovery, never the flood
