"""The namespace lab itself: unique names, addresses, no default route, real traffic,
removal (also after an exception), and floods paced at the rate they claim."""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest

from lab.netns import NETNS_DIR, Lab, remove_stale
from lab.trafgen import run_flood, start_flood, stop_flood
from tests.capability import require, require_root

pytestmark = [pytest.mark.lab, pytest.mark.paced]


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
            (lab.attacker_ns, lab.attacker_if, lab.attacker_v4, lab.attacker_v6, lab.attacker_mac),
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
        for family, dst, src in (
            (socket.AF_INET, lab.victim_v4, lab.attacker_v4),
            (socket.AF_INET6, lab.victim_v6, lab.attacker_v6),
        ):
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
        r = lab.run(
            lab.victim_ns, ["cat", "/proc/net/dev"], capture_output=True, text=True, check=True
        )
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


def _links(lab: Lab, ns: str) -> set[str]:
    with lab.ipr(ns) as ipr:
        return {str(link.get_attr("IFLA_IFNAME")) for link in ipr.get_links()}


def test_paced_flood_reaches_the_victim_steadily() -> None:
    # trafgen's own -b pacing put ~5x the mean into its busiest 100 ms window; the tbf
    # pacer must not let any window carry more than 2x the mean, nor the rate much over
    # what was asked (the qdisc caps it, whatever the load on the machine).
    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    with Lab.create() as lab:
        res = run_flood(lab, "udp_flood", packets=30_000, pps=10_000, timeout_s=30)
        assert res.sent == 30_000 and not res.timed_out
        assert res.requested_pps == 10_000 and res.achieved is not None
        rate = res.achieved
        assert rate.packets >= 30_000  # every packet arrived (plus any neighbour discovery)
        assert len(rate.windows_pps) >= 10
        assert rate.max_window_pps <= 2 * rate.mean_pps, rate.windows_pps
        assert rate.mean_pps <= 10_000 * 1.1, rate.windows_pps
        assert _links(lab, lab.attacker_ns) == {"lo", lab.attacker_if}  # pacer removed


def test_concurrent_paced_floods_each_keep_their_rate() -> None:
    # One pacing link per flood: two floods of 4,000 pps together stay near 8,000 pps,
    # whatever their frame sizes (a single qdisc would pace their bytes, not each flood).
    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    with Lab.create() as lab:
        big = start_flood(lab, "memcached_amplification", packets=8_000, pps=4_000)
        small = start_flood(lab, "syn_flood", packets=8_000, pps=4_000)
        try:
            assert big.wait(30) == 0 and small.wait(30) == 0
        finally:
            big_rate, small_rate = stop_flood(big), stop_flood(small)
        assert big_rate is not None and small_rate is not None
        assert big_rate.packets >= 16_000  # the victim saw both floods whole
        assert big_rate.max_window_pps <= 8_000 * 1.2, big_rate.windows_pps
        assert big_rate.max_window_pps <= 2 * big_rate.mean_pps, big_rate.windows_pps
        assert _links(lab, lab.attacker_ns) == {"lo", lab.attacker_if}


def test_stopping_a_paced_flood_early_removes_its_pacer() -> None:
    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    with Lab.create() as lab:
        flood = start_flood(lab, "icmp_flood", packets=1_000_000, pps=2_000)
        assert len(_links(lab, lab.attacker_ns)) == 3  # lo, the veth, the pacing macvlan
        rate = stop_flood(flood)
        assert flood.returncode is not None and rate is not None
        assert _links(lab, lab.attacker_ns) == {"lo", lab.attacker_if}


def test_stopping_a_flood_after_its_lab_is_gone_creates_nothing() -> None:
    # pyroute2 creates a namespace it is asked to open unless told otherwise: removing the
    # pacer of a flood whose lab is already destroyed must not bring the namespace back.
    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    lab = Lab.create()
    flood = start_flood(lab, "udp_flood", packets=1_000_000, pps=1_000)
    lab.destroy()
    stop_flood(flood)
    assert flood.returncode is not None
    assert not (NETNS_DIR / lab.attacker_ns).exists()
    assert not (NETNS_DIR / lab.victim_ns).exists()
