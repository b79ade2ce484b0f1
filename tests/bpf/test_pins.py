"""The pinned build across restarts, on a veth in a namespace lab: a restart with the same
sources reuses it (no compile, same program, rules and counters kept); pins that are not
exactly the wanted build are replaced whole; a dead agent's program of another build is
swapped for the new one in one step."""

from __future__ import annotations

import ipaddress
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from ftagent.bpf import libbpf, pins
from ftagent.bpf.loader import LoadOptions, XdpDatapath
from ftagent.bpf.program import DEFAULT_TOP_SOURCES_SIZE
from ftagent.bpf.xdp import ifindex_of, xdp_attached_mode, xdp_prog_id
from ftagent.datapath import RuleSpec
from lab.bpf_testrun import TEST_PIN_ROOT, XDP_DROP, XDP_PASS, test_run
from lab.netns import Lab
from tests.capability import require_root

pytestmark = [pytest.mark.kernel, pytest.mark.lab]

REPO = Path(__file__).resolve().parents[2]
ATTACKER = "192.0.2.66"
SRC_RULE = RuleSpec("src", ipaddress.ip_network(f"{ATTACKER}/32"))
SIG_RULE = RuleSpec("signature", proto=17, dst_port=4242)


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_root()
    with Lab.create() as lab:
        yield lab
    pins.remove(pins.pin_dir(lab.victim_if, TEST_PIN_ROOT))


def frame(src: str, dport: int = 9) -> bytes:
    return bytes(Ether() / IP(src=src, dst="10.77.0.2") / UDP(sport=1, dport=dport) / b"x")


def open_dp(lab: Lab, *, keep_pins: bool = False,
            top_sources_size: int = DEFAULT_TOP_SOURCES_SIZE) -> XdpDatapath:
    options = LoadOptions(pin_root=TEST_PIN_ROOT, keep_pins=keep_pins,
                          top_sources_size=top_sources_size)
    with lab.inside(lab.victim_ns):
        return XdpDatapath.open(lab.victim_if, options)


def close_dp(lab: Lab, dp: XdpDatapath) -> None:
    with lab.inside(lab.victim_ns):
        dp.close()


def map_id(path: Path, name: str) -> int:
    fd = libbpf.obj_get(path / name)
    try:
        return int(libbpf.fdinfo(fd)["map_id"])
    finally:
        os.close(fd)


def test_restart_reuses_the_build_with_its_rules_and_counters(lab: Lab) -> None:
    dp = open_dp(lab, keep_pins=True)
    try:
        first = dp.attach_info
        assert first.extra["start"].startswith("cold")
        dp.add_rule(SRC_RULE, ttl_s=120)
        dp.add_rule(SIG_RULE, ttl_s=120)
        for _ in range(3):
            assert test_run(dp.prog_fd, frame(ATTACKER)).retval == XDP_DROP
        rules = {r.spec: r for r in dp.list_rules()}
        seen = dp.read_counters().verdicts["drop_src"]
        assert rules[SRC_RULE].dropped_packets == 3 and seen >= 3
        path = dp.pin_path
        stats_id = map_id(path, "stats")
    finally:
        close_dp(lab, dp)
    with lab.inside(lab.victim_ns):
        assert xdp_prog_id(ifindex_of(lab.victim_if)) == 0  # a stop detaches
    assert pins.read_manifest(path) is not None  # and keeps the build

    dp = open_dp(lab)
    try:
        again = dp.attach_info
        assert again.extra["start"].startswith("warm")  # nothing compiled
        assert again.prog_id == first.prog_id
        with lab.inside(lab.victim_ns):
            assert xdp_prog_id(ifindex_of(lab.victim_if)) == first.prog_id
        assert map_id(path, "stats") == stats_id
        kept = {r.spec: r for r in dp.list_rules()}
        assert set(kept) == {SRC_RULE, SIG_RULE}
        assert kept[SRC_RULE].expires_ns == rules[SRC_RULE].expires_ns  # same TTL, in force
        assert kept[SRC_RULE].dropped_packets == 3
        assert dp.read_counters().verdicts["drop_src"] == seen  # counters go on from there
        assert test_run(dp.prog_fd, frame(ATTACKER)).retval == XDP_DROP
        assert dp.read_counters().verdicts["drop_src"] == seen + 1
    finally:
        close_dp(lab, dp)
    assert not path.exists()  # keep_pins off: the pins go with the close


def _tamper(path: Path, how: str) -> None:
    if how == "missing map":
        (path / "rsig").unlink()
    elif how == "no manifest":  # a build that did not finish
        (path / pins.MANIFEST).unlink()
    elif how == "other layout":  # a map of another size under a wanted name
        (path / "config").unlink()
        fd = libbpf.map_create(libbpf.BPF_MAP_TYPE_ARRAY, "config", 4, 8, 1)
        try:
            libbpf.obj_pin(fd, path / "config")
        finally:
            os.close(fd)


