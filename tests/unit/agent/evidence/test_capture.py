import os
import time
from pathlib import Path

import dpkt
from scapy.layers.inet import IP, UDP
from scapy.utils import rdpcap

from ftagent.datapath import Sample
from ftagent.evidence.capture import PcapWriter, SampleRing, mono_to_wall, prune, sample_one_in
from tests.unit.agent.packets import ETH, sample


def attack_samples(n: int, start_ns: int) -> list[Sample]:
    pkt = ETH / IP(src="192.0.2.7", dst="10.0.0.2") / UDP(sport=11211, dport=4000) / (b"v" * 1400)
    return [sample(pkt, ts_ns=start_ns + i * 1000) for i in range(n)]


def test_pcap_is_read_by_dpkt_and_scapy(tmp_path: Path):
    now = time.monotonic_ns()
    w = PcapWriter(tmp_path / "a.pcap", max_packets=100, max_bytes=1 << 20)
    assert w.write(attack_samples(10, now - 10**9)) == 10
    w.close()
    with open(tmp_path / "a.pcap", "rb") as f:
        reader = dpkt.pcap.Reader(f)
        assert reader.datalink() == dpkt.pcap.DLT_EN10MB
        records = list(reader)
    assert len(records) == 10
    ts, raw = records[0]
    assert abs(ts - (time.time() - 1.0)) < 0.5  # monotonic stamps became wall-clock time
    eth = dpkt.ethernet.Ethernet(raw)
    assert eth.data.data.sport == 11211
    assert len(raw) == 128  # what the kernel handed over
    pkts = rdpcap(str(tmp_path / "a.pcap"))
    assert len(pkts) == 10
    assert pkts[0].wirelen > 1400  # original length kept


def test_bounds_in_packets_and_bytes(tmp_path: Path):
    w = PcapWriter(tmp_path / "p.pcap", max_packets=5, max_bytes=1 << 20)
    assert w.write(attack_samples(8, 0)) == 5 and w.full
    assert w.write(attack_samples(3, 0)) == 0
    w.close()
    b = PcapWriter(tmp_path / "b.pcap", max_packets=1000, max_bytes=24 + 3 * (16 + 128))
    assert b.write(attack_samples(10, 0)) == 3
    b.close()
    assert (tmp_path / "b.pcap").stat().st_size <= 24 + 3 * (16 + 128)


def test_ring_keeps_only_the_last_seconds():
    ring = SampleRing(seconds=2.0)
    base = 100 * 10**9
    ring.extend(attack_samples(1, base), base)
    ring.extend(attack_samples(1, base + 3 * 10**9), base + 3 * 10**9)
    assert [s.timestamp_ns for s in ring.items] == [base + 3 * 10**9]


def test_prune_and_sampling_ratio(tmp_path: Path):
    for i in range(5):
        p = tmp_path / f"{i}.pcap"
        p.write_bytes(b"x")
        t = time.time() - 100 + i
        os.utime(p, (t, t))
    gone = prune(tmp_path, keep=2)
    assert sorted(p.name for p in gone) == ["0.pcap", "1.pcap", "2.pcap"]
    assert sample_one_in(100_000, 2000) == 50
    assert sample_one_in(10, 2000) == 1
    assert sample_one_in(10, 0) == 0
    assert mono_to_wall(5 * 10**9, 10 * 10**9, 1000.0) == 995.0


def test_pcap_opens_in_tcpdump_and_tshark(tmp_path: Path):
    import shutil
    import subprocess

    from tests.capability import require

    require(shutil.which("tcpdump") is not None, "tcpdump")
    require(shutil.which("tshark") is not None, "tshark")
    w = PcapWriter(tmp_path / "t.pcap", max_packets=100, max_bytes=1 << 20)
    w.write(attack_samples(5, time.monotonic_ns()))
    w.close()
    td = subprocess.run(
        ["tcpdump", "-nr", str(tmp_path / "t.pcap")],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert td.stdout.count("192.0.2.7.11211 > 10.0.0.2.4000: UDP") == 5
    ts = subprocess.run(
        ["tshark", "-r", str(tmp_path / "t.pcap"), "-T", "fields", "-e", "udp.srcport"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert ts.stdout.split() == ["11211"] * 5
