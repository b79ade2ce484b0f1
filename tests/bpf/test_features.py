"""Helper probing and the fallback when a socket helper is missing (simulated for real:
the loader builds and attaches the program without the helpers)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

from ftagent.bpf.features import SOCKET_HELPERS, missing_socket_helpers
from ftagent.bpf.loader import LoadOptions, XdpDatapath
from ftagent.bpf.rule_spec import RuleError
from ftagent.datapath import RuleSpec
from lab.bpf_testrun import TEST_PIN_ROOT, XDP_DROP, test_run
from lab.netns import Lab
from tests.capability import require_root

pytestmark = [pytest.mark.kernel, pytest.mark.lab]


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_root()
    with Lab.create() as made:
        yield made


def test_this_kernel_has_every_socket_helper() -> None:
    require_root()
    assert missing_socket_helpers() == ()
    assert missing_socket_helpers(["bpf_sk_lookup_udp"]) == ("bpf_sk_lookup_udp",)


def test_unknown_helper_name_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="bpf_sk_lookup_sctp"):
        missing_socket_helpers(["bpf_sk_lookup_sctp"])


def test_missing_helper_falls_back_to_plain_rules(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ftagent.bpf.loader")
    with lab.inside(lab.victim_ns):
        dp = XdpDatapath.open(
            lab.victim_if,
            LoadOptions(pin_root=TEST_PIN_ROOT, pretend_missing_helpers=("bpf_skc_lookup_tcp",)),
        )
    try:
        info = dp.attach_info
        assert info.missing_helpers == ("bpf_skc_lookup_tcp",)
        assert not info.socket_guard
        assert info.extra["socket_guard"] == "off: kernel lacks bpf_skc_lookup_tcp"
        assert any(
            "bpf_skc_lookup_tcp" in r.getMessage() and r.levelno == logging.WARNING
            for r in caplog.records
        )
        spare = RuleSpec("signature", proto=6, tcp_flags=0x10, tcp_flags_mask=0x17, spare="sockets")
        with pytest.raises(RuleError, match="socket-lookup helpers"):
            dp.add_rule(spare, ttl_s=30)
        assert dp.list_rules() == []
        # Today's rules still work in the program built without the helpers.
        plain = RuleSpec("signature", proto=6, tcp_flags=0x10, tcp_flags_mask=0x17)
        dp.add_rule(plain, ttl_s=30)
        fd = dp.prog_fd
        frame = bytes(Ether() / IP(src="192.0.2.1", dst=lab.victim_v4) / TCP(flags="A"))
        with lab.inside(lab.victim_ns):
            assert test_run(fd, frame).retval == XDP_DROP
        assert dp.list_rules()[0].dropped_packets == 1
    finally:
        with lab.inside(lab.victim_ns):
            dp.close()


def test_full_kernel_reports_socket_guard_on(lab: Lab) -> None:
    with lab.inside(lab.victim_ns):
        dp = XdpDatapath.open(lab.victim_if, LoadOptions(pin_root=TEST_PIN_ROOT))
    try:
        assert dp.attach_info.missing_helpers == () and dp.attach_info.socket_guard
        assert dp.attach_info.extra["socket_guard"] == "on"
        assert set(SOCKET_HELPERS) >= {"bpf_sk_release", "bpf_sk_lookup_udp"}
    finally:
        with lab.inside(lab.victim_ns):
            dp.close()
