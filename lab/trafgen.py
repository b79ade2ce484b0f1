"""Bounded floods with netsniff-ng's trafgen, from the lab's attacker namespace.

    from lab.trafgen import run_flood, PROFILES
    result = run_flood(lab, "syn_flood", packets=50_000, pps=20_000, timeout_s=10)
    result.sent        # packets trafgen reports as sent

Profiles (see PROFILES): udp_flood, memcached_amplification (UDP sport 11211, 1400-byte
frames), dns_amplification (sport 53), ntp_amplification (sport 123),
ssdp_amplification (sport 1900), cldap_amplification (sport 389),
chargen_amplification (sport 19), syn_flood (to :80), ack_flood and rst_flood (to :443),
udp_service_flood (to the collateral lab's UDP service port), all from random source
addresses; icmp_flood, udp6_flood (IPv6), fragment_flood (non-first IPv4 UDP
fragments), benign (steady moderate mixed traffic from the attacker's own address).
`spoof=None` uses each profile's default; `spoof=True` gives random IPv4 sources (IPv6:
random low 32 bits in 2001:db8::/96).

`ip_version=6` (config_text, run_flood, start_flood) sends the same attack over IPv6 for
every profile in IPV6_PROFILES (all but benign and udp6_flood, which is IPv6 already):
the same ports and flags, ICMPv6 echo requests for icmp_flood, and for fragment_flood
non-first fragments behind an IPv6 fragment header. Frames keep the IPv4 size where the
headers allow (IPv6 TCP frames are 74 bytes, not 60): frame_bytes(profile, ip_version).

Every flood is bounded by a packet count (trafgen -n) and a timeout (the process group is
killed). `pps=None` sends as fast as trafgen's TX_RING goes. A rate is held steadily by a
tbf qdisc on a macvlan of the attacker veth made for this flood (lab.pacing; trafgen
sends through the qdisc path, `-q -t 0`): not trafgen's `-b`, which sends each second's
packets in a 0.2 s burst. benign keeps trafgen's own gap (`-t <1/pps>`), steady at its
low rates. Frames go to the victim veth's MAC, so the victim interface accepts them.
`config_text()` renders the trafgen configuration alone (write it to a .pcap with
`trafgen -o file.pcap` to inspect it).

The rate the victim actually saw is measured at the victim veth's rx counters every
100 ms (lab.rxrate): `run_flood(...).achieved` and `stop_flood(proc)` return it (mean,
and the busiest 100 ms window).
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, replace
from typing import Protocol

from lab.netns import nsenter_argv
from lab.pacing import PacedLink, tbf_params
from lab.rxrate import AchievedRate, RxRateMeter
from lab.services import UDP_SERVICE_PORT


class FloodLab(Protocol):
    """What a flood needs of a lab: lab.netns.Lab and lab.collateral.CollateralLab both
    have it (the attacker sends out of attacker_if, the victim receives on victim_if)."""

    @property
    def attacker_ns(self) -> str: ...
    @property
    def attacker_if(self) -> str: ...
    @property
    def attacker_mac(self) -> str: ...
    @property
    def attacker_v4(self) -> str: ...
    @property
    def attacker_v6(self) -> str: ...
    @property
    def victim_ns(self) -> str: ...
    @property
    def victim_if(self) -> str: ...
    @property
    def victim_mac(self) -> str: ...
    @property
    def victim_v4(self) -> str: ...
    @property
    def victim_v6(self) -> str: ...


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
        Profile("ssdp_amplification", True, 320, "UDP from port 1900, 320 bytes"),
        Profile("cldap_amplification", True, 1400, "UDP from port 389, 1400 bytes"),
        Profile("chargen_amplification", True, 512, "UDP from port 19, 512 bytes"),
        Profile("syn_flood", True, 60, "TCP SYN to port 80, random sources and ports"),
        Profile("ack_flood", True, 60, "TCP ACK to port 443, random sources and ports"),
        Profile("rst_flood", True, 60, "TCP RST to port 443, random sources and ports"),
        Profile("udp_service_flood", True, 128, f"UDP to port {UDP_SERVICE_PORT}, random sources"),
        Profile("icmp_flood", True, 98, "ICMP echo requests"),
        Profile("udp6_flood", True, 128, "IPv6 UDP, random ports"),
        Profile("fragment_flood", True, 600, "non-first IPv4 UDP fragments"),
        Profile("benign", False, 200, "steady mixed DNS/HTTPS-like traffic, own address"),
    )
}

AMPLIFICATION_SPORTS = {  # the reflector's service port, the source of its answers
    "memcached_amplification": 11211,
    "dns_amplification": 53,
    "ntp_amplification": 123,
    "ssdp_amplification": 1900,
    "cldap_amplification": 389,
    "chargen_amplification": 19,
}

IPV6_PROFILES = frozenset(PROFILES) - {"benign", "udp6_flood"}
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


def frame_bytes(profile: str, ip_version: int = 4) -> int:
    """The frame size on the wire of `profile` over IPv4 or IPv6 (what pacing counts)."""
    size = PROFILES[profile].frame_bytes
    if ip_version == 6 and profile in ("syn_flood", "ack_flood", "rst_flood"):
        return 14 + 40 + 20  # no padding: the IPv6 and TCP headers alone are 74 bytes
    return size


def _check_version(profile: str, ip_version: int) -> None:
    if profile not in PROFILES:
        raise TrafgenError(f"unknown profile {profile!r}; known: {', '.join(PROFILES)}")
    if ip_version not in (4, 6):
        raise TrafgenError(f"ip_version: 4 or 6, got {ip_version!r}")
    if ip_version == 6 and profile not in IPV6_PROFILES:
        raise TrafgenError(f"profile {profile!r} has no ip_version=6 variant")


def config_text(
    profile: str, ep: Endpoints, *, spoof: bool | None = None, ip_version: int = 4
) -> str:
    """The trafgen configuration for `profile` between the given endpoints."""
    _check_version(profile, ip_version)
    prof = PROFILES[profile]
    spoof = prof.spoof if spoof is None else spoof
    if ip_version == 6:
        return _config_v6(profile, ep, spoof)
    e4 = _eth(ep, _ETH_V4)
    hdr_udp4 = 14 + 20 + 8
    if profile == "udp_flood":
        body = [f"{_ip4(ep, spoof)}, udp(sp=drnd(), dp=drnd()), {_pad(prof.frame_bytes, hdr_udp4)}"]
    elif profile == "udp_service_flood":
        body = [
            f"{_ip4(ep, spoof)}, udp(sp=drnd(), dp={UDP_SERVICE_PORT}), "
            f"{_pad(prof.frame_bytes, hdr_udp4)}"
        ]
    elif profile in AMPLIFICATION_SPORTS:
        sport = AMPLIFICATION_SPORTS[profile]
        body = [
            f"{_ip4(ep, spoof)}, udp(sp={sport}, dp=drnd(1024, 65535)), "
            f"{_pad(prof.frame_bytes, hdr_udp4)}"
        ]
    elif profile == "syn_flood":
        body = [
            f"{_ip4(ep, spoof)}, tcp(sp=drnd(), dp=80, seq=drnd(), syn, win=64240), fill(0x00, 6)"
        ]
    elif profile == "ack_flood":
        body = [
            f"{_ip4(ep, spoof)}, tcp(sp=drnd(), dp=443, seq=drnd(), aseq=drnd(), ack, "
            "win=501), fill(0x00, 6)"
        ]
    elif profile == "rst_flood":
        body = [f"{_ip4(ep, spoof)}, tcp(sp=drnd(), dp=443, seq=drnd(), rst, win=0), fill(0x00, 6)"]
    elif profile == "icmp_flood":
        body = [
            f"{_ip4(ep, spoof)}, icmp4(echorequest, id=drnd(), seq=drnd()), "
            f"{_pad(prof.frame_bytes, 14 + 20 + 8)}"
        ]
    elif profile == "udp6_flood":
        sa = "2001:db8::, sa[12:4]=drnd()" if spoof else ep.src_v6
        return (
            f"{{ {_eth(ep, _ETH_V6)}, ipv6(sa={sa}, da={ep.dst_v6}, hl=64), "
            f"udp(sp=drnd(), dp=drnd()), {_pad(prof.frame_bytes, 14 + 40 + 8)} }}\n"
        )
    elif profile == "fragment_flood":
        # Offsets > 0 with MF set: fragments without an L4 header, never reassembled.
        body = [
            f"{_ip4(ep, spoof, ', mf, frag=drnd(1, 8000), id=drnd(), proto=17')}, "
            f"{_pad(prof.frame_bytes, 14 + 20)}"
        ]
    else:  # benign: a DNS-like query, an HTTPS-like ACK, a small UDP reply
        body = [
            f"{_ip4(ep, spoof)}, udp(sp=drnd(20000, 60000), dp=53), {_pad(80, hdr_udp4)}",
            f"{_ip4(ep, spoof)}, tcp(sp=drnd(20000, 60000), dp=443, ack, psh, win=501), "
            f"{_pad(300, 14 + 20 + 20)}",
            f"{_ip4(ep, spoof)}, udp(sp=drnd(20000, 60000), dp=8080), {_pad(200, hdr_udp4)}",
        ]
    return "".join(f"{{ {e4}, {b} }}\n" for b in body)


def _ip6(ep: Endpoints, spoof: bool, extra: str = "") -> str:
    sa = "2001:db8::, sa[12:4]=drnd()" if spoof else ep.src_v6
    return f"ipv6(sa={sa}, da={ep.dst_v6}, hl=64{extra})"


def _config_v6(profile: str, ep: Endpoints, spoof: bool) -> str:
    size = frame_bytes(profile, 6)
    ip, hdr_udp6 = _ip6(ep, spoof), 14 + 40 + 8
    if profile == "udp_flood":
        body = f"{ip}, udp(sp=drnd(), dp=drnd()), {_pad(size, hdr_udp6)}"
    elif profile == "udp_service_flood":
        body = f"{ip}, udp(sp=drnd(), dp={UDP_SERVICE_PORT}), {_pad(size, hdr_udp6)}"
    elif profile in AMPLIFICATION_SPORTS:
        sport = AMPLIFICATION_SPORTS[profile]
        body = f"{ip}, udp(sp={sport}, dp=drnd(1024, 65535)), {_pad(size, hdr_udp6)}"
    elif profile == "syn_flood":
        body = f"{ip}, tcp(sp=drnd(), dp=80, seq=drnd(), syn, win=64240)"
    elif profile == "ack_flood":
        body = f"{ip}, tcp(sp=drnd(), dp=443, seq=drnd(), aseq=drnd(), ack, win=501)"
    elif profile == "rst_flood":
        body = f"{ip}, tcp(sp=drnd(), dp=443, seq=drnd(), rst, win=0)"
    elif profile == "icmp_flood":
        return _icmp6_echo_frames(ep, spoof, size)
    else:  # fragment_flood: a fragment header (next header UDP), offset > 0, M set
        # offset field: high byte counting 1..255 (offset 32..8160 units of 8 bytes), low
        # byte M=1; identification random
        frag = "c8(17), c8(0), dinc(1, 255), c8(1), drnd(4)"
        body = f"{_ip6(ep, spoof, ', nh=44')}, {frag}, {_pad(size, 14 + 40 + 8)}"
    return f"{{ {_eth(ep, _ETH_V6)}, {body} }}\n"


ICMP6_SPOOFED_SOURCES = 512


def _icmp6_echo_frames(ep: Endpoints, spoof: bool, size: int) -> str:
    """ICMPv6 echo requests. trafgen 0.6.8 does not recompute the ICMPv6 checksum when
    the source address is random (the victim would discard every frame as corrupt), so
    a spoofed flood is ICMP6_SPOOFED_SOURCES static frames, each from its own random
    source in 2001:db8::/96 (same seed every time), which trafgen sends in turn."""
    rng = random.Random(0x4654)
    sources = (
        [str(ipaddress.IPv6Address((0x20010DB8 << 96) | rng.getrandbits(32)))
         for _ in range(ICMP6_SPOOFED_SOURCES)]
        if spoof else [ep.src_v6]
    )  # fmt: skip
    pad = _pad(size, 14 + 40 + 8)
    return "".join(
        f"{{ {_eth(ep, _ETH_V6)}, ipv6(sa={sa}, da={ep.dst_v6}, hl=64), icmp6(echorequest), "
        f"c16(0x4654), c16({i}), {pad} }}\n"
        for i, sa in enumerate(sources)
    )


def lab_endpoints(lab: FloodLab) -> Endpoints:
    return Endpoints(
        lab.attacker_mac,
        lab.victim_mac,
        lab.attacker_v4,
        lab.victim_v4,
        lab.attacker_v6,
        lab.victim_v6,
    )


@dataclass(frozen=True, slots=True)
class FloodResult:
    profile: str
    requested: int
    sent: int  # as trafgen reports it (0 when it printed nothing)
    elapsed_s: float
    timed_out: bool
    returncode: int
    requested_pps: int | None = None  # None: as fast as trafgen goes
    achieved: AchievedRate | None = None  # as the victim's interface saw it


_SENT = re.compile(r"(\d+)\s+packets outgoing")
DRAIN_S = 0.25  # after trafgen ends: the last window's packets reach the victim's counters
# trafgen exits once its frames are in the pacing qdisc, up to ~0.1 s of them at 10 kpps
# still queued there (seen: 1,048 of 20,000 lost when the link was removed at once)
MAX_QUEUE_DRAIN_S = 10.0


def paced_by_qdisc(profile: str, pps: int | None) -> bool:
    """Whether this flood is held to its rate by a tbf qdisc (lab.pacing)."""
    return pps is not None and profile != "benign"


def check_bounds(packets: int, pps: int | None) -> None:
    """Refuse an unbounded flood or a rate that is not positive (before anything is made)."""
    if packets <= 0:
        raise TrafgenError("a flood needs a positive packet count (unbounded floods are refused)")
    if pps is not None and pps <= 0:
        raise TrafgenError(f"pps must be positive, got {pps}")


def trafgen_argv(
    cfg_path: str, dev: str, *, packets: int, pps: int | None, profile: str, cpus: int = 1
) -> list[str]:
    """trafgen's argv. For a qdisc-paced flood `dev` is the flood's pacing macvlan."""
    check_bounds(packets, pps)
    # --no-sock-mem: leave the socket-memory sysctls alone (0.6.8 rejects its short -A).
    argv = [
        TRAFGEN,
        "-i",
        cfg_path,
        "-o",
        dev,
        "-n",
        str(packets),
        "-P",
        str(cpus),
        "--no-sock-mem",
    ]
    if profile == "benign":
        gap_us = max(1, int(1_000_000 / (pps or 200)))
        argv += ["-t", f"{gap_us}us"]
    elif paced_by_qdisc(profile, pps):
        # sendto() without gaps (-t 0) through the qdisc path (-q): the tbf sets the pace
        # and the socket's send buffer holds trafgen back.
        argv += ["-q", "-t", "0"]
    return argv


def _pacer(lab: FloodLab, profile: str, pps: int | None, ip_version: int) -> PacedLink | None:
    if pps is None or not paced_by_qdisc(profile, pps):
        return None
    params = tbf_params(pps, frame_bytes(profile, ip_version))
    return PacedLink.create(lab.attacker_ns, lab.attacker_if, params)


class Flood(subprocess.Popen[str]):
    """A flood started by start_flood: trafgen's process, plus its pacing link and the
    meter of the victim's rx rate, both ended by stop_flood."""

    pacer: PacedLink | None = None
    meter: RxRateMeter | None = None


