"""The agent against real floods: XDP on the lab's victim veth, trafgen in the attacker
namespace, the loop in-process (one agent for the module; each test waits for quiet).

Each flood: an incident of the right family opens, rules go into the kernel, the flood is
dropped in XDP, the incident resolves after the flood and the rules go away.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from typing import Any

import dpkt
import pytest

from ftagent.events import IncidentReport, RuleChange
from ftcontract.agent_api import Overrides, Sampling, Thresholds
from lab.agent_harness import RunningAgent, lab_config
from tests.capability import require, require_root

pytestmark = [pytest.mark.kernel, pytest.mark.lab, pytest.mark.paced]


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningAgent]:
    require_root()
    require(shutil.which("trafgen") is not None, "trafgen (netsniff-ng)")
    require(shutil.which("nsenter") is not None, "nsenter (util-linux)")
    from lab.netns import Lab

    state = tmp_path_factory.mktemp("agent-state")
    with Lab.create() as lab:
        ra = RunningAgent(lab, lab_config(lab.victim_if, state)).start()
        try:
            ra.wait_baseline()
            yield ra
        finally:
            ra.stop()
    assert ra.error is None, f"agent loop failed: {ra.error!r}"


def flood_and_check(
    ra: RunningAgent, profile: str, *, pps: int, packets: int
) -> tuple[IncidentReport, IncidentReport, list[RuleChange]]:
    """Run one bounded flood; return (opened incident, resolved incident, rule events)."""
    from lab.trafgen import run_flood

    ra.wait_for(ra.quiet, 15, "no incident and no rules before the flood")
    t0 = time.monotonic_ns()
    result = run_flood(ra.lab, profile, packets=packets, pps=pps, timeout_s=15)
    assert result.sent > packets // 2, f"trafgen sent too little: {result}"
    ra.wait_for(lambda: bool(ra.sink.of("resolved", t0)), 15, "the incident to resolve")
    ra.wait_for(ra.quiet, 10, "rules removed after the hold-down")
    opened = ra.sink.of("opened", t0)
    resolved = ra.sink.of("resolved", t0)
    rules = ra.sink.of("rule", t0)
    assert len(opened) == 1, [e.data.figures.family for e in opened]
    return opened[0].data, resolved[0].data, [e.data for e in rules]


def dropped_share_after_rules(ra: RunningAgent, since_ns: int) -> float:
    added = [e.at_ns for e in ra.sink.of("rule", since_ns) if e.data.action == "added"]
    assert added, "no rule was installed"
    # Windows that began after the rules went in and still saw flood traffic.
    ws = [w for w in ra.windows if w.end_ns - w.duration_s * 1e9 > added[0] and w.pps > 1000]
    assert ws, "the flood ended before the rules could act (make it longer)"
    return sum(w.dropped_pps * w.duration_s for w in ws) / sum(w.pps * w.duration_s for w in ws)


def assert_rules_gone(ra: RunningAgent, rules: list[RuleChange]) -> None:
    actions = [r.action for r in rules]
    assert "added" in actions and "removed" in actions, actions
    now = time.monotonic_ns()
    live = [r for r in ra.dp.list_rules() if r.expires_ns > now]
    assert live == [], [r.spec.describe() for r in live]


def test_udp_flood(running: RunningAgent) -> None:
    t0 = time.monotonic_ns()
    opened, resolved, rules = flood_and_check(running, "udp_flood", pps=40_000, packets=80_000)
    assert opened.figures.family == "udp_flood"
    assert (opened.figures.subtype or "").startswith("ipv4")
    assert any(r.kind == "signature" and r.spec.proto == 17 for r in rules)
    assert dropped_share_after_rules(running, t0) > 0.9
    assert resolved.reason == "cooled_down" and resolved.figures.peak_pps > 5000
    # every source the kernel counted carries its bits, not only its packets
    top = resolved.figures.top_sources
    assert top and all(s.bps > 0 for s in top if s.pps > 0), top
    assert_rules_gone(running, rules)
    # The attack's seconds were kept out of the baseline.
    assert running.agent is not None
    assert running.agent.baseline.stat("pps").p99 < 5000


def test_memcached_amplification_and_its_pcap(running: RunningAgent) -> None:
    t0 = time.monotonic_ns()
    opened, _, rules = flood_and_check(
        running, "memcached_amplification", pps=30_000, packets=60_000
    )
    f = opened.figures
    assert f.family == "memcached_amplification"
    assert f.evidence["amp_port"] == 11211
    assert f.source_count > 10  # spoofed reflectors, as sampled
    assert f.top_sources and f.top_sources[0].ip
    assert f.evidence["mean_packet_size"] > 1300
    sig = [r for r in rules if r.action == "added"]
    # dropped, but answers to the node's own (connected) sockets would pass
    assert [r.rule for r in sig] == ["signature proto=17 sport=11211 spare=connected"]
    assert dropped_share_after_rules(running, t0) > 0.95
    assert_rules_gone(running, rules)
    # The pcap: a standard file a pcap library reads, holding the attack's packets.
    pcaps = running.sink.of("pcap", t0)
    assert [p.data.uuid for p in pcaps] == [opened.uuid]
    with open(pcaps[0].data.path, "rb") as file:
        records = list(dpkt.pcap.Reader(file))
    assert len(records) > 50
    sports = []
    for _, raw in records:
        eth = dpkt.ethernet.Ethernet(raw)
        if isinstance(eth.data, dpkt.ip.IP) and isinstance(eth.data.data, dpkt.udp.UDP):
            sports.append(eth.data.data.sport)
    assert sports.count(11211) > 50


def test_syn_flood_from_random_sources(running: RunningAgent) -> None:
    t0 = time.monotonic_ns()
    opened, _, rules = flood_and_check(running, "syn_flood", pps=40_000, packets=80_000)
    assert opened.figures.family == "syn_flood"
    assert "many_sources" in (opened.figures.subtype or "")
    added = [r for r in rules if r.action == "added"]
    assert added and all(r.kind == "signature" for r in added), added
    # socket-aware, not a rate limit: SYNs to listeners go on to the kernel's SYN cookies,
    # SYNs to closed ports (all of this flood's: nothing listens on :80 here) drop
    assert added[0].spec.tcp_flags == 0x02 and added[0].spec.rate_pps is None
    assert added[0].spec.spare == "sockets"
    assert dropped_share_after_rules(running, t0) > 0.9
    assert_rules_gone(running, rules)


def test_icmp_flood(running: RunningAgent) -> None:
    t0 = time.monotonic_ns()
    opened, _, rules = flood_and_check(running, "icmp_flood", pps=30_000, packets=60_000)
    assert opened.figures.family == "icmp_flood"
    assert any(r.spec.proto == 1 for r in rules if r.action == "added")
    assert dropped_share_after_rules(running, t0) > 0.9
    assert_rules_gone(running, rules)


def test_ipv6_udp_flood(running: RunningAgent) -> None:
    t0 = time.monotonic_ns()
    opened, _, rules = flood_and_check(running, "udp6_flood", pps=40_000, packets=80_000)
    assert opened.figures.family == "udp_flood"
    assert (opened.figures.subtype or "").startswith("ipv6")
    assert opened.figures.evidence["ipv6_share"] > 0.9
    assert any(r.spec.proto == 17 for r in rules if r.action == "added")
    assert dropped_share_after_rules(running, t0) > 0.9
    assert_rules_gone(running, rules)


def test_benign_traffic_opens_nothing(running: RunningAgent) -> None:
    from lab.trafgen import run_flood

    running.wait_for(running.quiet, 15, "quiet before the benign run")
    t0 = time.monotonic_ns()
    result = run_flood(running.lab, "benign", packets=1500, pps=500, timeout_s=10)
    assert result.sent > 1000
    time.sleep(1.5)
    assert running.sink.of("opened", t0) == []
    assert running.sink.of("rule", t0) == []
    # It was seen, and it fed the baseline (quiet seconds are learned).
    seen = [w for w in running.windows if w.end_ns > t0 and w.pps > 100]
    assert seen, "the benign traffic never reached the victim interface"


def test_dry_run_from_the_control_plane_installs_nothing(running: RunningAgent) -> None:
    from lab.trafgen import run_flood

    running.wait_for(running.quiet, 15, "quiet before the dry run")
    running.sink.push_overrides(Overrides(mitigation_mode="dry_run"))
    assert running.agent is not None
    agent = running.agent
    running.wait_for(lambda: agent.mitigator.mode == "dry_run", 5, "the override to apply")
    try:
        t0 = time.monotonic_ns()
        run_flood(running.lab, "udp_flood", packets=40_000, pps=40_000, timeout_s=10)
        running.wait_for(lambda: bool(running.sink.of("resolved", t0)), 15, "resolution")
        opened = running.sink.of("opened", t0)
        assert [e.data.mitigation_mode for e in opened] == ["dry_run"]
        assert running.sink.status is not None
        assert running.sink.status.mitigation_mode == "dry_run"
        actions = {e.data.action for e in running.sink.of("rule", t0)}
        assert actions == {"would_add", "removed"} or actions == {"would_add"}, actions
        assert running.dp.list_rules() == []
        flood = [w for w in running.windows if w.end_ns > t0 and w.pps > 1000]
        assert flood and sum(w.dropped_pps for w in flood) == 0
    finally:
        running.sink.push_overrides(Overrides())  # cleared: back to the config's mode
        running.wait_for(lambda: agent.mitigator.mode == "on", 5, "mode back to on")
    # the heartbeat's status follows the mode in force once the override is cleared
    running.wait_for(
        lambda: running.sink.status is not None and running.sink.status.mitigation_mode == "on",
        5,
        "the status to report mode on",
    )


def test_sampling_overrides_from_the_control_plane_reach_the_kernel(
    running: RunningAgent,
) -> None:
    """idle_samples_per_s = 0 from the control plane turns the kernel's sampling off (no
    sample of benign traffic reaches the agent); a refused override (attack < idle) changes
    nothing; clearing the overrides restores [capture]'s targets and samples flow again."""
    from lab.trafgen import run_flood

    running.wait_for(running.quiet, 15, "quiet before the sampling override")
    assert running.agent is not None
    agent = running.agent.sampler
    cfg_idle, cfg_attack = agent.idle_samples_per_s, agent.attack_samples_per_s
    newest: list[int] = [0]

    def newest_sample(w: Any, a: Any) -> None:
        if a.sampler.recent:
            newest[0] = max(newest[0], a.sampler.recent[-1][0])

    def applied(before: int) -> None:
        running.wait_for(lambda: running.sink.pending_overrides is None, 5, "the override read")
        running.wait_for(lambda: len(running.windows) > before + 2, 5, "windows after it")

    running.after_window = newest_sample
    try:
        running.sink.push_overrides(
            Overrides(sampling=Sampling(idle_samples_per_s=0, attack_samples_per_s=500))
        )
        running.wait_for(lambda: agent.sample_one_in == 0, 5, "sampling off in the kernel")
        assert (agent.idle_samples_per_s, agent.attack_samples_per_s) == (0, 500)
        t0 = time.monotonic_ns()
        assert run_flood(running.lab, "benign", packets=600, pps=300, timeout_s=10).sent > 500
        time.sleep(0.5)
        assert newest[0] < t0, "a packet was sampled with sampling turned off"

        before = len(running.windows)
        running.sink.push_overrides(
            Overrides(sampling=Sampling(idle_samples_per_s=100, attack_samples_per_s=10))
        )
        applied(before)
        assert (agent.idle_samples_per_s, agent.attack_samples_per_s) == (0, 500)

        running.sink.push_overrides(Overrides())
        running.wait_for(lambda: agent.idle_samples_per_s == cfg_idle, 5, "config restored")
        assert agent.attack_samples_per_s == cfg_attack and agent.sample_one_in > 0
        t1 = time.monotonic_ns()
        run_flood(running.lab, "benign", packets=600, pps=300, timeout_s=10)
        running.wait_for(lambda: newest[0] > t1, 5, "samples flowing again")
    finally:
        running.after_window = None
        running.sink.push_overrides(Overrides())


