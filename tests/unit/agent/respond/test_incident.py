"""Incident figures: one-second peaks next to the short-window (burst) peak, the partial
first window left out, rules reported from their specs' fields, seq owned by the incident."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from ftagent.datapath import RuleSpec
from ftagent.detect.rates import Window
from ftagent.evidence.classifier import Classification
from ftagent.respond.incident import Incident, rule_figure
from tests.unit.agent.synth import window


def at(w: Window, i: int) -> Window:
    """`w` as the loop's i-th window (100 ms apart)."""
    return dataclasses.replace(w, end_ns=(i + 1) * 100_000_000)


def incident() -> Incident:
    return Incident(
        classification=Classification("udp_flood", "ipv4", (), {"group_share": {"udp": 0.97}}),
        started_at=1_700_000_000.0,
        interface="veth-t",
        baseline_pps=100.0,
        threshold_pps=1000.0,
        confirm_reason="burst",
        mitigation_mode="on",
    )


def test_peak_is_the_one_second_rate_and_the_burst_peak_is_kept_apart() -> None:
    """A flood sent in bursts (each second's packets in 0.2 s, as trafgen -b did): the
    windows read 450 kpps, the second carries 90 kpps. peak_pps is the second's rate."""
    inc = incident()
    burst, idle = window(udp=450_000, size=1000), window(udp=0.0)
    inc.observe(at(window(udp=100_000, size=1000), 0))  # partial first window
    for i in range(1, 31):
        inc.observe(at(burst if i % 10 in (1, 2) else idle, i))
    assert inc.peak_burst_pps == pytest.approx(450_000, rel=0.01)
    assert inc.peak_pps == pytest.approx(90_000, rel=0.01)
    assert inc.peak_bps == pytest.approx(90_000 * 8000, rel=0.01)
    f = inc.report([]).figures
    assert f.peak_pps == pytest.approx(90_000, rel=0.01)
    assert f.peak_burst_pps == pytest.approx(450_000, rel=0.01)


def test_the_partial_first_window_sets_no_one_second_rate() -> None:
    """The flood began late in the first window, which reads low; it is not a full
    window, so no one-second figure comes from it (the opening severity waits)."""
    inc = incident()
    inc.observe(at(window(udp=20_000), 0))
    assert not inc.has_full_window and inc.peak_pps == 0.0
    inc.observe(at(window(udp=200_000), 1))
    assert inc.has_full_window
    assert inc.peak_pps == pytest.approx(200_000) and inc.current_pps == pytest.approx(200_000)


def test_each_report_has_the_next_seq_and_percent_shares() -> None:
    inc = incident()
    first, second = inc.report([]), inc.report([], "agent_stopped")
    assert (first.figures.seq, second.figures.seq) == (1, 2)
    assert second.reason == "agent_stopped" and first.reason is None
    assert first.figures.protocols == {"tcp": 0.0, "udp": 97.0, "icmp": 0.0, "other": 0.0}


def test_mitigated_at_is_the_first_rule_installed() -> None:
    inc = incident()
    inc.record(10.0, "refused", "protected targets")
    inc.record(11.5, "rules_added", "x", ["signature proto=17"])
    inc.record(12.0, "widened", "y")
    assert inc.report([]).figures.mitigated_at == 11.5


def test_rule_figures_come_from_the_specs_fields() -> None:
    sig = RuleSpec(kind="signature", proto=6, tcp_flags=0x02, tcp_flags_mask=0x12, rate_pps=900)
    f = rule_figure(sig, 77.0, 12)
    assert (f.kind, f.action, f.ttl_sec, f.dropped_packets) == ("rate_limit", "rate_limit", 77, 12)
    assert (f.proto, f.tcp_flags, f.tcp_flags_mask, f.rate_pps) == (6, 0x02, 0x12, 900)
    assert f.match == sig.describe()
    src = rule_figure(RuleSpec(kind="src", network=ipaddress.ip_network("198.51.100.7/32")), 5, 0)
    assert (src.kind, src.action, src.network) == ("source", "drop", "198.51.100.7/32")
    amp = rule_figure(RuleSpec(kind="signature", proto=17, src_port=11211), 300.0, 0)
    assert (amp.kind, amp.src_port, amp.dst_port) == ("signature", 11211, None)
