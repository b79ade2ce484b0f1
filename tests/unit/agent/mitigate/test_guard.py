"""The socket guard as the planner gets it from the data path's helper probe: on, or off
with the missing helpers named (and said in the log), so the planner falls back."""

from __future__ import annotations

import logging

import pytest

from ftagent.datapath import AttachInfo
from ftagent.mitigate.guard import guard_of, udp_port_bound


def info(missing: tuple[str, ...]) -> AttachInfo:
    return AttachInfo("eth0", 2, "native", 7, missing_helpers=missing)


def test_a_full_kernel_gives_the_guard_and_asks_the_socket_tables() -> None:
    guard = guard_of(info(()))
    assert guard.available and guard.reason == "on"
    assert guard.udp_bound is udp_port_bound


def test_missing_helpers_turn_it_off_naming_them_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="ftagent.guard"):
        guard = guard_of(info(("bpf_sk_lookup_udp", "bpf_sk_release")))
    assert not guard.available
    assert guard.reason == "kernel lacks bpf_sk_lookup_udp, bpf_sk_release"
    assert not guard.udp_bound(53)  # never asked: plain rules have no port question
    (record,) = caplog.records
    assert "socket guard off (kernel lacks bpf_sk_lookup_udp" in record.getMessage()
    assert "plain rules" in record.getMessage()