def run_flood(
    lab: FloodLab,
    profile: str,
    *,
    packets: int,
    pps: int | None = None,
    timeout_s: float = 10.0,
    spoof: bool | None = None,
    cpus: int = 1,
    ip_version: int = 4,
) -> FloodResult:
    """Run one bounded flood from the attacker namespace out of the attacker veth; the
    result states what trafgen sent and the rate the victim's interface saw."""
    check_bounds(packets, pps)
    _check_version(profile, ip_version)
    text = config_text(profile, lab_endpoints(lab), spoof=spoof, ip_version=ip_version)
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", prefix=f"ft-{profile}-") as cfg:
        cfg.write(text)
        cfg.flush()
        pacer = _pacer(lab, profile, pps, ip_version)
        try:
            dev = pacer.ifname if pacer else lab.attacker_if
            argv = trafgen_argv(cfg.name, dev, packets=packets, pps=pps, profile=profile,
                                cpus=cpus)  # fmt: skip
            meter = RxRateMeter(lab.victim_ns, lab.victim_if).start()
            try:
                result = _run(nsenter_argv(lab.attacker_ns, argv), profile, packets, timeout_s)
                if pacer is not None:  # its last frames are still in the qdisc: let them go
                    pacer.wait_drained(MAX_QUEUE_DRAIN_S)
                time.sleep(DRAIN_S)
            finally:
                achieved = meter.stop()
        finally:
            if pacer is not None:
                pacer.close()
    return replace(result, requested_pps=pps, achieved=achieved)


