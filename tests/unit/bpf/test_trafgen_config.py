"""trafgen configurations for every lab profile, rendered by trafgen itself into a pcap
(no device, no root) and decoded with scapy."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from scapy.layers.inet import ICMP, IP, TCP, UDP
from scapy.layers.inet6 import ICMPv6EchoRequest, IPv6, IPv6ExtHdrFragment
from scapy.layers.l2 import Ether
from scapy.utils import rdpcap

from lab.services import UDP_SERVICE_PORT
from lab.trafgen import (
    AMPLIFICATION_SPORTS,
    IPV6_PROFILES,
    PROFILES,
    Endpoints,
    TrafgenError,
    config_text,
    frame_bytes,
    paced_by_qdisc,
    run_flood,
    start_flood,
    trafgen_argv,
)
from tests.capability import require

EP = Endpoints(
    "02:00:00:00:00:01", "02:00:00:00:00:02", "10.77.0.1", "10.77.0.2", "fd77::1", "fd77::2"
)


def render(tmp_path: Path, profile: str, n: int = 24, spoof: bool | None = None) -> list[Any]:
    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    cfg = tmp_path / f"{profile}.cfg"
    cfg.write_text(config_text(profile, EP, spoof=spoof))
    out = tmp_path / f"{profile}.pcap"
    subprocess.run(
        ["trafgen", "-i", str(cfg), "-o", str(out), "-n", str(n), "-P", "1"],
        check=True,
        capture_output=True,
        timeout=30,
    )
    pkts = rdpcap(str(out))
    assert len(pkts) == n
    for p in pkts:
        assert p[Ether].dst == EP.dst_mac and p[Ether].src == EP.src_mac
    return list(pkts)


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_every_profile_renders_frames_for_the_victim(tmp_path: Path, profile: str) -> None:
    pkts = render(tmp_path, profile)
    size = PROFILES[profile].frame_bytes
    if profile != "benign":
        assert all(abs(len(p) - size) <= 8 for p in pkts), {len(p) for p in pkts}


def test_amplification_source_ports_and_sizes(tmp_path: Path) -> None:
    for profile, port in (
        ("memcached_amplification", 11211),
        ("dns_amplification", 53),
        ("ntp_amplification", 123),
        ("ssdp_amplification", 1900),
        ("cldap_amplification", 389),
        ("chargen_amplification", 19),
    ):
        pkts = render(tmp_path, profile)
        assert {p[UDP].sport for p in pkts} == {port}
        assert all(p[IP].dst == EP.dst_v4 for p in pkts)
    assert all(len(p) == 1400 for p in render(tmp_path, "memcached_amplification"))


def test_syn_and_ack_floods_spoof_sources(tmp_path: Path) -> None:
    syn = render(tmp_path, "syn_flood", n=50)
    assert all(p[TCP].flags == "S" for p in syn)
    assert len({p[IP].src for p in syn}) > 40  # random sources
    ack = render(tmp_path, "ack_flood")
    assert all(p[TCP].flags == "A" for p in ack)
    own = render(tmp_path, "syn_flood", spoof=False)
    assert {p[IP].src for p in own} == {EP.src_v4}


def test_icmp_ipv6_fragment_and_benign(tmp_path: Path) -> None:
    assert all(p[ICMP].type == 8 for p in render(tmp_path, "icmp_flood"))
    v6 = render(tmp_path, "udp6_flood")
    assert all(p[IPv6].dst == EP.dst_v6 and p.haslayer(UDP) for p in v6)
    frags = render(tmp_path, "fragment_flood")
    assert all(p[IP].frag > 0 and p[IP].flags.MF and p[IP].proto == 17 for p in frags)
    benign = render(tmp_path, "benign", n=30)
    assert {p[IP].src for p in benign} == {EP.src_v4}
    assert {p[UDP].dport for p in benign if p.haslayer(UDP)} == {53, 8080}


def test_floods_must_be_bounded() -> None:
    with pytest.raises(TrafgenError, match="positive packet count"):
        trafgen_argv("x.cfg", "veth0", packets=0, pps=None, profile="udp_flood")
    argv = trafgen_argv("x.cfg", "veth0", packets=10, pps=5000, profile="udp_flood")
    assert argv[argv.index("-n") + 1] == "10"
    gap = trafgen_argv("x.cfg", "veth0", packets=10, pps=100, profile="benign")
    assert gap[gap.index("-t") + 1] == "10000us"
    with pytest.raises(TrafgenError, match="unknown profile"):
        config_text("nope", EP)


def test_paced_floods_go_through_the_qdisc_without_trafgen_pacing() -> None:
    # The tbf on the flood's macvlan sets the pace: trafgen sends without gaps (-t 0)
    # through the qdisc path (-q), never with its bursty -b.
    argv = trafgen_argv("x.cfg", "ftpace1", packets=10, pps=5000, profile="syn_flood")
    assert argv[argv.index("-o") + 1] == "ftpace1"
    assert "-q" in argv and argv[argv.index("-t") + 1] == "0"
    assert "-b" not in argv and not any(a.endswith("pps") for a in argv)
    assert paced_by_qdisc("syn_flood", 5000) and not paced_by_qdisc("benign", 200)
    assert not paced_by_qdisc("udp_flood", None)


def test_unpaced_floods_use_the_tx_ring() -> None:
    argv = trafgen_argv("x.cfg", "veth0", packets=10, pps=None, profile="udp_flood")
    assert not {"-q", "-t", "-b"} & set(argv)


def test_rates_must_be_positive() -> None:
    with pytest.raises(TrafgenError, match="pps must be positive"):
        trafgen_argv("x.cfg", "veth0", packets=10, pps=0, profile="udp_flood")


def test_rst_and_udp_service_floods(tmp_path: Path) -> None:
    rst = render(tmp_path, "rst_flood", n=50)
    assert all(p[TCP].flags == "R" and p[TCP].dport == 443 for p in rst)
    assert len({p[IP].src for p in rst}) > 40
    svc = render(tmp_path, "udp_service_flood", n=50)
    assert {p[UDP].dport for p in svc} == {UDP_SERVICE_PORT}
    assert len({p[IP].src for p in svc}) > 40


def test_bad_bounds_are_refused_before_anything_is_made() -> None:
    # run_flood/start_flood check before they make a pacing link or start trafgen: an
    # object without a single lab attribute is never touched.
    for packets, pps, match in ((0, 100, "positive packet count"), (10, 0, "pps must be")):
        with pytest.raises(TrafgenError, match=match):
            run_flood(object(), "udp_flood", packets=packets, pps=pps)  # type: ignore[arg-type]
        with pytest.raises(TrafgenError, match=match):
            start_flood(object(), "udp_flood", packets=packets, pps=pps)  # type: ignore[arg-type]


def render_v6(tmp_path: Path, profile: str, n: int = 24) -> list[Any]:
    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    cfg = tmp_path / f"{profile}-v6.cfg"
    cfg.write_text(config_text(profile, EP, ip_version=6))
    out = tmp_path / f"{profile}-v6.pcap"
    subprocess.run(["trafgen", "-i", str(cfg), "-o", str(out), "-n", str(n), "-P", "1"],
                   check=True, capture_output=True, timeout=30)  # fmt: skip
    pkts = list(rdpcap(str(out)))
    assert len(pkts) == n
    return pkts


def _checksum_ok(p: Any, layer: Any, name: str = "chksum") -> bool:
    """The frame's own L4 checksum equals the one scapy computes for it."""
    rebuilt = p.copy()
    delattr(rebuilt[layer], name)
    return bool(getattr(p[layer], name) == getattr(Ether(bytes(rebuilt))[layer], name))


