"""The real thing: attach to a veth in a namespace lab, send bounded bursts with trafgen,
check counters, rules through the command line, detach (also when `ftagent run` gets
SIGTERM or SIGINT)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ftagent.bpf import pins
from ftagent.bpf.loader import AlreadyAttachedError, LoadOptions, Settings, XdpDatapath
from ftagent.bpf.xdp import ifindex_of, xdp_prog_id
from ftagent.datapath import RuleSpec
from lab.bpf_testrun import TEST_PIN_ROOT
from lab.netns import Lab
from lab.trafgen import run_flood
from tests.capability import require, require_root

pytestmark = [pytest.mark.kernel, pytest.mark.lab, pytest.mark.paced]

REPO = Path(__file__).resolve().parents[2]
FTAGENT = str(Path(sys.executable).with_name("ftagent"))


def prog_on_link(lab: Lab) -> int:
    with lab.inside(lab.victim_ns):
        return xdp_prog_id(ifindex_of(lab.victim_if))


@pytest.fixture
def lab() -> Iterator[Lab]:
    require_root()
    import shutil

    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    with Lab.create() as lab:
        yield lab


@pytest.fixture
def attached(lab: Lab) -> Iterator[tuple[Lab, XdpDatapath]]:
    with lab.inside(lab.victim_ns):
        dp = XdpDatapath.open(lab.victim_if, LoadOptions(), Settings(src_insert_one_in=1))
    try:
        yield lab, dp
    finally:
        with lab.inside(lab.victim_ns):
            dp.close()


def settle(dp: XdpDatapath, total: int, timeout: float = 3.0) -> None:
    """Wait until the program has seen at least `total` packets (veth delivery is async)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and dp.read_counters().packets["total"] < total:
        time.sleep(0.02)


def test_attach_count_burst_and_detach(attached: tuple[Lab, XdpDatapath]) -> None:
    lab, dp = attached
    info = dp.attach_info
    assert info.interface == lab.victim_if and info.mode in ("native", "generic")
    assert prog_on_link(lab) == info.prog_id != 0
    base = dp.read_counters()
    syn = run_flood(lab, "syn_flood", packets=3000, timeout_s=10)
    icmp = run_flood(lab, "icmp_flood", packets=1000, timeout_s=10)
    udp6 = run_flood(lab, "udp6_flood", packets=1500, timeout_s=10)
    frag = run_flood(lab, "fragment_flood", packets=500, timeout_s=10)
    assert (syn.sent, icmp.sent, udp6.sent, frag.sent) == (3000, 1000, 1500, 500)
    settle(dp, base.packets["total"] + 6000)
    c = dp.read_counters()
    assert c.tcp_flags["syn"] - base.tcp_flags["syn"] == 3000
    assert c.packets["fragment"] - base.packets["fragment"] == 500
    # ICMP: our 1000 echo requests plus any ICMPv6 the kernel itself sends (ND/MLD).
    assert 1000 <= c.packets["icmp"] - base.packets["icmp"] <= 1020
    assert c.packets["ipv6"] - base.packets["ipv6"] >= 1500
    assert c.packets["udp"] - base.packets["udp"] == 1500 + 500
    assert c.verdicts["passed"] - base.verdicts["passed"] == c.packets["total"] - base.packets[
        "total"]
    # Spoofed SYN sources landed in the top-source map (inserted on first packet here).
    assert len(dp.top_sources(100_000)) >= 2900


def test_rules_drop_real_traffic(attached: tuple[Lab, XdpDatapath]) -> None:
    lab, dp = attached
    spec = RuleSpec("signature", proto=17, src_port=11211)
    dp.add_rule(spec, ttl_s=60)
    base = dp.read_counters()
    res = run_flood(lab, "memcached_amplification", packets=2000, timeout_s=10)
    settle(dp, base.packets["total"] + res.sent)
    c = dp.read_counters()
    assert c.verdicts["drop_signature"] - base.verdicts["drop_signature"] == 2000
    assert c.udp_src_port_packets["11211"] - base.udp_src_port_packets["11211"] == 2000
    [rule] = dp.list_rules()
    assert rule.dropped_packets == 2000 and rule.dropped_bytes == 2000 * 1400


def test_second_attach_is_refused(attached: tuple[Lab, XdpDatapath]) -> None:
    lab, dp = attached
    with lab.inside(lab.victim_ns), pytest.raises(AlreadyAttachedError):
        XdpDatapath.open(lab.victim_if)
    assert prog_on_link(lab) == dp.attach_info.prog_id


