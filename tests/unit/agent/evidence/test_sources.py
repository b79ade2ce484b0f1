"""An incident's top sources carry bits per second as well as packets (bps was always 0.0):
from the kernel map's rates, from its first read's shares, or from the samples' shares."""

from __future__ import annotations

import ipaddress
from collections import Counter

from ftagent.datapath import IPAddress
from ftagent.evidence.sources import SourceRate, top_source_figures


def test_kernel_rates_are_reported_as_read() -> None:
    kernel = [SourceRate("198.51.100.7", 900, 900_000, pps=450.0, bps=3.6e6)]
    (f,) = top_source_figures(kernel, Counter(), 1000.0, 8e6, 20)
    assert (f.ip, f.pps, f.bps) == ("198.51.100.7", 450.0, 3.6e6)


def test_a_first_kernel_read_shares_the_current_rate_by_packets_and_bytes() -> None:
    kernel = [
        SourceRate("198.51.100.7", 300, 450_000),  # 75 % of packets, 90 % of bytes
        SourceRate("198.51.100.8", 100, 50_000),
    ]
    a, b = top_source_figures(kernel, Counter(), 1000.0, 8e6, 20)
    assert (a.pps, a.bps) == (750.0, 7.2e6)
    assert (b.pps, b.bps) == (250.0, 8e5)


def test_sampled_sources_carry_their_share_of_bits() -> None:
    addr: IPAddress = ipaddress.ip_address("203.0.113.5")
    other: IPAddress = ipaddress.ip_address("203.0.113.6")
    figs = top_source_figures([], Counter({addr: 3, other: 1}), 4000.0, 3.2e7, 20)
    assert [(f.ip, f.pps, f.bps) for f in figs] == [
        ("203.0.113.5", 3000.0, 2.4e7),
        ("203.0.113.6", 1000.0, 8e6),
    ]
    assert top_source_figures([], Counter(), 4000.0, 3.2e7, 20) == []