@pytest.mark.parametrize("how", ["other sources", "missing map", "no manifest", "other layout"])
def test_pins_that_are_not_the_wanted_build_are_replaced_whole(lab: Lab, how: str) -> None:
    dp = open_dp(lab, keep_pins=True, top_sources_size=2048)
    try:
        old_prog = dp.attach_info.prog_id
        dp.add_rule(SRC_RULE, ttl_s=120)
        path = dp.pin_path
        old_maps = {name: map_id(path, name) for name in ("stats", "rsrc_v4", "top_v4")}
    finally:
        close_dp(lab, dp)
    _tamper(path, how)
    size = 4096 if how == "other sources" else 2048
    dp = open_dp(lab, top_sources_size=size)
    try:
        assert dp.attach_info.extra["start"].startswith("cold")
        assert dp.attach_info.prog_id != old_prog
        assert dp.list_rules() == []  # nothing of the old build is used
        assert all(map_id(path, name) != old for name, old in old_maps.items())
        manifest = pins.read_manifest(path)
        assert manifest is not None and manifest.top_sources_size == size
        assert pins.check(path, manifest, manifest.source_hash) == ""
        assert dp.maps.tables["top_v4"].max_entries == size
        assert test_run(dp.prog_fd, frame(ATTACKER)).retval == XDP_PASS
    finally:
        close_dp(lab, dp)


DYING_AGENT = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ftagent.bpf.loader import LoadOptions, XdpDatapath
    dp = XdpDatapath.open(sys.argv[1], LoadOptions(mode="generic", top_sources_size=1024,
                                                   pin_root=Path(sys.argv[2])))
    print(dp.attach_info.prog_id, flush=True)
    time.sleep(600)
""")


def test_a_dead_agents_other_build_is_replaced_in_one_step(lab: Lab) -> None:
    agent = lab.popen(lab.victim_ns, [sys.executable, "-c", DYING_AGENT, lab.victim_if,
                                      str(TEST_PIN_ROOT)],
                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert agent.stdout is not None
        line = agent.stdout.readline()
        assert line, agent.stderr.read() if agent.stderr else ""
        old = int(line)
        os.kill(agent.pid, signal.SIGKILL)
        agent.wait(timeout=10)
    finally:
        if agent.poll() is None:
            agent.kill()
            agent.wait()
    with lab.inside(lab.victim_ns):
        assert xdp_prog_id(ifindex_of(lab.victim_if)) == old  # left attached by the dead
    dp = open_dp(lab)  # another top_sources_size: another build
    try:
        info = dp.attach_info
        assert info.extra["start"].startswith("cold")
        assert info.extra["replaced_prog_id"] == str(old)
        assert info.mode == "generic"  # replaced in the mode it was attached in
        with lab.inside(lab.victim_ns):
            ifindex = ifindex_of(lab.victim_if)
            assert xdp_prog_id(ifindex) == info.prog_id != old
            assert xdp_attached_mode(ifindex) == 2  # one program (4 would mean several)
        deadline = time.monotonic() + 5  # the old program is freed (RCU: allow a moment)
        while True:
            try:
                os.close(libbpf.prog_fd_by_id(old))
            except OSError:
                break
            assert time.monotonic() < deadline, "the dead agent's program is still loaded"
            time.sleep(0.05)
    finally:
        close_dp(lab, dp)


NO_LLVM_AGENT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from ftagent.bpf.loader import LoadOptions, XdpDatapath
    from ftagent.datapath import RuleSpec
    dp = XdpDatapath.open(sys.argv[1], LoadOptions(pin_root=Path(sys.argv[2])))
    try:
        dp.add_rule(RuleSpec("signature", proto=17, dst_port=7), 30)
        dp.read_counters(), dp.top_sources(10), dp.list_rules(), dp.set_sample_rate(1)
        dp.poll_samples()
        libs = {line.split()[-1] for line in open("/proc/self/maps") if "/" in line}
        print(dp.attach_info.extra["start"], "bcc" in sys.modules,
              sorted(p for p in libs if "bcc" in p or "LLVM" in p or "clang" in p))
    finally:
        dp.close()
""")


def test_the_agent_process_never_holds_bcc_or_llvm(lab: Lab) -> None:
    # A cold start: the build happens, but in the compiling child process.
    r = lab.run(lab.victim_ns, [sys.executable, "-c", NO_LLVM_AGENT, lab.victim_if,
                                str(TEST_PIN_ROOT)],
                capture_output=True, text=True, cwd=REPO, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    # start, bcc imported, bcc/LLVM/clang libraries mapped
    assert r.stdout.strip() == "cold (compiled) False []", r.stdout