def test_two_simultaneous_vectors_make_a_multi_vector_incident(running: RunningAgent) -> None:
    from lab.trafgen import start_flood, stop_flood

    running.wait_for(running.quiet, 15, "quiet before the multi-vector flood")
    t0 = time.monotonic_ns()
    floods = [
        start_flood(running.lab, "memcached_amplification", packets=60_000, pps=20_000),
        start_flood(running.lab, "syn_flood", packets=60_000, pps=20_000),
    ]
    try:
        running.wait_for(lambda: bool(running.sink.of("opened", t0)), 10, "an incident")
        for f in floods:
            f.wait(20)
    finally:
        for f in floods:
            stop_flood(f)
    running.wait_for(lambda: bool(running.sink.of("resolved", t0)), 15, "resolution")
    running.wait_for(running.quiet, 10, "rules removed")
    resolved = running.sink.of("resolved", t0)[0].data.figures
    assert resolved.family == "multi_vector", resolved.family
    assert set(resolved.subtype.split("+")) == {"memcached_amplification", "syn_flood"}
    added = {e.data.rule for e in running.sink.of("rule", t0) if e.data.action == "added"}
    assert "signature proto=17 sport=11211 spare=connected" in added
    assert any(r.startswith("signature proto=6") and "flags=0x02/0x12" in r for r in added), added
    assert len(running.sink.of("opened", t0)) == 1


