"""Known sources from the UDP the node sends: the TC egress program (tc_egress_learn) on
the XDP interface marks the peer of a real UDP exchange with a bound (not connected)
service socket as known; nothing is learned while a known-sources rule is in force; a
second attach replaces the filter instead of adding one; close() removes it."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from ftagent.bpf.egress import EgressError, attach_egress
from ftagent.bpf.loader import LoadOptions, Settings, XdpDatapath
from ftagent.bpf.xdp import ifindex_of
from ftagent.datapath import RuleSpec
from lab.bpf_testrun import TEST_PIN_ROOT, egress_filter_count
from lab.netns import Lab
from tests.capability import require_root

pytestmark = [pytest.mark.kernel, pytest.mark.lab]

SERVICE = RuleSpec("signature", proto=17, dst_port=9000, rate_pps=10, spare_known=True)


@pytest.fixture(scope="module")
def attached() -> Iterator[tuple[Lab, XdpDatapath]]:
    require_root()
    with Lab.create() as lab:
        with lab.inside(lab.victim_ns):
            # XDP-side learning off: only the egress program can learn here.
            dp = XdpDatapath.open(
                lab.victim_if, LoadOptions(pin_root=TEST_PIN_ROOT),
                Settings(learn_one_in=0, egress_learn_one_in=1),
            )  # fmt: skip
        try:
            yield lab, dp
        finally:
            with lab.inside(lab.victim_ns):
                dp.close()


def exchange(lab: Lab, v6: bool = False) -> str:
    """One request from the attacker namespace to a bound UDP service on the victim, and
    its answer (sendto from the unconnected server socket). Returns the client address."""
    family = socket.AF_INET6 if v6 else socket.AF_INET
    victim = lab.victim_v6 if v6 else lab.victim_v4
    with lab.inside(lab.victim_ns):
        srv = socket.socket(family, socket.SOCK_DGRAM)
    with lab.inside(lab.attacker_ns):
        cli = socket.socket(family, socket.SOCK_DGRAM)
    with srv, cli:
        srv.bind((victim, 0))
        srv.settimeout(5)
        cli.settimeout(5)
        cli.sendto(b"ping", (victim, srv.getsockname()[1]))
        data, peer = srv.recvfrom(64)
        srv.sendto(b"pong:" + data, peer)
        assert cli.recvfrom(64)[0] == b"pong:ping"
    return str(peer[0])


def test_a_udp_exchange_with_a_bound_service_makes_the_peer_known(
    attached: tuple[Lab, XdpDatapath],
) -> None:
    lab, dp = attached
    assert dp.attach_info.udp_egress_learning and dp.attach_info.udp_egress_error is None
    dp.maps.clear_known_sources()
    assert exchange(lab) == lab.attacker_v4
    assert exchange(lab, v6=True) == lab.attacker_v6
    assert sorted(map(str, dp.maps.known_sources())) == [lab.attacker_v4, lab.attacker_v6]


def test_no_learning_while_a_known_sources_rule_is_in_force(
    attached: tuple[Lab, XdpDatapath],
) -> None:
    lab, dp = attached
    dp.maps.clear_known_sources()
    rule = dp.add_rule(SERVICE, ttl_s=60)
    try:
        assert dp.maps.learning_paused_until_ns() == rule.expires_ns
        exchange(lab)
        exchange(lab, v6=True)
        assert dp.maps.known_sources() == []
    finally:
        assert dp.remove_rule(SERVICE)
    assert dp.maps.learning_paused_until_ns() == 0
    exchange(lab)
    assert [str(a) for a in dp.maps.known_sources()] == [lab.attacker_v4]


def test_attaching_again_replaces_the_filter(attached: tuple[Lab, XdpDatapath]) -> None:
    # what a restart after a killed agent does: the leftover filter is replaced, not doubled
    lab, dp = attached
    with lab.inside(lab.victim_ns):
        ifindex = ifindex_of(lab.victim_if)
        assert egress_filter_count(ifindex) == 1
        attach_egress(dp.egress_prog_fd, ifindex)
        assert egress_filter_count(ifindex) == 1


def test_a_refused_attach_says_why(attached: tuple[Lab, XdpDatapath]) -> None:
    _, dp = attached
    with pytest.raises(EgressError, match="cannot attach the TC egress program"):
        attach_egress(dp.egress_prog_fd, 0x7FFFFFF0)  # no such interface


def test_close_removes_the_egress_program(attached: tuple[Lab, XdpDatapath]) -> None:
    # last in the module: closes the module's data path (close() is idempotent)
    lab, dp = attached
    with lab.inside(lab.victim_ns):
        ifindex = ifindex_of(lab.victim_if)
        dp.close()
        assert egress_filter_count(ifindex) == 0