def start_flood(
    lab: FloodLab,
    profile: str,
    *,
    packets: int,
    pps: int | None = None,
    spoof: bool | None = None,
    cpus: int = 1,
    ip_version: int = 4,
) -> Flood:
    """Start a bounded flood in the background; the caller waits for it (or not) and
    ends it with stop_flood, which also returns the rate the victim saw."""
    check_bounds(packets, pps)
    _check_version(profile, ip_version)
    text = config_text(profile, lab_endpoints(lab), spoof=spoof, ip_version=ip_version)
    pacer = _pacer(lab, profile, pps, ip_version)
    meter: RxRateMeter | None = None
    try:
        # The configuration goes through stdin (-i -): no file to clean up, no start-up race.
        argv = trafgen_argv("-", pacer.ifname if pacer else lab.attacker_if, packets=packets,
                            pps=pps, profile=profile, cpus=cpus)  # fmt: skip
        meter = RxRateMeter(lab.victim_ns, lab.victim_if).start()
        proc = Flood(nsenter_argv(lab.attacker_ns, argv), stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                     start_new_session=True)  # fmt: skip
    except BaseException:
        if meter is not None:
            meter.stop()
        if pacer is not None:
            pacer.close()
        raise
    proc.pacer, proc.meter = pacer, meter
    if proc.stdin is None:  # cannot happen with stdin=PIPE; keeps the type checker honest
        raise TrafgenError("no stdin pipe to trafgen")
    proc.stdin.write(text)
    proc.stdin.close()
    return proc


