"""The group detector: confirmation over consecutive seconds, burst at once, the shared
classifier's family, cool-down only on complete seconds, severity only up."""

from __future__ import annotations

from control.fleet.aggregation import GroupSecond, NodeSecond, sum_seconds
from control.fleet.detector import GroupDetector, Step, thresholds_for
from control.fleet.settings import FleetSettings, FleetThresholds
from ftcontract.severity import SeverityScale

T0 = 1_765_150_000
# floors: 3,000 pps per amplification port, 20,000 pps overall
EFF = FleetSettings().effective(FleetThresholds(confirm_s=2, cooldown_s=3))
THRESHOLDS = thresholds_for(EFF, {})


def dns_second(second: int, per_node: float, nodes: int = 10, missing: int = 0) -> GroupSecond:
    reporters = {
        n: NodeSecond(
            {"pps": per_node, "bps": per_node * 4000, "udp_pps": per_node,
             "amp_53_pps": per_node, "amp_pps": per_node},
            {"53": per_node},
            0.0,
        )
        for n in range(nodes - missing)
    }  # fmt: skip
    return sum_seconds(second, reporters, range(nodes - missing, nodes))


def observe(d: GroupDetector, gs: GroupSecond) -> Step:
    return d.observe(gs, THRESHOLDS, EFF, {}, {}, SeverityScale())


def test_confirmed_after_consecutive_seconds_with_the_shared_family() -> None:
    d = GroupDetector()
    assert observe(d, dns_second(T0, 900)).kind == "quiet"  # 9,000 pps of DNS > 3,000
    step = observe(d, dns_second(T0 + 1, 900))
    assert step.kind == "opened"
    assert d.classification is not None
    assert d.classification.family == "dns_amplification"
    assert d.started_at == T0 + 1


def test_by_default_the_first_second_above_threshold_confirms() -> None:
    """The defaults: one second of the group's sum above threshold (9,000 pps of DNS from
    port 53 against 3,000, well below the 5 x burst) opens the fleet incident."""
    eff = FleetSettings().effective(FleetThresholds())
    d = GroupDetector()
    step = d.observe(dns_second(T0, 900), thresholds_for(eff, {}), eff, {}, {}, SeverityScale())
    assert step.kind == "opened"
    assert d.started_at == T0


def test_burst_confirms_at_once() -> None:
    d = GroupDetector()
    assert observe(d, dns_second(T0, 2000)).kind == "opened"  # 20,000 > 5 x 3,000


def test_quiet_complete_second_resets_confirmation_and_is_learnable() -> None:
    d = GroupDetector()
    observe(d, dns_second(T0, 900))
    step = observe(d, dns_second(T0 + 1, 10))
    assert step.kind == "quiet" and step.learnable
    assert observe(d, dns_second(T0 + 2, 900)).kind == "quiet"


def test_incomplete_seconds_do_not_count_towards_the_cool_down() -> None:
    d = GroupDetector()
    observe(d, dns_second(T0, 2000))
    kinds = [observe(d, dns_second(T0 + 1 + i, 10, missing=3)).kind for i in range(10)]
    assert kinds == ["ongoing"] * 10  # below threshold but members missing: unknown
    assert not observe(d, dns_second(T0 + 20, 10, missing=3)).learnable
    kinds = [observe(d, dns_second(T0 + 30 + i, 10)).kind for i in range(3)]
    assert kinds == ["ongoing", "ongoing", "resolved"]
    assert d.state == "quiet"


def test_severity_only_rises() -> None:
    d = GroupDetector()
    observe(d, dns_second(T0, 30_000))  # 300 kpps: high by size
    assert d.severity == "high"
    observe(d, dns_second(T0 + 1, 400))
    assert d.severity == "high"