def test_leaking_mitigation_is_widened(running: RunningAgent) -> None:
    """One source floods (-> an exact source rule), then a spoofed flood joins: the source
    rule leaks, so the mitigator widens to the UDP signature and records it."""
    from lab.trafgen import start_flood, stop_flood

    running.wait_for(running.quiet, 15, "quiet before the widening test")
    t0 = time.monotonic_ns()
    single = start_flood(running.lab, "udp_flood", packets=120_000, pps=30_000, spoof=False)
    spoofed = None
    try:
        running.wait_for(lambda: bool(running.sink.of("rule", t0)), 10, "the first rule")
        first = running.sink.of("rule", t0)[0].data
        assert first.kind == "src" and first.spec.network == "10.77.0.1/32", first
        spoofed = start_flood(running.lab, "udp_flood", packets=90_000, pps=30_000)
        running.wait_for(
            lambda: any(e.data.action == "widened" for e in running.sink.of("rule", t0)),
            10,
            "the mitigation to widen",
        )
    finally:
        stop_flood(single)
        if spoofed is not None:
            stop_flood(spoofed)
    running.wait_for(lambda: bool(running.sink.of("resolved", t0)), 15, "resolution")
    running.wait_for(running.quiet, 10, "rules removed")
    widened = [e.data for e in running.sink.of("rule", t0) if e.data.action == "widened"]
    assert widened[0].kind == "signature" and widened[0].spec.proto == 17
    resolved = running.sink.of("resolved", t0)[0].data
    assert "widened" in [m.action for m in resolved.history]


