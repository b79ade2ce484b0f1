"""Fuzz: 100,000 random and truncated/mutated frames through BPF_PROG_TEST_RUN. No kernel
error, every frame counted exactly once (total, one size bucket, one verdict)."""

from __future__ import annotations

import ipaddress
import random

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6PacketTooBig,
    IPv6,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
    IPv6ExtHdrRouting,
)
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from ftagent.datapath import RuleSpec

from .conftest import Prog
from .fuzzing import run_counted_once

pytestmark = [pytest.mark.kernel]

FRAMES = 100_000
MAX_LEN = 3000  # under the kernel's XDP test-run limit (a page minus head/tailroom)

TEMPLATES = [
    bytes(p)
    for p in (
        Ether() / IP(src="10.0.0.1") / UDP(sport=53) / Raw(b"a" * 40),
        Ether() / IP(options=[IPOption_RR()]) / TCP(flags="S"),
        Ether() / Dot1Q() / IP(flags="MF") / UDP() / Raw(b"b" * 30),
        Ether() / Dot1AD() / Dot1Q() / IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrRouting()
        / IPv6ExtHdrFragment() / TCP(),
        Ether() / IPv6(src="2001:db8::1") / UDP(sport=11211) / Raw(b"c" * 64),
        Ether() / IP(src="10.0.0.2") / ICMP(),
        Ether() / IP(src="10.0.0.3") / ICMP(type=3, code=4) / IP() / UDP(),
        Ether() / IPv6() / IPv6ExtHdrFragment(m=1) / ICMPv6PacketTooBig() / IPv6() / TCP(),
    )
]


def frames(rng: random.Random, n: int):
    for i in range(n):
        kind = i % 3
        if kind == 0:  # pure random bytes
            yield rng.randbytes(rng.randint(14, MAX_LEN))
        else:  # a real frame, cut short and with a few bytes flipped
            data = bytearray(rng.choice(TEMPLATES))
            if kind == 2:
                for _ in range(rng.randint(1, 6)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            cut = rng.randint(14, len(data))
            yield bytes(data[:cut])


def test_fuzz_every_frame_counted_once(prog: Prog) -> None:
    # Some rules so that drop paths run too (fuzzed sources hit the prefix rules).
    prog.maps.add_rule(RuleSpec("prefix", ipaddress.ip_network("0.0.0.0/1")), 60)
    prog.maps.add_rule(RuleSpec("prefix", ipaddress.ip_network("2000::/3")), 60)
    prog.maps.add_rule(RuleSpec("signature", proto=17, src_port=53, rate_pps=100), 60)
    # Socket-aware rules: every fuzzed TCP/UDP frame that reaches them is looked up.
    prog.maps.add_rule(RuleSpec("signature", proto=6, spare="sockets"), 60)
    prog.maps.add_rule(RuleSpec("signature", proto=17, spare="connected", rate_pps=1000), 60)
    prog.maps.add_rule(RuleSpec("signature", proto=1, spare="sockets"), 60)
    prog.maps.add_rule(RuleSpec("signature", proto=58, spare="sockets", fragments=True), 60)
    prog.maps.set_allowlist([ipaddress.ip_network("10.0.0.0/8")])
    prog.maps.set_sample_rate(1000)
    prog.maps.set_source_insert_rate(16)
    rng = random.Random(20261127)
    verdicts = run_counted_once(prog, frames(rng, FRAMES), FRAMES)
    # The mix exercised every verdict path but exact-source rules (none installed).
    assert verdicts["malformed"] > 0 and verdicts["drop_prefix"] > 0
    assert verdicts["allowlisted"] > 0 and verdicts["passed"] > 0
    samples = prog.maps.poll_samples(1 << 20)
    assert 90 <= len(samples) <= 110


def test_repeat_counts_every_run(prog: Prog) -> None:
    # The batched form: one frame, many runs in one syscall, each counted.
    rng = random.Random(7)
    for _ in range(20):
        data = rng.randbytes(rng.randint(14, 200))
        _, d = prog.run(data, repeat=5000)
        assert d.packets["total"] == 5000
        assert sum(d.verdicts.values()) == 5000
