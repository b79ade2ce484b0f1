"""ExaBGP's API process: joins ExaBGP's pipes to ftcontrol's socket.

ExaBGP runs this program and reads API commands from its stdout, and writes peer state
and command acknowledgements (JSON lines, "done", "error") to its stdin. This program
connects to the Unix socket ftcontrol listens on and copies bytes both ways. When ExaBGP
closes its side the relay exits. When ftcontrol's side closes (ftcontrol stopped or was
killed) the relay stops ExaBGP, its parent, before it exits: ExaBGP by itself keeps running
without its API process, and a speaker must never outlive the ftcontrol that owns what it
announces (its sessions close, and peers withdraw everything by protocol).

Standard library only: ExaBGP runs it as `python3 relay.py SOCKET`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable


def _copy(
    read: Callable[[int], bytes], write: Callable[[bytes], object], *, stop_parent: bool
) -> None:
    """Copy until EOF or an error; then end the whole program (both directions)."""
    try:
        while True:
            chunk = read(65536)
            if not chunk:
                break
            write(chunk)
    except OSError:
        pass
    if stop_parent:
        with contextlib.suppress(ProcessLookupError):
            os.kill(os.getppid(), signal.SIGTERM)
    os._exit(0)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: relay.py SOCKET\n")
        return 2
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(argv[1])
    stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()

    def write_stdout(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(stdout_fd, view) :]

    threading.Thread(
        target=_copy,
        args=(lambda n: os.read(stdin_fd, n), sock.sendall),
        kwargs={"stop_parent": False},  # ExaBGP closed our stdin: it is going already
        daemon=True,
    ).start()
    _copy(sock.recv, write_stdout, stop_parent=True)  # ftcontrol gone: ExaBGP goes too
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