def test_cleared_overrides_return_to_the_nodes_own_config(running: RunningAgent) -> None:
    """Each override set from the control plane is complete: a key it no longer carries
    goes back to the local config, so an operator who clears an override really clears it."""
    assert running.agent is not None
    agent = running.agent
    settings = agent.reference.settings
    d = agent.cfg.detection
    local = (d.multiplier, d.burst_factor, d.cooldown_s, agent.mitigator.ttl_s, d.floors.pps)
    try:
        running.sink.push_overrides(
            Overrides(thresholds=Thresholds(multiplier=9.0, burst_factor=20.0, cooldown_s=42.0,
                                            floors={"pps": 123456.0}),
                      rule_ttl_s=77.0, allowlist=["198.51.100.0/24"])
        )  # fmt: skip
        running.wait_for(lambda: settings.multiplier == 9.0, 5, "overrides applied")
        assert agent.detector.burst_factor == 20.0 and agent.detector.cooldown_s == 42.0
        assert agent.mitigator.ttl_s == 77.0 and settings.floors.pps == 123456.0
        assert [str(n) for n in agent.protection.allowlist] == ["198.51.100.0/24"]
    finally:
        running.sink.push_overrides(Overrides())
    running.wait_for(lambda: settings.multiplier == local[0], 5, "config restored")
    s = settings
    now = (s.multiplier, s.burst_factor, s.cooldown_s, agent.mitigator.ttl_s, s.floors.pps)
    assert now == local
    assert agent.detector.burst_factor == local[1] and agent.detector.cooldown_s == local[2]
    assert [str(n) for n in agent.protection.allowlist] == list(agent.cfg.mitigation.allowlist)
