"""Real services for the collateral lab.

On the victim: an HTTP server (GET / answers at once; GET /download streams at
DOWNLOAD_BYTES_S until the client goes away) on ports 80 and 443, and a UDP
request/response service (each datagram answered with b"ok:" + the datagram). In the
client namespace: a DNS resolver on port 53 that the victim queries (its answers come
from UDP port 53 to the victim). All listen on both IPv4 and IPv6 (`::`, dual stack).
ICMP echo needs nothing: the victim's kernel answers.

The HTTP server runs as a process of its own per port in the victim namespace (`python
-m lab.services http PORT`), as a real server does: in the process that runs the benchmark it
shared the interpreter with the agent under test, whose garbage collections (50-215 ms
each, several per flood) and GIL stalled the download and showed up as collateral of
the mitigation. The UDP service and the resolver are sockets made inside their
namespace and served by threads of this process (a socket keeps its namespace whatever
thread uses it; their requests have a 1 s timeout, which a pause of this process does not
reach).

    with LabServices.start(lab) as services: ...
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

from lab import minidns
from lab.netns import enter_netns, nsenter_argv

HTTP_PORTS = (80, 443)
UDP_SERVICE_PORT = 9000
DNS_PORT = 53
DOWNLOAD_BYTES_S = 2 * 1024 * 1024  # a steady stream, cheap enough for a 2-core machine
DOWNLOAD_CHUNK = 32 * 1024
DOWNLOAD_MAX_S = 600.0  # bounded even if a client never goes away
ANSWER_V4, ANSWER_V6 = "192.0.2.80", "2001:db8::80"  # what the resolver answers
READY = "ready"  # what the HTTP server process prints once it listens
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 5.0
REPO_ROOT = Path(__file__).resolve().parent.parent  # `python -m lab.services` runs from here


class ServiceError(RuntimeError):
    pass


class ServiceLab(Protocol):
    @property
    def victim_ns(self) -> str: ...
    @property
    def client_ns(self) -> str: ...


class _DualStackHTTPServer(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    daemon_threads = True
    allow_reuse_address = True
    # A real server's accept backlog, not socketserver's 5: on a loaded machine this
    # in-process server accepts late, and a backlog of 5 overflows (TcpExt
    # ListenOverflows) and refuses new connections during any flood, which would count
    # as collateral of the mitigation when it is this server's own limit.
    request_queue_size = 128

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # a client that gave up (its 1 s timeout, under a flood) is no error
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    timeout = 10  # a handler thread never waits for ever on a silent client

    def do_GET(self) -> None:
        if self.path == "/download":
            self._download()
            return
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _download(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        chunk = b"\x5a" * DOWNLOAD_CHUNK
        start = time.monotonic()
        sent = 0
        with contextlib.suppress(OSError):
            while time.monotonic() - start < DOWNLOAD_MAX_S:
                self.wfile.write(chunk)
                sent += len(chunk)
                ahead = sent / DOWNLOAD_BYTES_S - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the lab's output is its results, not an access log


def dual_stack_udp(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.bind(("::", port))
    sock.settimeout(0.2)  # so the serving thread notices close()
    return sock


@dataclass
class UdpResponder:
    """Answers each datagram on `sock` with answer(datagram) (None: no answer)."""

    sock: socket.socket
    answer: Callable[[bytes], bytes | None]
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> UdpResponder:
        self._thread = threading.Thread(target=self._serve, daemon=True,
                                        name=f"udp-{self.sock.getsockname()[1]}")  # fmt: skip
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                reply = self.answer(data)
            except ValueError:
                continue  # malformed request: no answer, like a real server
            if reply is not None:
                with contextlib.suppress(OSError):
                    self.sock.sendto(reply, peer)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        self.sock.close()


def udp_service_answer(data: bytes) -> bytes:
    return b"ok:" + data


def dns_answer(data: bytes) -> bytes:
    return minidns.encode_answer(data, ANSWER_V4, ANSWER_V6)


def serve_http(port: int) -> None:
    """The HTTP server process: listen on `port` in this process's namespace, print
    READY, serve until stdin closes (the parent closed it, or went away)."""
    server = _DualStackHTTPServer(("::", port), _Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
                     name="http").start()  # fmt: skip
    print(READY, flush=True)
    sys.stdin.read()  # returns at EOF
    server.shutdown()
    server.server_close()


def start_http(ns: str, port: int) -> subprocess.Popen[str]:
    """Start the HTTP server process for `port` in namespace `ns`; returns once it
    listens."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "lab.services", "http", str(port)]
    proc = subprocess.Popen(nsenter_argv(ns, argv), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=REPO_ROOT, env=env,
                            start_new_session=True)  # fmt: skip
    ready = read_line(proc.stdout, START_TIMEOUT_S)
    if ready != READY:
        stop_http(proc)
        raise ServiceError(f"the HTTP server for :{port} in {ns!r} did not start ({ready!r})")
    return proc


def read_line(stream: IO[str] | None, timeout_s: float) -> str:
    """The next line of `stream` without its newline ("" at EOF or after timeout_s)."""
    if stream is None:
        return ""
    got: list[str] = []
    reader = threading.Thread(target=lambda: got.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return got[0].strip() if got else ""


def stop_http(proc: subprocess.Popen[str]) -> None:
    """End the HTTP server process (closing its stdin; killed if it lingers)."""
    if proc.stdin is not None:
        with contextlib.suppress(OSError):
            proc.stdin.close()
    try:
        proc.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


@dataclass
class LabServices:
    victim_ns: str
    http: dict[int, subprocess.Popen[str]]  # port -> its HTTP server process, on the victim
    udp_service: UdpResponder
    resolver: UdpResponder
    _closed: bool = False

    @classmethod
    def start(cls, lab: ServiceLab) -> LabServices:
        """Bind the UDP sockets inside their namespaces, serve them from threads, and
        start an HTTP server process per HTTP_PORTS port on the victim."""
        with enter_netns(lab.victim_ns):
            udp_sock = dual_stack_udp(UDP_SERVICE_PORT)
        try:
            with enter_netns(lab.client_ns):
                dns_sock = dual_stack_udp(DNS_PORT)
        except BaseException:
            udp_sock.close()
            raise
        services = cls(lab.victim_ns, {}, UdpResponder(udp_sock, udp_service_answer).start(),
                       UdpResponder(dns_sock, dns_answer).start())  # fmt: skip
        try:
            for port in HTTP_PORTS:
                services.open_http(port)
        except BaseException:
            services.close()
            raise
        return services

    def open_http(self, port: int) -> None:
        """Start the HTTP server on `port` (one of HTTP_PORTS) if it is not running."""
        if port not in HTTP_PORTS:
            raise ServiceError(f"port: one of {HTTP_PORTS}, got {port}")
        if port not in self.http:
            self.http[port] = start_http(self.victim_ns, port)

    def close_http(self, port: int) -> None:
        """Stop the HTTP server on `port`: nothing listens there until open_http (the
        other port's server, and the download it serves, go on)."""
        proc = self.http.pop(port, None)
        if proc is not None:
            stop_http(proc)

    def close(self) -> None:
        """Stop every service. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for port in list(self.http):
            self.close_http(port)
        self.udp_service.close()
        self.resolver.close()

    def __enter__(self) -> LabServices:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:  # fmt: skip
        self.close()


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "http" or not sys.argv[2].isdigit():
        raise SystemExit("usage: python -m lab.services http PORT  (inside the victim namespace)")
    serve_http(int(sys.argv[2]))
