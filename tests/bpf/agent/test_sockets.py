"""What the kernel says about the node's sockets and SYN cookies, read in the calling
thread's namespace (real sockets and a real sysctl in a throwaway lab namespace)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftagent.mitigate.guard import check_syncookies, udp_port_bound
from ftagent.mitigate.sockets import (
    SocketTableError,
    bound_udp_ports,
    parse_udp_table,
    tcp_syncookies,
)
from lab.netns import Lab
from tests.capability import require_root

pytestmark = [pytest.mark.lab]


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    require_root()
    with Lab.create() as made:
        yield made


def test_bound_service_ports_not_connected_ones_in_this_threads_namespace(lab: Lab) -> None:
    with lab.inside(lab.victim_ns):
        service = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        query = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with service, query:
        service.bind(("::", 0))
        query.connect((lab.attacker_v4, 53))  # the node's own query: not a service
        port, own = service.getsockname()[1], query.getsockname()[1]
        with lab.inside(lab.victim_ns):
            ports = bound_udp_ports()
            assert udp_port_bound(port) and not udp_port_bound(own)
        assert ports == {port}, ports
        # This thread is back in the root namespace, where the port is free (binding it
        # works): the victim's service does not show there.
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::", port))
        assert port not in bound_udp_ports()


def test_a_table_that_does_not_parse_names_the_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "udp").write_text("  sl  local_address rem_address st\n   0: garbage\n")
    with pytest.raises(SocketTableError, match=r"udp line 2: not a socket entry"):
        bound_udp_ports(tmp_path)
    assert parse_udp_table("header\n", "x") == set()


def test_syncookies_off_is_a_warning_unless_the_config_enables_them(lab: Lab) -> None:
    with lab.inside(lab.victim_ns):
        Path("/proc/sys/net/ipv4/tcp_syncookies").write_text("0\n")
        off = check_syncookies(enable=False)
        assert tcp_syncookies() == 0  # never changed silently
        on = check_syncookies(enable=True)
        now = tcp_syncookies()
    assert off.value == 0 and off.warning is not None and "tcp_syncookies is 0" in off.warning
    assert on.value == 1 and on.warning is None and now == 1
