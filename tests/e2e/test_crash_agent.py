"""Fail-open after an agent crash, and a clean restart, in the namespace lab.

A subprocess in the victim namespace does what `ftagent run` does at attack time: it
attaches the XDP data path (maps and program pinned) and installs drop rules with a
short TTL. It is then SIGKILLed, so no close(), no atexit, no signal handler runs: the
program stays attached with its rules. Real UDP traffic from the attacker namespace and
BPF_PROG_TEST_RUN on the attached program show it still drops while the TTL lasts and
stops dropping when the TTL passes, with nobody left to remove the rules (the kernel
compares each rule's expiry itself). A restart of the same build then adopts the dead
agent's program as it is (never detached, no compile) with its maps and rules; a build
that differs replaces it in one step (tests/bpf/test_pins.py).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from ftagent.bpf import pins
from ftagent.bpf.loader import XdpDatapath
from ftagent.bpf.pins import DEFAULT_PIN_ROOT, XDP_PROG, prog_id_at
from ftagent.bpf.xdp import ifindex_of, xdp_attached_mode, xdp_prog_id
from lab.bpf_testrun import XDP_DROP, XDP_PASS, egress_filter_count, test_run
from lab.netns import Lab
from tests.capability import require_root

pytestmark = [pytest.mark.kernel, pytest.mark.lab, pytest.mark.paced]

TTL_S = 4.0
PORT = 40_000
BURST = 200

CRASHING_AGENT = textwrap.dedent(
    """
    import ipaddress, sys, time
    from ftagent.bpf.loader import LoadOptions, XdpDatapath
    from ftagent.datapath import RuleSpec
    iface, attacker, ttl = sys.argv[1], sys.argv[2], float(sys.argv[3])
    dp = XdpDatapath.open(iface, LoadOptions(mode="generic"))
    dp.add_rule(RuleSpec("src", ipaddress.ip_network(attacker + "/32")), ttl)
    dp.add_rule(RuleSpec("signature", proto=17, dst_port=PORT), ttl)
    print(dp.attach_info.prog_id, time.monotonic(), flush=True)
    time.sleep(600)
    """.replace("PORT", str(PORT))
)


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_root()
    with Lab.create() as lab:
        yield lab


def _prog_fd(prog_id: int) -> int:
    from ftagent.bpf import libbpf

    return int(libbpf.lib().bpf_prog_get_fd_by_id(prog_id))


def _verdict(prog_id: int, lab: Lab) -> int:
    frame = bytes(
        Ether(src=lab.attacker_mac, dst=lab.victim_mac)
        / IP(src=lab.attacker_v4, dst=lab.victim_v4)
        / UDP(sport=12345, dport=PORT)
        / (b"x" * 32)
    )
    fd = _prog_fd(prog_id)
    assert fd >= 0, "the attached program is gone"
    try:
        return test_run(fd, frame).retval
    finally:
        os.close(fd)


def _received(lab: Lab, count: int) -> int:
    """Send `count` UDP datagrams attacker -> victim; how many the victim's socket got."""
    with lab.inside(lab.victim_ns):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx:
        rx.bind((lab.victim_v4, PORT))
        rx.settimeout(0.3)
        with lab.inside(lab.attacker_ns):
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        with tx:
            for i in range(count):
                tx.sendto(b"%d" % i, (lab.victim_v4, PORT))
                if i % 50 == 0:
                    time.sleep(0.01)  # bounded and gentle: 200 datagrams
        got = 0
        try:
            while True:
                rx.recv(64)
                got += 1
        except TimeoutError:
            pass
        return got


