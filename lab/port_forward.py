"""A TCP port of the root namespace's loopback forwarded to a port inside a lab namespace.

    with PortForward(lab.victim_ns, target_port=8080) as fwd:   # listen_port=0: any free
        fwd.url                                                  # http://127.0.0.1:<port>

The demo's control plane listens on the victim namespace's own loopback; this makes it
reachable from the machine running the demo (a browser) without giving any namespace a
route to another: each accepted connection is relayed by this process to a socket it
opened inside the namespace (a socket stays in the namespace it was made in). No packet
crosses namespaces, so a spoofed flood still has nowhere to go but the victim.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType

from lab.netns import enter_netns

CHUNK = 64 * 1024


class PortForward:
    def __init__(self, ns: str, target_port: int, listen_port: int = 0) -> None:
        self.ns = ns
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", listen_port))
        self.port: int = self._listener.getsockname()[1]
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._accept, name="port-forward", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> PortForward:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
            self._open.clear()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def __enter__(self) -> PortForward:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _connect_inside(self) -> socket.socket:
        with enter_netns(self.ns):  # only this thread, only while the socket is made
            upstream = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        upstream.settimeout(5.0)
        upstream.connect(("127.0.0.1", self.target_port))
        upstream.settimeout(None)
        return upstream

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            try:
                upstream = self._connect_inside()
            except OSError:
                client.close()  # the server inside is not up (yet): the browser retries
                continue
            with self._lock:
                self._open.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(CHUNK):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            # One direction ended: end the other too, and forget both.
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._lock:
                for s in (src, dst):
                    if s in self._open:
                        self._open.discard(s)
                        s.close()
