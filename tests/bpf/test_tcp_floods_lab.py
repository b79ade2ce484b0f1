"""SYN and ACK floods against the program attached to the lab's victim veth, with a real
client connecting throughout: SYNs to the listener go to the kernel (its own SYN cookies
answer them), the ACK that carries a cookie passes, a spoofed ACK flood is dropped."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from ftagent.bpf.loader import LoadOptions, XdpDatapath
from ftagent.datapath import Rule, RuleSpec
from lab.bpf_testrun import TEST_PIN_ROOT
from lab.netns import Lab
from lab.trafgen import start_flood, stop_flood
from tests.capability import require, require_root

pytestmark = [pytest.mark.kernel, pytest.mark.lab, pytest.mark.paced]

SYN = RuleSpec("signature", proto=6, tcp_flags=0x02, tcp_flags_mask=0x12, spare="sockets")
NOT_SYN = RuleSpec("signature", proto=6, tcp_flags=0x00, tcp_flags_mask=0x02, spare="sockets")
CONNECTS = 20
FLOOD_PACKETS = 30_000


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_root()
    import shutil

    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    with Lab.create() as made:
        yield made


def echo_server(sock: socket.socket, stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            conn, _ = sock.accept()
        except TimeoutError:
            continue
        with conn:
            conn.settimeout(2)
            with contextlib.suppress(OSError):
                conn.sendall(conn.recv(100))


def syncookies_sent(lab: Lab) -> int:
    out = lab.run(
        lab.victim_ns,
        ["nstat", "-az", "TcpExtSyncookiesSent"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return int(
        next(
            line.split()[1] for line in out.splitlines() if line.startswith("TcpExtSyncookiesSent")
        )
    )


def rule(dp: XdpDatapath, spec: RuleSpec) -> Rule:
    return next(r for r in dp.list_rules() if r.spec == spec)


@pytest.mark.parametrize("syncookies", [1, 2], ids=["cookies-on-overflow", "cookies-always"])
def test_real_client_connects_during_syn_and_ack_floods(lab: Lab, syncookies: int) -> None:
    lab.run(lab.victim_ns, ["sysctl", "-q", f"net.ipv4.tcp_syncookies={syncookies}"], check=True)
    with lab.inside(lab.victim_ns):
        dp = XdpDatapath.open(lab.victim_if, LoadOptions(pin_root=TEST_PIN_ROOT))
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    stop = threading.Event()
    floods: list[subprocess.Popen[str]] = []
    worker = threading.Thread(target=echo_server, args=(server, stop), daemon=True)
    try:
        server.bind((lab.victim_v4, 80))
        server.listen(16)
        worker.start()
        dp.add_rule(SYN, ttl_s=120)
        dp.add_rule(NOT_SYN, ttl_s=120)
        cookies_before = syncookies_sent(lab)
        floods = [
            start_flood(lab, "syn_flood", packets=FLOOD_PACKETS, pps=20_000),
            start_flood(lab, "ack_flood", packets=FLOOD_PACKETS, pps=20_000),
        ]
        answered = 0
        for n in range(CONNECTS):
            with lab.inside(lab.attacker_ns):
                client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            with client:
                client.settimeout(3)
                client.connect((lab.victim_v4, 80))
                client.sendall(b"hello %d" % n)
                if client.recv(100) == b"hello %d" % n:
                    answered += 1
            time.sleep(0.02)
        for proc in floods:
            proc.wait(timeout=60)
        assert answered == CONNECTS
        time.sleep(0.3)
        syn, not_syn = rule(dp, SYN), rule(dp, NOT_SYN)
        # The spoofed ACKs (to a port with no socket) are all dropped; every ACK of the
        # real connections, including the one that carries a SYN cookie, is spared.
        assert not_syn.dropped_packets >= FLOOD_PACKETS
        assert not_syn.spared_packets >= 2 * CONNECTS
        # The SYNs to the listener went to the kernel (spared, not dropped).
        assert syn.spared_packets >= FLOOD_PACKETS + CONNECTS
        assert syn.dropped_packets == 0
        if syncookies == 2:  # every handshake used a cookie, and completed through XDP
            assert syncookies_sent(lab) - cookies_before >= CONNECTS
    finally:
        for proc in floods:
            stop_flood(proc)
        stop.set()
        if worker.is_alive():
            worker.join(timeout=5)
        server.close()
        with lab.inside(lab.victim_ns):
            dp.close()