def test_rules_expire_in_the_kernel_after_sigkill_and_restart_replaces_cleanly(
    lab: Lab,
) -> None:
    agent = lab.popen(
        lab.victim_ns,
        [sys.executable, "-c", CRASHING_AGENT, lab.victim_if, lab.attacker_v4, str(TTL_S)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(Path(__file__).resolve().parents[2]),
    )
    try:
        assert agent.stdout is not None
        line = agent.stdout.readline()
        assert line, agent.stderr.read() if agent.stderr else ""
        prog_id, installed_at = int(line.split()[0]), float(line.split()[1])
        with lab.inside(lab.victim_ns):
            ifindex = ifindex_of(lab.victim_if)
            assert xdp_prog_id(ifindex) == prog_id
        # The rules are in: every datagram is dropped (ARP is not IP and passes).
        assert _received(lab, BURST) == 0
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(timeout=10)
        assert agent.returncode == -signal.SIGKILL
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()

    # Dead agent: the program is still attached and still drops, while the TTL lasts.
    with lab.inside(lab.victim_ns):
        assert xdp_prog_id(ifindex) == prog_id
    pin_path = DEFAULT_PIN_ROOT / lab.victim_if
    assert prog_id_at(pin_path / XDP_PROG) == prog_id
    assert time.monotonic() < installed_at + TTL_S - 0.5, "too slow to see the rules live"
    assert _verdict(prog_id, lab) == XDP_DROP
    assert _received(lab, BURST) == 0

    # The TTL passes. Nobody removes the rules; the kernel stops applying them.
    time.sleep(max(0.0, installed_at + TTL_S + 0.3 - time.monotonic()))
    assert _verdict(prog_id, lab) == XDP_PASS
    assert _received(lab, BURST) >= BURST * 0.95
    with lab.inside(lab.victim_ns):
        assert xdp_prog_id(ifindex) == prog_id  # still attached: fail-open, not detach
        assert egress_filter_count(ifindex) == 1  # its TC egress program is left too

    # Restart with the same build: the dead agent's program is adopted where it runs
    # (never detached, nothing compiled), with its maps and the rules in them.
    with lab.inside(lab.victim_ns):
        dp = XdpDatapath.open(lab.victim_if)
    try:
        info = dp.attach_info
        assert info.extra["adopted_prog_id"] == str(prog_id)
        assert info.extra["start"].startswith("warm")
        assert info.mode == "generic"  # the mode it was attached in
        with lab.inside(lab.victim_ns):
            assert xdp_prog_id(ifindex) == info.prog_id == prog_id
            assert xdp_attached_mode(ifindex) == 2  # one program (4 would mean several)
            assert egress_filter_count(ifindex) == 1  # replaced, not a second one
        assert prog_id_at(pin_path / XDP_PROG) == prog_id
        kept = dp.list_rules()  # the dead agent's rules, expired in the kernel by now
        assert {r.spec.kind for r in kept} == {"src", "signature"}
        assert all(r.expires_ns < time.monotonic_ns() for r in kept)
        assert sum(r.dropped_packets for r in kept) > 0  # and their counters
        # A second live agent on the same interface is refused (it holds the lock).
        second = lab.run(
            lab.victim_ns,
            [sys.executable, "-c", CRASHING_AGENT, lab.victim_if, lab.attacker_v4, "1"],
            capture_output=True, text=True, timeout=60,
            cwd=str(Path(__file__).resolve().parents[2]),
        )  # fmt: skip
        assert second.returncode != 0 and "another ftagent" in second.stderr, second.stderr
        with lab.inside(lab.victim_ns):
            assert xdp_prog_id(ifindex) == info.prog_id
    finally:
        with lab.inside(lab.victim_ns):
            dp.close()
    with lab.inside(lab.victim_ns):
        assert xdp_prog_id(ifindex) == 0
        assert egress_filter_count(ifindex) == 0
    assert not pin_path.exists()


AGENT_CONFIG = """
[agent]
interface = "{iface}"
state_dir = "{state}"
log_format = "json"
[baseline]
window_s = 60
min_samples = 2
recompute_interval_s = 1
[http]
port = 9477
"""


def test_corrupt_state_file_gives_a_fresh_baseline_and_says_why(lab: Lab, tmp_path: Path) -> None:
    """`ftagent run` on a state dir whose baseline.json was cut short by a crash."""
    import json

    from ftagent.config import BaselineConfig
    from ftagent.detect.baseline import Baseline

    state = tmp_path / "state"
    state.mkdir()
    (state / "baseline.json").write_text('{"version": 1, "saved_at": 1795800000.0, "poi')
    cfg = tmp_path / "ftagent.toml"
    cfg.write_text(AGENT_CONFIG.format(iface=lab.victim_if, state=state))
    log_path = tmp_path / "agent.log"
    with open(log_path, "w") as log_file:
        proc = lab.popen(
            lab.victim_ns,
            [sys.executable, "-m", "ftagent.cli", "run", "--config", str(cfg)],
            stdout=log_file, stderr=log_file,
            cwd=str(Path(__file__).resolve().parents[2]),
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while "agent started" not in log_path.read_text():
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.1)
        time.sleep(2.5)  # a couple of one-second samples into the fresh baseline
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        # `ftagent run` keeps its pins for the next start: this lab's go with it
        pins.remove(pins.pin_dir(lab.victim_if))
    records = [json.loads(line) for line in log_path.read_text().splitlines()]
    [warning] = [r for r in records if "saved baseline" in json.dumps(r)]
    text = json.dumps(warning)
    assert "corrupt: not valid JSON" in text and "learning a fresh one" in text
    assert warning.get("level", warning.get("levelname", "")).lower().startswith("warn")
    # The clean stop wrote a good file over the corrupt one.
    restored, why = Baseline.load_with_reason(state / "baseline.json", BaselineConfig())
    assert restored is not None and why == "" and restored.samples >= 1
