"""Fleet detection's settings: the defaults of every group (app settings) and one group's
overrides (table fleet_groups, REST and CLI).

threshold(metric) = max(floor(metric), multiplier x the group baseline's p99(metric));
floors are per METRICS name of ftcontract.classify, "amp_pps" standing for each
amplification source port separately (as the agent's `amp_port_pps`).
"""

from __future__ import annotations

import os
from typing import Annotated

import msgspec

from ftcontract.bounds import BurstFactor, Multiplier, NonNegative, Positive, RuleTtl
from ftcontract.classify import AMP_METRICS, METRICS
from ftcontract.severity import SeverityScale

# The floor names a group may set: every metric, and "amp_pps" for each amplification port.
FLOOR_NAMES: tuple[str, ...] = tuple(m for m in METRICS if m not in AMP_METRICS)
ConfirmSeconds = Annotated[int, msgspec.Meta(ge=1, le=60)]
Cooldown = Annotated[float, msgspec.Meta(gt=0, le=3600)]
Uplink = Annotated[float, msgspec.Meta(gt=0, le=10_000_000)]

DEFAULT_FLOORS: dict[str, float] = {
    "pps": 20_000.0,
    "bps": 500_000_000.0,
    "tcp_pps": 20_000.0,
    "udp_pps": 20_000.0,
    "icmp_pps": 5_000.0,
    "fragment_pps": 5_000.0,
    "syn_pps": 10_000.0,
    "ack_pps": 20_000.0,
    "rst_pps": 5_000.0,
    "amp_pps": 3_000.0,
}


class FleetThresholds(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """One group's overrides; a field left out takes the default (FleetSettings)."""

    multiplier: Multiplier | None = None
    burst_factor: BurstFactor | None = None
    confirm_s: ConfirmSeconds | None = None
    cooldown_s: Cooldown | None = None
    floors: Annotated[dict[str, NonNegative], msgspec.Meta(max_length=32)] | None = None


class EffectiveThresholds(msgspec.Struct, kw_only=True, frozen=True):
    """What a group is judged against: the defaults with its overrides applied."""

    multiplier: float
    burst_factor: float
    confirm_s: int
    cooldown_s: float
    floors: dict[str, float]

    def floor_of(self, metric: str) -> float:
        return self.floors["amp_pps" if metric in AMP_METRICS else metric]


class FleetSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    # off: no aggregation, no detection, no orders (the benchmark's comparison)
    enabled: bool = True
    # a second is evaluated when every expected member reported it, or this long after
    grace_s: Positive = 1.5
    # a member silent this long leaves the expected set
    stale_s: Positive = 10.0
    # the nodes' rules live this long in their kernel after the last answer listing them
    ttl_s: RuleTtl = 60.0
    # an agent's long-poll holds at most this long (GET /api/v1/agent/fleet?wait=S)
    max_wait_s: Annotated[float, msgspec.Meta(gt=0, le=300)] = 30.0
    multiplier: Multiplier = 3.0
    burst_factor: BurstFactor = 5.0
    # One second of a whole group's sum at or above threshold confirms (see docs/fleet.md:
    # a group's one-second sum is far more evidence than an agent's 100 ms window, and
    # a second confirmation second would make ~2 s + the evaluation lag the floor of the
    # time to the rule for a flood starting just before a second boundary).
    confirm_s: ConfirmSeconds = 1
    cooldown_s: Cooldown = 15.0
    floors: dict[str, NonNegative] = msgspec.field(default_factory=lambda: dict(DEFAULT_FLOORS))
    # baseline: rolling window, seconds before it replaces the floors, hour buckets
    window_s: Annotated[int, msgspec.Meta(ge=10, le=86400)] = 600
    min_samples: Annotated[int, msgspec.Meta(ge=1)] = 120
    hour_min_samples: Annotated[int, msgspec.Meta(ge=1)] = 600
    baseline_save_s: Positive = 60.0
    baseline_max_age_s: Positive = 86400.0
    # the engine evaluates due seconds this often
    tick_s: Annotated[float, msgspec.Meta(gt=0)] = 0.1
    # membership (nodes and their addresses, declared prefixes) is re-read this often
    refresh_s: Positive = 5.0
    # per-node figures of an incident are written at most this often
    nodes_every_s: Positive = 1.0
    # upstream: the group's sum at this share of its uplink_mbps announces FlowSpec
    escalate_uplink_share: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.8
    severity: SeverityScale = msgspec.field(default_factory=SeverityScale)

    def __post_init__(self) -> None:
        unknown = set(self.floors) - set(FLOOR_NAMES)
        if unknown:
            raise ValueError(f"floors: unknown metric {sorted(unknown)[0]!r}")

    def effective(self, overrides: FleetThresholds) -> EffectiveThresholds:
        return EffectiveThresholds(
            multiplier=overrides.multiplier or self.multiplier,
            burst_factor=overrides.burst_factor or self.burst_factor,
            confirm_s=overrides.confirm_s or self.confirm_s,
            cooldown_s=overrides.cooldown_s or self.cooldown_s,
            floors={**DEFAULT_FLOORS, **self.floors, **(overrides.floors or {})},
        )

    @classmethod
    def from_env(cls) -> FleetSettings:
        """FTCONTROL_FLEET=off turns fleet detection off (as `ftcontrol serve --no-fleet`)."""
        raw = os.environ.get("FTCONTROL_FLEET", "on").strip().lower()
        return cls(enabled=raw not in ("off", "0", "false", "no"))