@pytest.mark.parametrize("profile", sorted(IPV6_PROFILES))
def test_ipv6_variants_are_the_same_attack_over_ipv6(tmp_path: Path, profile: str) -> None:
    pkts = render_v6(tmp_path, profile)
    assert all(p[IPv6].dst == EP.dst_v6 and p[Ether].type == 0x86DD for p in pkts)
    assert len({p[IPv6].src for p in pkts}) > 12  # spoofed sources
    assert all(len(p) == frame_bytes(profile, 6) for p in pkts)
    if profile in AMPLIFICATION_SPORTS:
        assert {p[UDP].sport for p in pkts} == {AMPLIFICATION_SPORTS[profile]}
    flags = {"syn_flood": "S", "ack_flood": "A", "rst_flood": "R"}
    if profile in flags:
        assert all(p[TCP].flags == flags[profile] and _checksum_ok(p, TCP) for p in pkts)
    elif profile == "icmp_flood":  # valid checksums despite the random sources
        assert all(p[ICMPv6EchoRequest].type == 128 for p in pkts)
        assert all(_checksum_ok(p, ICMPv6EchoRequest, "cksum") for p in pkts)
    elif profile == "fragment_flood":
        frags = [p[IPv6ExtHdrFragment] for p in pkts]
        assert all(f.offset > 0 and f.m == 1 and f.nh == 17 for f in frags)
    else:
        assert all(_checksum_ok(p, UDP) for p in pkts)
    if profile == "udp_service_flood":
        assert {p[UDP].dport for p in pkts} == {UDP_SERVICE_PORT}


def test_ipv6_is_refused_where_a_profile_has_no_variant() -> None:
    with pytest.raises(TrafgenError, match="no ip_version=6 variant"):
        config_text("benign", EP, ip_version=6)
    with pytest.raises(TrafgenError, match="ip_version: 4 or 6"):
        config_text("udp_flood", EP, ip_version=5)
