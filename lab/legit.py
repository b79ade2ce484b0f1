"""Legitimate traffic in the collateral lab, and how much of it succeeds.

    with LabServices.start(lab), LegitTraffic.start(lab, ip_version=4) as legit:
        quiet = legit.measure(5.0)          # LegitResult: success per class
        ... start a flood ...
        during = legit.measure(5.0)

Per class, over the interval (each attempt has ATTEMPT_TIMEOUT_S to succeed; measure()
returns once the last attempt has succeeded or timed out):
- tcp_connect: new TCP connections from the client to the victim's HTTP server
  (port 80), 20/s: connect, GET /, a 200 answer, all within 1 s;
- udp_request: the client's requests to the victim's UDP service, 50/s, from one socket
  that lives as long as the generator (a client that talked to the victim before);
- dns_lookup: the victim's own lookups, 10/s, each from a fresh connected UDP socket
  made in the victim namespace (as a stub resolver does), to the resolver in the client
  namespace; success is a matching answer within 1 s;
- ping: ICMP echo from the client to the victim, 10/s, answered within 1 s;
- download: one HTTP download (port 443) started with the generator and read for its
  whole life: bytes/s over the interval and the longest stall without data
  (download_over(t0, t1) gives the same for any other stretch of its life, e.g. the
  seconds before a flood). It is read by a process of its own in the client namespace
  (`python -m lab.legit download ADDRESS`), which reports the monotonic time and size
  of every read (and a tick every TICK_S without data): a pause of this process (the
  agent under test shares it in the benchmark) neither delays the reads nor moves
  their timestamps;
- udp_new_client (only when measure() is given fresh source addresses): requests to the
  UDP service, 10/s, each from a new socket bound to the next fresh address: a client
  the victim has never heard from before (the addresses must be the client's, see
  CollateralLab.add_client_addresses).

Everything else runs on one asyncio loop in a thread that lives in the client namespace;
the victim's DNS sockets are made inside the victim namespace and then used from that
loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import os
import random
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, TypeVar

from lab import minidns
from lab.netns import enter_netns, nsenter_argv
from lab.services import DNS_PORT, HTTP_PORTS, REPO_ROOT, UDP_SERVICE_PORT, read_line

ATTEMPT_TIMEOUT_S = 1.0
TCP_CONNECT_PER_S = 20
UDP_REQUEST_PER_S = 50
DNS_LOOKUP_PER_S = 10
PING_PER_S = 10
NEW_CLIENT_PER_S = 10
TCP_PORT, DOWNLOAD_PORT = HTTP_PORTS  # 80: new connections; 443: the long download
LOOKUP_NAME = "www.example.test"
TICK_S = 0.05  # the download reader reports at least this often, data or not
READY = "ready"  # the download reader's first line, once the answer's head is in
SYNC_TIMEOUT_S = 3.0  # download_over waits this long for the reader's reports to reach t1
T = TypeVar("T")


class LegitLab(Protocol):
    @property
    def victim_ns(self) -> str: ...
    @property
    def client_ns(self) -> str: ...
    @property
    def victim_v4(self) -> str: ...
    @property
    def victim_v6(self) -> str: ...
    @property
    def client(self) -> _Addressed: ...


class _Addressed(Protocol):
    @property
    def v4(self) -> str: ...
    @property
    def v6(self) -> str: ...


@dataclass(frozen=True, slots=True)
class ClassResult:
    attempts: int
    succeeded: int

    @property
    def success_rate(self) -> float:
        """Succeeded over attempted, 0.0..1.0 (0.0 when nothing was attempted)."""
        return self.succeeded / self.attempts if self.attempts else 0.0


@dataclass(frozen=True, slots=True)
class LegitResult:
    ip_version: int
    interval_s: float
    tcp_connect: ClassResult
    udp_request: ClassResult
    dns_lookup: ClassResult
    ping: ClassResult
    download_bytes_s: float  # over the interval
    download_longest_stall_s: float  # longest time in the interval without a byte
    udp_new_client: ClassResult | None = None  # measured only when asked (fresh sources)

    def classes(self) -> dict[str, ClassResult]:
        """The classes measured by attempts (udp_new_client only when it was measured)."""
        out = {"tcp_connect": self.tcp_connect, "udp_request": self.udp_request,
               "dns_lookup": self.dns_lookup, "ping": self.ping}  # fmt: skip
        if self.udp_new_client is not None:
            out["udp_new_client"] = self.udp_new_client
        return out


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    total += total >> 16
    return ~total & 0xFFFF


@dataclass
class _Download:
    """The long download: (monotonic time, bytes) for every read, as the reader process
    reported them; `seen` is the latest time it reported (a read or a tick)."""

    reads: list[tuple[float, int]] = field(default_factory=list)
    started_at: float = 0.0
    seen: float = 0.0
    ended: bool = False
    changed: threading.Condition = field(default_factory=threading.Condition)

    def add(self, at: float, size: int) -> None:
        with self.changed:
            if size > 0:
                self.reads.append((at, size))
            self.seen = max(self.seen, at)
            self.changed.notify_all()

    def end(self) -> None:
        with self.changed:
            self.ended = True
            self.changed.notify_all()

    def over(self, t0: float, t1: float) -> tuple[float, float]:
        """(bytes/s, longest stall in s) between t0 and t1, once the reader has reported
        up to t1 (or ended, or SYNC_TIMEOUT_S passed: a stalled reader is a stall)."""
        with self.changed:
            self.changed.wait_for(lambda: self.seen >= t1 or self.ended, SYNC_TIMEOUT_S)
            inside = [(t, n) for t, n in self.reads if t0 <= t < t1]
        got = sum(n for _, n in inside)
        marks = [t0, *(t for t, _ in inside), t1]
        stall = max(b - a for a, b in itertools.pairwise(marks))
        return got / (t1 - t0), stall


def read_download(address: str, port: int) -> None:
    """The download reader process (`python -m lab.legit download ADDRESS [PORT]`): GET
    /download, print READY once the 200 head is in, then "<monotonic> <bytes>" for every
    read and "<monotonic> 0" every TICK_S without data, until the server closes or
    stdout does (the parent went away)."""
    with socket.create_connection((address, port), timeout=5.0) as sock:
        sock.sendall(b"GET /download HTTP/1.0\r\nHost: victim\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(4096)
            if not data:
                raise SystemExit("download: closed before the answer's head")
            head += data
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise SystemExit(f"download: unexpected answer {head[:80]!r}")
        print(READY, flush=True)
        sock.setblocking(False)
        out = sys.stdout
        while True:
            ready, _, _ = select.select([sock], [], [], TICK_S)
            size = 0
            if ready:
                try:
                    data = sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                except OSError:
                    return  # a reset download: the parent sees the stall
                if not data:
                    return
                size = len(data)
            try:
                out.write(f"{time.monotonic():.6f} {size}\n")
                out.flush()
            except BrokenPipeError:
                return


class LegitTraffic:
    """The generator: start() (connects the download), measure() any number of times,
    close()."""

    def __init__(self, lab: LegitLab, ip_version: int = 4) -> None:
        if ip_version not in (4, 6):
            raise ValueError(f"ip_version: 4 or 6, got {ip_version!r}")
        self.lab, self.ip_version = lab, ip_version
        self.family = socket.AF_INET if ip_version == 4 else socket.AF_INET6
        self.victim = lab.victim_v4 if ip_version == 4 else lab.victim_v6
        self.resolver = lab.client.v4 if ip_version == 4 else lab.client.v6
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run_loop, daemon=True, name="legit")
        self._download = _Download()
        self._reader: subprocess.Popen[str] | None = None
        self._reader_thread: threading.Thread | None = None
        self._udp: socket.socket | None = None
        self._udp_waiting: dict[int, asyncio.Future[bool]] = {}
        self._icmp: socket.socket | None = None
        self._icmp_waiting: dict[int, asyncio.Future[bool]] = {}
        self._icmp_id = random.getrandbits(16)  # tells our echo replies from others'
        self._seq = 0

    @classmethod
    def start(cls, lab: LegitLab, ip_version: int = 4) -> LegitTraffic:
        legit = cls(lab, ip_version)
        legit._thread.start()
        try:
            legit._call(legit._open)
            legit._start_download()
        except BaseException:
            legit.close()
            raise
        return legit

    def __enter__(self) -> LegitTraffic:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()

    def _run_loop(self) -> None:
        with enter_netns(self.lab.client_ns):  # every socket the loop makes is the client's
            asyncio.set_event_loop(self.loop)
            self.loop.run_forever()

    def _call(self, make: Callable[[], Awaitable[T]], timeout_s: float = 60.0) -> T:
        """Run make() on the generator's loop (in the client namespace) and wait for it."""

        async def wrapped() -> T:
            return await make()

        fut: Future[T] = asyncio.run_coroutine_threadsafe(wrapped(), self.loop)
        return fut.result(timeout_s)

    # ---------- set-up and tear-down ---------------------------------------------------

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        udp = socket.socket(self.family, socket.SOCK_DGRAM)
        udp.setblocking(False)
        udp.connect((self.victim, UDP_SERVICE_PORT))
        loop.add_reader(udp.fileno(), self._udp_readable)
        self._udp = udp
        if self.ip_version == 4:
            icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        else:
            icmp = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        icmp.setblocking(False)
        loop.add_reader(icmp.fileno(), self._icmp_readable)
        self._icmp = icmp

    def _start_download(self) -> None:
        """Start the download reader process in the client namespace; returns once the
        download's answer has begun."""
        argv = [sys.executable, "-m", "lab.legit", "download", self.victim, str(DOWNLOAD_PORT)]
        env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
        proc = subprocess.Popen(nsenter_argv(self.lab.client_ns, argv), stdout=subprocess.PIPE,
                                text=True, cwd=REPO_ROOT, env=env,
                                start_new_session=True)  # fmt: skip
        self._reader = proc
        first = read_line(proc.stdout, 10.0)
        if first != READY:
            raise RuntimeError(f"download: the reader did not start (said {first!r})")
        self._download.started_at = time.monotonic()
        self._reader_thread = threading.Thread(target=self._collect, args=(proc,), daemon=True,
                                               name="download-reports")  # fmt: skip
        self._reader_thread.start()

    def _collect(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                at, size = line.split()
                self._download.add(float(at), int(size))
        except (ValueError, OSError):
            pass  # the reader died mid-line: what it reported stays
        finally:
            self._download.end()

    async def _close(self) -> None:
        for sock in (self._udp, self._icmp):
            if sock is not None:
                self.loop.remove_reader(sock.fileno())
                sock.close()

    def close(self) -> None:
        if self._reader is not None:
            if self._reader.poll() is None:
                self._reader.kill()
            self._reader.wait()
            if self._reader_thread is not None:
                self._reader_thread.join(5.0)
            if self._reader.stdout is not None:
                self._reader.stdout.close()
            self._reader = None
        if self._thread.is_alive():
            with contextlib.suppress(Exception):
                self._call(self._close, 10.0)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5.0)
        if not self.loop.is_running():
            self.loop.close()

    # ---------- measuring ----------------------------------------------------------------

    def measure(self, duration_s: float, fresh_sources: Sequence[str] = ()) -> LegitResult:
        """Run every class for `duration_s`; returns once every attempt has ended.

        With `fresh_sources` (addresses of this generator's IP version, never used
        before), udp_new_client is measured too: one request from each, NEW_CLIENT_PER_S
        a second, as many as the interval holds and the addresses allow."""
        if duration_s <= 0:
            raise ValueError(f"duration_s must be positive, got {duration_s}")
        for address in fresh_sources:
            if ipaddress.ip_address(address).version != self.ip_version:
                raise ValueError(f"fresh_sources: {address} is not IPv{self.ip_version}")
        return self._call(lambda: self._measure(duration_s, list(fresh_sources)),
                          duration_s + 30.0)  # fmt: skip

    def download_over(self, t0: float, t1: float) -> tuple[float, float]:
        """The long download between monotonic times t0 and t1: (bytes/s, longest stall
        in s)."""
        if t1 <= t0:
            raise ValueError(f"download_over: t1 ({t1}) must be after t0 ({t0})")
        return self._download.over(t0, t1)

    async def _measure(self, duration_s: float, fresh: list[str]) -> LegitResult:
        t0 = time.monotonic()
        tcp, udp, dns, ping, new = await asyncio.gather(
            self._repeat(TCP_CONNECT_PER_S, duration_s, self._tcp_connect),
            self._repeat(UDP_REQUEST_PER_S, duration_s, self._udp_request),
            self._repeat(DNS_LOOKUP_PER_S, duration_s, self._dns_lookup),
            self._repeat(PING_PER_S, duration_s, self._ping),
            self._new_clients(duration_s, fresh),
        )
        bytes_s, stall = self._download.over(t0, t0 + duration_s)
        return LegitResult(self.ip_version, duration_s, tcp, udp, dns, ping, bytes_s, stall,
                           new)  # fmt: skip

    async def _new_clients(self, duration_s: float, fresh: list[str]) -> ClassResult | None:
        if not fresh:
            return None
        count = min(len(fresh), int(NEW_CLIENT_PER_S * duration_s))
        sources = iter(fresh[:count])
        # (count + 0.5) / rate: _repeat makes int(rate x duration) attempts, exactly count
        return await self._repeat(NEW_CLIENT_PER_S, (count + 0.5) / NEW_CLIENT_PER_S,
                                  lambda: self._new_client_request(next(sources)))  # fmt: skip

    async def _repeat(self, per_s: int, duration_s: float,
                      attempt: Callable[[], Awaitable[bool]]) -> ClassResult:  # fmt: skip
        start, tasks = time.monotonic(), []
        for i in range(int(per_s * duration_s)):
            delay = start + i / per_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(self._bounded(attempt)))
        done = await asyncio.gather(*tasks)
        return ClassResult(len(done), sum(done))

    @staticmethod
    async def _bounded(attempt: Callable[[], Awaitable[bool]]) -> bool:
        try:
            return await asyncio.wait_for(attempt(), ATTEMPT_TIMEOUT_S)
        except (TimeoutError, OSError, asyncio.IncompleteReadError):
            return False

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & 0xFFFF
        return self._seq

    async def _tcp_connect(self) -> bool:
        reader, writer = await asyncio.open_connection(self.victim, TCP_PORT)
        try:
            writer.write(b"GET / HTTP/1.0\r\nHost: victim\r\n\r\n")
            answer = await reader.read()
        finally:
            writer.close()
        return answer.startswith(b"HTTP/1.0 200") and answer.endswith(b"ok\n")

    async def _udp_request(self) -> bool:
        assert self._udp is not None
        seq = self._next_seq()
        waiter = self.loop.create_future()
        self._udp_waiting[seq] = waiter
        try:
            self._udp.send(struct.pack("!H", seq) + b"legit request")
            return bool(await waiter)
        finally:
            self._udp_waiting.pop(seq, None)

    async def _new_client_request(self, source: str) -> bool:
        """One request from a socket bound to `source`: a client never heard from before."""
        with socket.socket(self.family, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            sock.bind((source, 0))
            sock.connect((self.victim, UDP_SERVICE_PORT))
            await self.loop.sock_sendall(sock, b"\x00\x00new client")
            while True:
                answer = await self.loop.sock_recv(sock, 2048)
                if answer == b"ok:\x00\x00new client":
                    return True

    def _udp_readable(self) -> None:
        assert self._udp is not None
        with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
            while True:
                data = self._udp.recv(2048)
                if data.startswith(b"ok:") and len(data) >= 5:
                    (seq,) = struct.unpack_from("!H", data, 3)
                    waiter = self._udp_waiting.get(seq)
                    if waiter is not None and not waiter.done():
                        waiter.set_result(data[5:] == b"legit request")

    async def _dns_lookup(self) -> bool:
        with enter_netns(self.lab.victim_ns):  # the victim's own socket, as its resolver
            sock = socket.socket(self.family, socket.SOCK_DGRAM)
        with sock:
            sock.setblocking(False)
            sock.connect((self.resolver, DNS_PORT))
            qid = self._next_seq()
            qtype = minidns.TYPE_A if self.ip_version == 4 else minidns.TYPE_AAAA
            await self.loop.sock_sendall(sock, minidns.encode_query(qid, LOOKUP_NAME, qtype))
            while True:
                answer = await self.loop.sock_recv(sock, 2048)
                if minidns.answers(answer, qid, LOOKUP_NAME, qtype):
                    return True

    async def _ping(self) -> bool:
        assert self._icmp is not None
        seq = self._next_seq()
        payload = b"legit ping " + struct.pack("!d", time.time())
        if self.ip_version == 4:
            head = struct.pack("!BBHHH", 8, 0, 0, self._icmp_id, seq)
            packet = struct.pack("!BBHHH", 8, 0, _checksum(head + payload), self._icmp_id,
                                 seq) + payload  # fmt: skip
        else:  # the kernel fills in the ICMPv6 checksum
            packet = struct.pack("!BBHHH", 128, 0, 0, self._icmp_id, seq) + payload
        waiter = self.loop.create_future()
        self._icmp_waiting[seq] = waiter
        try:
            await self.loop.sock_sendto(self._icmp, packet, (self.victim, 0))
            return bool(await waiter)
        finally:
            self._icmp_waiting.pop(seq, None)

    def _icmp_readable(self) -> None:
        assert self._icmp is not None
        reply_type = 0 if self.ip_version == 4 else 129
        with contextlib.suppress(BlockingIOError):
            while True:
                data, peer = self._icmp.recvfrom(2048)
                if self.ip_version == 4:  # a raw IPv4 socket hands over the IP header too
                    data = data[(data[0] & 0x0F) * 4 :]
                if len(data) < 8 or peer[0] != self.victim:
                    continue
                kind, _code, _sum, ident, seq = struct.unpack_from("!BBHHH", data)
                waiter = self._icmp_waiting.get(seq)
                if (kind == reply_type and ident == self._icmp_id and waiter is not None
                        and not waiter.done()):  # fmt: skip
                    waiter.set_result(True)


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4) or sys.argv[1] != "download":
        raise SystemExit("usage: python -m lab.legit download ADDRESS [PORT]")
    read_download(sys.argv[2], int(sys.argv[3]) if len(sys.argv) == 4 else DOWNLOAD_PORT)