def test_close_detaches_and_unpins(lab: Lab) -> None:
    with lab.inside(lab.victim_ns):
        dp = XdpDatapath.open(lab.victim_if, LoadOptions(mode="generic"))
    assert dp.attach_info.mode == "generic"
    pins = Path(dp.attach_info.extra["pin_dir"])
    assert (pins / "rsrc_v4").exists()
    with lab.inside(lab.victim_ns):
        dp.close()
    assert prog_on_link(lab) == 0
    assert not pins.exists()


def test_cli_block_rules_unblock_act_on_running_datapath(
    attached: tuple[Lab, XdpDatapath], tmp_path: Path
) -> None:
    lab, dp = attached
    cfg = tmp_path / "ftagent.toml"
    cfg.write_text(f'[agent]\ninterface = "{lab.victim_if}"\n')

    def ftagent(*args: str) -> subprocess.CompletedProcess[str]:
        return lab.run(lab.victim_ns, [FTAGENT, *args], capture_output=True, text=True,
                       timeout=60)

    r = ftagent("block", lab.attacker_v4, "--ttl", "120", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    r = ftagent("block", "2001:db8::/32", "--interface", lab.victim_if)
    assert r.returncode == 0, r.stderr
    specs = {rule.spec.describe() for rule in dp.list_rules()}
    assert specs == {f"src {lab.attacker_v4}/32", "prefix 2001:db8::/32"}

    base = dp.read_counters()
    res = run_flood(lab, "benign", packets=60, pps=2000, timeout_s=10)
    settle(dp, base.packets["total"] + res.sent)
    c = dp.read_counters()
    assert c.verdicts["drop_src"] - base.verdicts["drop_src"] == 60

    r = ftagent("rules", "--config", str(cfg))
    assert r.returncode == 0
    line = next(x for x in r.stdout.splitlines() if x.startswith("src "))
    assert lab.attacker_v4 in line and " 60 " in f" {line} "

    r = ftagent("unblock", lab.attacker_v4, "--config", str(cfg))
    assert r.returncode == 0
    r = ftagent("unblock", lab.attacker_v4, "--config", str(cfg))
    assert r.returncode == 1 and "no src rule" in r.stderr
    assert [rule.spec.describe() for rule in dp.list_rules()] == ["prefix 2001:db8::/32"]
    r = ftagent("block", "not-an-ip", "--interface", lab.victim_if)
    assert r.returncode == 2 and "not an address" in r.stderr


def test_cli_without_agent_says_so(lab: Lab) -> None:
    r = lab.run(lab.victim_ns, [FTAGENT, "rules", "--interface", lab.victim_if],
                capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "no running agent" in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_ftagent_run_detaches_and_keeps_the_pins(
    lab: Lab, sig: signal.Signals, tmp_path: Path
) -> None:
    # The command owns the signals (the library installs no handler): it stops the loop
    # and detaches; the pins stay, so that the next start reuses the build.
    cfg = tmp_path / "ftagent.toml"
    cfg.write_text(f'[agent]\ninterface = "{lab.victim_if}"\nstate_dir = "{tmp_path}"\n'
                   '[http]\nenabled = false\n')
    log = tmp_path / "run.log"
    path = pins.pin_dir(lab.victim_if)
    with open(log, "w") as out:
        proc = lab.popen(lab.victim_ns, [FTAGENT, "run", "--config", str(cfg)], stdout=out,
                         stderr=out, cwd=REPO)
    try:
        deadline = time.monotonic() + 90
        while "agent started" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        prog_id = prog_on_link(lab)
        assert prog_id == pins.prog_id_at(path / pins.XDP_PROG) != 0
        os.kill(proc.pid, sig)
        assert proc.wait(timeout=20) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        keep = path.exists()
        pins.remove(path)
    assert prog_on_link(lab) == 0
    assert keep


def test_native_unsupported_falls_back_to_generic(lab: Lab) -> None:
    # The loopback driver has no native XDP: "auto" must fall back and say so. (The lab's
    # own loopback, so nothing outside the test sees the program.)
    with lab.inside(lab.victim_ns):
        from ftagent.bpf.loader import DatapathError

        root = TEST_PIN_ROOT / lab.victim_ns  # "lo" is in every namespace: a root of its own
        with pytest.raises(DatapathError, match="native"):
            XdpDatapath.open("lo", LoadOptions(mode="native", pin_root=root))
        dp = XdpDatapath.open("lo", LoadOptions(pin_root=root))
        try:
            assert dp.attach_info.mode == "generic"
            assert "native" in dp.attach_info.extra["fallback"]
            assert prog_id_of("lo") == dp.attach_info.prog_id
        finally:
            dp.close()
        assert prog_id_of("lo") == 0


def prog_id_of(ifname: str) -> int:
    return xdp_prog_id(ifindex_of(ifname))