def stop_flood(proc: subprocess.Popen[str]) -> AchievedRate | None:
    """Kill a flood started with start_flood (its own process group), reap it, remove its
    pacing link; returns the rate the victim's interface saw (None for a plain Popen)."""
    ended_by_itself = proc.poll() is not None
    if not ended_by_itself:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    if not isinstance(proc, Flood):
        return None
    if ended_by_itself and proc.pacer is not None:  # all its packets, not only the sent part
        proc.pacer.wait_drained(MAX_QUEUE_DRAIN_S)
    achieved = None
    if proc.meter is not None:
        time.sleep(DRAIN_S)
        achieved = proc.meter.stop()
        proc.meter = None
    if proc.pacer is not None:
        proc.pacer.close()
        proc.pacer = None
    return achieved


def _run(argv: list[str], profile: str, packets: int, timeout_s: float) -> FloodResult:
    start = time.monotonic()
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
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


# ---- spread floods: one attack sprayed over many hosts (carpet bombing) ------------------


def spread_config_text(
    profile: str, endpoints: list[Endpoints], *, spoof: bool | None = None
) -> str:
    """The trafgen configuration for `profile` sprayed over every host of `endpoints`:
    one frame definition per host, which trafgen sends in turn, so each host gets the
    same share (1/len) of the flood, evenly interleaved."""
    if not endpoints:
        raise TrafgenError("a spread flood needs at least one destination")
    return "".join(config_text(profile, ep, spoof=spoof) for ep in endpoints)


