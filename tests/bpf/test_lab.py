"""The namespace lab itself: unique names, addresses, no default route, real traffic,
removal (also after an exception)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lab.netns import NETNS_DIR, Lab, remove_stale
from tests.capability import require_root

pytestmark = pytest.mark.lab


@pytest.fixture(autouse=True)
def root() -> None:
    require_root()


def test_two_labs_coexist_with_unique_names() -> None:
    with Lab.create() as a, Lab.create() as b:
        names = {a.attacker_ns, a.victim_ns, b.attacker_ns, b.victim_ns}
        assert len(names) == 4 and all((NETNS_DIR / n).exists() for n in names)
        assert len({a.victim_if, b.victim_if, a.attacker_if, b.attacker_if}) == 4
        assert a.attacker_ns.startswith("attacker-") and a.victim_ns.startswith("victim-")
    assert not any((NETNS_DIR / n).exists() for n in names)


def test_addresses_links_and_no_default_route() -> None:
    with Lab.create() as lab:
        for ns, ifname, v4, v6, mac in (
            (lab.attacker_ns, lab.attacker_if, lab.attacker_v4, lab.attacker_v6,
             lab.attacker_mac),
            (lab.victim_ns, lab.victim_if, lab.victim_v4, lab.victim_v6, lab.victim_mac),
        ):
            with lab.ipr(ns) as ipr:
                names = {link.get_attr("IFLA_IFNAME") for link in ipr.get_links()}
                assert names == {"lo", ifname}
                idx = ipr.link_lookup(ifname=ifname)[0]
                link = ipr.get_links(idx)[0]
                assert link.get_attr("IFLA_OPERSTATE") in ("UP", "UNKNOWN", "LOWERLAYERDOWN")
                assert link.get_attr("IFLA_ADDRESS") == mac
                addrs = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=idx)}
                assert {v4, v6} <= addrs
                for family in (socket.AF_INET, socket.AF_INET6):
                    for route in ipr.get_routes(family=family, table=254):
                        assert route["dst_len"] != 0, f"default route in {ns}"


def test_udp_crosses_the_veth_v4_and_v6() -> None:
    with Lab.create() as lab:
        for family, dst, src in ((socket.AF_INET, lab.victim_v4, lab.attacker_v4),
                                 (socket.AF_INET6, lab.victim_v6, lab.attacker_v6)):
            with lab.inside(lab.victim_ns):
                rx = socket.socket(family, socket.SOCK_DGRAM)
            with lab.inside(lab.attacker_ns):
                tx = socket.socket(family, socket.SOCK_DGRAM)
            with rx, tx:
                rx.bind((dst, 0))
                rx.settimeout(5)
                tx.sendto(b"hello lab", (dst, rx.getsockname()[1]))
                data, peer = rx.recvfrom(100)
                assert data == b"hello lab" and peer[0] == src


def test_run_executes_inside_the_namespace() -> None:
    with Lab.create() as lab:
        r = lab.run(lab.victim_ns, ["cat", "/proc/net/dev"], capture_output=True, text=True,
                    check=True)
        assert lab.victim_if in r.stdout and lab.attacker_if not in r.stdout


def test_removed_after_an_exception() -> None:
    made: list[str] = []
    with pytest.raises(RuntimeError, match="boom"), Lab.create() as lab:
        made = [lab.attacker_ns, lab.victim_ns]
        raise RuntimeError("boom")
    assert made and not any((NETNS_DIR / n).exists() for n in made)


def test_remove_stale_only_touches_dead_owners() -> None:
    from pyroute2 import netns

    dead = "victim-999999999-1"  # no such pid
    netns.create(dead)
    try:
        with Lab.create() as live:
            removed = remove_stale()
            assert dead in removed
            assert Path(NETNS_DIR / live.victim_ns).exists()
    finally:
        if (NETNS_DIR / dead).exists():
            netns.remove(dead)
