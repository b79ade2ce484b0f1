"""1,000,000 random, truncated and mutated frames through BPF_PROG_TEST_RUN: no kernel
error, no action but PASS/DROP, and every frame counted exactly once (total, bytes, one
size bucket, one verdict, one L3 class).

Each frame is its own test run (one syscall, ~10 µs here); frames are slices of one
random blob and of mutated real frames, so generating a million costs little.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterator

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6EchoRequest,
    IPv6,
    IPv6ExtHdrDestOpt,
    IPv6ExtHdrFragment,
    IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import ARP, GRE, Dot1AD, Dot1Q, Ether
from scapy.packet import Raw

from ftagent.datapath import RuleSpec

from .conftest import Prog
from .fuzzing import run_counted_once

pytestmark = [pytest.mark.kernel]

FRAMES = 1_000_000
MIN_LEN = 14  # the kernel refuses shorter XDP test input
MAX_LEN = 3000  # under the kernel's XDP test-run limit (a page minus head/tailroom)
BLOB = 1 << 22

TEMPLATES = [
    bytes(p)
    for p in (
        Ether() / IP(src="10.0.0.1") / UDP(sport=53) / Raw(b"a" * 40),
        Ether() / IP(src="192.0.2.7") / UDP(sport=11211) / Raw(b"m" * 900),
        Ether() / IP(options=[IPOption_RR()]) / TCP(flags="S", options=[("MSS", 1460)]),
        Ether() / IP(src="198.51.100.1", flags="MF", frag=0) / UDP() / Raw(b"f" * 100),
        Ether() / IP(src="198.51.100.1", frag=185) / Raw(b"g" * 100),
        Ether() / Dot1Q() / IP(flags="MF") / UDP() / Raw(b"b" * 30),
        Ether() / Dot1AD() / Dot1Q() / IPv6() / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrFragment() / TCP(flags="A"),
        Ether() / Dot1AD() / Dot1Q() / Dot1Q() / IP() / TCP(),
        Ether() / IPv6(src="2001:db8::1") / UDP(sport=1900) / Raw(b"c" * 64),
        Ether() / IPv6(src="fe80::1") / ICMPv6EchoRequest(),
        Ether() / IP(src="10.0.0.2") / ICMP(),
        Ether() / IP() / GRE() / IP() / UDP(),
        Ether() / ARP(),
    )
]


def frames(rng: random.Random, n: int) -> Iterator[bytes]:
    blob = rng.randbytes(BLOB)
    for i in range(n):
        kind = i % 4
        if kind == 0:  # random bytes
            length = rng.randint(MIN_LEN, MAX_LEN)
            start = rng.randrange(BLOB - length)
            yield blob[start : start + length]
        elif kind == 1:  # random bytes behind a real Ethernet+IP start (get past L2)
            head = rng.choice(TEMPLATES)[: rng.randint(MIN_LEN, 40)]
            length = rng.randint(0, 200)
            start = rng.randrange(BLOB - length)
            yield head + blob[start : start + length]
        else:  # a real frame cut short, and (kind 3) a few bytes flipped
            data = bytearray(rng.choice(TEMPLATES))
            if kind == 3:
                for _ in range(rng.randint(1, 6)):
                    data[rng.randrange(len(data))] = rng.randrange(256)
            yield bytes(data[: rng.randint(MIN_LEN, len(data))])


def test_million_frames_no_error_every_frame_counted_once(prog: Prog) -> None:
    # Rules so the drop paths run too (fuzzed sources hit the prefix rules).
    prog.maps.add_rule(RuleSpec("prefix", ipaddress.ip_network("0.0.0.0/1")), 600)
    prog.maps.add_rule(RuleSpec("prefix", ipaddress.ip_network("2000::/3")), 600)
    prog.maps.add_rule(RuleSpec("src", ipaddress.ip_network("192.0.2.7/32")), 600)
    prog.maps.add_rule(RuleSpec("signature", proto=17, src_port=53, rate_pps=1000), 600)
    prog.maps.add_rule(RuleSpec("signature", proto=6, tcp_flags=0x02, tcp_flags_mask=0x12), 600)
    prog.maps.set_allowlist([ipaddress.ip_network("10.0.0.0/8")])
    prog.maps.set_sample_rate(10_000)
    prog.maps.set_source_insert_rate(64)
    rng = random.Random(1_000_000)
    verdicts = run_counted_once(prog, frames(rng, FRAMES), FRAMES)
    # Every verdict path ran.
    for verdict in ("malformed", "passed", "allowlisted", "drop_src", "drop_prefix",
                    "drop_signature"):  # fmt: skip
        assert verdicts[verdict] > 0, (verdict, verdicts)
    assert 70 <= len(prog.maps.poll_samples(1 << 20)) <= 130
    print(f"{FRAMES} frames; verdicts {verdicts}")
