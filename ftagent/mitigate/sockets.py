"""What the node's own kernel says about its sockets and SYN cookies (an `ss` equivalent).

Read from the calling THREAD's network namespace: /proc/thread-self/net/udp{,6} (not
/proc/net, which follows the process's main thread; the agent may run in a thread that
entered another namespace, as in the lab) and /proc/sys/net/ipv4/tcp_syncookies (per
namespace, resolved when opened).

- `bound_udp_ports()`: UDP ports with a bound, unconnected socket (a UDP service: a game
  or DNS server). A connected socket (the node's own query) is not a service.
- `tcp_syncookies()` / `set_tcp_syncookies()`: net.ipv4.tcp_syncookies (0 off, 1 on
  listen-queue overflow, 2 always).
"""

from __future__ import annotations

from pathlib import Path

PROC_NET = Path("/proc/thread-self/net")
SYNCOOKIES = Path("/proc/sys/net/ipv4/tcp_syncookies")
UDP_UNCONNECTED = "07"  # TCP_CLOSE: bound, no peer (a connected UDP socket is 01)


class SocketTableError(Exception):
    """A socket table could not be read or did not parse; the message names the file."""


def parse_udp_table(text: str, source: str) -> set[int]:
    """Local ports of unconnected sockets in one /proc/net/udp{,6} table."""
    ports: set[int] = set()
    for number, line in enumerate(text.splitlines()[1:], start=2):
        fields = line.split()
        if not fields:
            continue
        try:
            local, state = fields[1], fields[3]
            port = int(local.rsplit(":", 1)[1], 16)
        except (IndexError, ValueError) as exc:
            raise SocketTableError(f"{source} line {number}: not a socket entry: {line!r}") from exc
        if state == UDP_UNCONNECTED:
            ports.add(port)
    return ports


def bound_udp_ports(proc_net: Path = PROC_NET) -> set[int]:
    """Ports with a bound UDP service socket, IPv4 or IPv6 (either table may be absent:
    a kernel without IPv6)."""
    ports: set[int] = set()
    for name in ("udp", "udp6"):
        path = proc_net / name
        try:
            text = path.read_text()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise SocketTableError(f"cannot read {path}: {exc.strerror}") from exc
        ports |= parse_udp_table(text, str(path))
    return ports


def tcp_syncookies(path: Path = SYNCOOKIES) -> int | None:
    """net.ipv4.tcp_syncookies of this namespace; None when it cannot be read."""
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def set_tcp_syncookies(value: int, path: Path = SYNCOOKIES) -> None:
    if value not in (0, 1, 2):
        raise ValueError(f"tcp_syncookies is 0, 1 or 2, got {value}")
    path.write_text(f"{value}\n")
