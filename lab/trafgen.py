"""Bounded floods with netsniff-ng's trafgen, from the lab's attacker namespace.

    from lab.trafgen import run_flood, PROFILES
    result = run_flood(lab, "syn_flood", packets=50_000, pps=20_000, timeout_s=10)
    result.sent        # packets trafgen reports as sent

Profiles (see PROFILES): udp_flood, memcached_amplification (UDP sport 11211, 1400-byte
frames), dns_amplification (sport 53), ntp_amplification (sport 123), syn_flood and
ack_flood (random source addresses), icmp_flood, udp6_flood (IPv6), fragment_flood
(non-first IPv4 UDP fragments), benign (steady moderate mixed traffic from the
attacker's own address). `spoof=None` uses each profile's default; `spoof=True` gives
random IPv4 sources (IPv6: random low 32 bits in 2001:db8::/96).

Every flood is bounded by a packet count (trafgen -n) and a timeout (the process group is
killed). `pps=None` sends as fast as trafgen's TX_RING goes; a rate uses trafgen's
slow mode (-b <pps>pps; benign uses -t <gap>). Frames go to the victim veth's MAC, so the
victim interface accepts them. `config_text()` renders the trafgen configuration alone
(write it to a .pcap with `trafgen -o file.pcap` to inspect it).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lab.netns import nsenter_argv

if TYPE_CHECKING:
    from lab.netns import Lab

TRAFGEN = "trafgen"


@dataclass(frozen=True, slots=True)
class Endpoints:
    src_mac: str
    dst_mac: str
    src_v4: str
    dst_v4: str
    src_v6: str
    dst_v6: str


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    spoof: bool  # random sources by default
    frame_bytes: int  # approximate frame size on the wire
    description: str


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("udp_flood", True, 128, "UDP, random ports, random sources"),
        Profile("memcached_amplification", True, 1400, "UDP from port 11211, ~1400 bytes"),
        Profile("dns_amplification", True, 1000, "UDP from port 53, ~1000 bytes"),
        Profile("ntp_amplification", True, 482, "UDP from port 123, 482 bytes"),
        Profile("syn_flood", True, 60, "TCP SYN to port 80, random sources and ports"),
        Profile("ack_flood", True, 60, "TCP ACK to port 443, random sources and ports"),
        Profile("icmp_flood", True, 98, "ICMP echo requests"),
        Profile("udp6_flood", True, 128, "IPv6 UDP, random ports"),
        Profile("fragment_flood", True, 600, "non-first IPv4 UDP fragments"),
        Profile("benign", False, 200, "steady mixed DNS/HTTPS-like traffic, own address"),
    )
}

_ETH_V4 = "0x0800"
_ETH_V6 = "0x86dd"  # trafgen 0.6.8 leaves the EtherType 0 for ipv6() unless told


class TrafgenError(RuntimeError):
    pass


def _eth(ep: Endpoints, etype: str) -> str:
    return f"eth(da={ep.dst_mac}, sa={ep.src_mac}, type={etype})"


def _ip4(ep: Endpoints, spoof: bool, extra: str = "") -> str:
    sa = "drnd()" if spoof else ep.src_v4
    return f"ipv4(sa={sa}, da={ep.dst_v4}, ttl=64{extra})"


def _pad(frame_bytes: int, headers: int) -> str:
    return f"fill(0x41, {max(0, frame_bytes - headers)})"


def config_text(profile: str, ep: Endpoints, *, spoof: bool | None = None) -> str:
    """The trafgen configuration for `profile` between the given endpoints."""
    if profile not in PROFILES:
        raise TrafgenError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    prof = PROFILES[profile]
    spoof = prof.spoof if spoof is None else spoof
    e4 = _eth(ep, _ETH_V4)
    hdr_udp4 = 14 + 20 + 8
    if profile == "udp_flood":
        body = [f"{_ip4(ep, spoof)}, udp(sp=drnd(), dp=drnd()), {_pad(prof.frame_bytes, hdr_udp4)}"]
    elif profile in ("memcached_amplification", "dns_amplification", "ntp_amplification"):
        sport = {"memcached_amplification": 11211, "dns_amplification": 53,
                 "ntp_amplification": 123}[profile]
        body = [f"{_ip4(ep, spoof)}, udp(sp={sport}, dp=drnd(1024, 65535)), "
                f"{_pad(prof.frame_bytes, hdr_udp4)}"]
    elif profile == "syn_flood":
        body = [f"{_ip4(ep, spoof)}, tcp(sp=drnd(), dp=80, seq=drnd(), syn, win=64240), "
                "fill(0x00, 6)"]
    elif profile == "ack_flood":
        body = [f"{_ip4(ep, spoof)}, tcp(sp=drnd(), dp=443, seq=drnd(), aseq=drnd(), ack, "
                "win=501), fill(0x00, 6)"]
    elif profile == "icmp_flood":
        body = [f"{_ip4(ep, spoof)}, icmp4(echorequest, id=drnd(), seq=drnd()), "
                f"{_pad(prof.frame_bytes, 14 + 20 + 8)}"]
    elif profile == "udp6_flood":
        sa = "2001:db8::, sa[12:4]=drnd()" if spoof else ep.src_v6
        return (f"{{ {_eth(ep, _ETH_V6)}, ipv6(sa={sa}, da={ep.dst_v6}, hl=64), "
                f"udp(sp=drnd(), dp=drnd()), {_pad(prof.frame_bytes, 14 + 40 + 8)} }}\n")
    elif profile == "fragment_flood":
        # Offsets > 0 with MF set: fragments without an L4 header, never reassembled.
        body = [f"{_ip4(ep, spoof, ', mf, frag=drnd(1, 8000), id=drnd(), proto=17')}, "
                f"{_pad(prof.frame_bytes, 14 + 20)}"]
    else:  # benign: a DNS-like query, an HTTPS-like ACK, a small UDP reply
        body = [
            f"{_ip4(ep, spoof)}, udp(sp=drnd(20000, 60000), dp=53), {_pad(80, hdr_udp4)}",
            f"{_ip4(ep, spoof)}, tcp(sp=drnd(20000, 60000), dp=443, ack, psh, win=501), "
            f"{_pad(300, 14 + 20 + 20)}",
            f"{_ip4(ep, spoof)}, udp(sp=drnd(20000, 60000), dp=8080), {_pad(200, hdr_udp4)}",
        ]
    return "".join(f"{{ {e4}, {b} }}\n" for b in body)


def lab_endpoints(lab: Lab) -> Endpoints:
    return Endpoints(lab.attacker_mac, lab.victim_mac, lab.attacker_v4, lab.victim_v4,
                     lab.attacker_v6, lab.victim_v6)


@dataclass(frozen=True, slots=True)
class FloodResult:
    profile: str
    requested: int
    sent: int  # as trafgen reports it (0 when it printed nothing)
    elapsed_s: float
    timed_out: bool
    returncode: int


_SENT = re.compile(r"(\d+)\s+packets outgoing")


def trafgen_argv(cfg_path: str, dev: str, *, packets: int, pps: int | None, profile: str,
                 cpus: int = 1) -> list[str]:
    if packets <= 0:
        raise TrafgenError("a flood needs a positive packet count (unbounded floods are refused)")
    # --no-sock-mem: leave the socket-memory sysctls alone (0.6.8 rejects its short -A).
    argv = [TRAFGEN, "-i", cfg_path, "-o", dev, "-n", str(packets), "-P", str(cpus),
            "--no-sock-mem"]
    if profile == "benign":
        gap_us = max(1, int(1_000_000 / (pps or 200)))
        argv += ["-t", f"{gap_us}us"]
    elif pps is not None:
        if pps <= 0:
            raise TrafgenError(f"pps must be positive, got {pps}")
        argv += ["-b", f"{pps}pps"]
    return argv


def run_flood(
    lab: Lab,
    profile: str,
    *,
    packets: int,
    pps: int | None = None,
    timeout_s: float = 10.0,
    spoof: bool | None = None,
    cpus: int = 1,
) -> FloodResult:
    """Run one bounded flood from the attacker namespace out of the attacker veth."""
    text = config_text(profile, lab_endpoints(lab), spoof=spoof)
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", prefix=f"ft-{profile}-") as cfg:
        cfg.write(text)
        cfg.flush()
        argv = trafgen_argv(cfg.name, lab.attacker_if, packets=packets, pps=pps,
                            profile=profile, cpus=cpus)
        return _run(nsenter_argv(lab.attacker_ns, argv), profile, packets, timeout_s)


def start_flood(
    lab: Lab,
    profile: str,
    *,
    packets: int,
    pps: int | None = None,
    spoof: bool | None = None,
    cpus: int = 1,
) -> subprocess.Popen[str]:
    """Start a bounded flood in the background; the caller waits (or kills its group)."""
    text = config_text(profile, lab_endpoints(lab), spoof=spoof)
    # The configuration goes through stdin (-i -): no file to clean up, no start-up race.
    argv = trafgen_argv("-", lab.attacker_if, packets=packets, pps=pps, profile=profile,
                        cpus=cpus)
    proc = subprocess.Popen(nsenter_argv(lab.attacker_ns, argv), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    if proc.stdin is None:  # cannot happen with stdin=PIPE; keeps the type checker honest
        raise TrafgenError("no stdin pipe to trafgen")
    proc.stdin.write(text)
    proc.stdin.close()
    return proc


def stop_flood(proc: subprocess.Popen[str]) -> None:
    """Kill a flood started with start_flood (its own process group) and reap it."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _run(argv: list[str], profile: str, packets: int, timeout_s: float) -> FloodResult:
    start = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    timed_out = False
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGINT)  # trafgen prints its totals on SIGINT
        try:
            out, _ = proc.communicate(timeout=2)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
    elapsed = time.monotonic() - start
    sent = sum(int(m) for m in _SENT.findall(out or ""))
    if proc.returncode not in (0, None) and not timed_out and sent == 0:
        raise TrafgenError(f"trafgen failed ({proc.returncode}): {(out or '').strip()[-500:]}")
    return FloodResult(profile, packets, sent, elapsed, timed_out, int(proc.returncode or 0))