def start_spread_flood(
    attacker_ns: str,
    attacker_if: str,
    endpoints: list[Endpoints],
    profile: str,
    *,
    packets: int,
    pps: int,
    spoof: bool | None = None,
) -> Flood:
    """Start a bounded flood of `packets` at `pps` in all from the attacker, sprayed over
    the hosts of `endpoints` (each gets pps / len of them), paced by one tbf qdisc. End it
    with stop_flood (or wait: it stops by itself after packets / pps seconds)."""
    check_bounds(packets, pps)
    _check_version(profile, 4)
    if profile == "benign" or not paced_by_qdisc(profile, pps):
        raise TrafgenError(f"profile {profile!r} cannot be sprayed (paced floods only)")
    text = spread_config_text(profile, endpoints, spoof=spoof)
    pacer = PacedLink.create(attacker_ns, attacker_if, tbf_params(pps, frame_bytes(profile)))
    try:
        argv = trafgen_argv("-", pacer.ifname, packets=packets, pps=pps, profile=profile)
        proc = Flood(nsenter_argv(attacker_ns, argv), stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                     start_new_session=True)  # fmt: skip
    except BaseException:
        pacer.close()
        raise
    proc.pacer = pacer
    if proc.stdin is None:
        raise TrafgenError("no stdin pipe to trafgen")
    proc.stdin.write(text)
    proc.stdin.close()
    return proc
