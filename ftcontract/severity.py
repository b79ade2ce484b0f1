"""Severity of an incident from its peak, against the baseline and in absolute size.

| severity | peak / baseline p99 (pps or bps) | or peak pps | or peak bps |
| --- | --- | --- | --- |
| critical | >= 50 | >= 1,000,000 | >= 10 Gbps |
| high | >= 10 | >= 250,000 | >= 1 Gbps |
| medium | >= 3 | >= 50,000 | >= 200 Mbps |
| low | anything else that was confirmed | | |

The highest row any column reaches wins; a multi_vector attack is raised one step (it
takes more to mitigate). The ratio uses max(baseline p99, floor) as the reference, so a
near-zero baseline does not turn every blip into "critical". Every number is configurable
(the agent's [severity], a fleet group's settings). Severity only goes up during an
incident (escalation), never down.
"""

from __future__ import annotations

import msgspec

from ftcontract.bounds import Positive
from ftcontract.vocabulary import SEVERITIES, Severity


class SeverityScale(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Peak against baseline (ratio) or absolute size: the highest row that matches wins."""

    medium_ratio: Positive = 3.0
    high_ratio: Positive = 10.0
    critical_ratio: Positive = 50.0
    medium_pps: Positive = 50_000.0
    high_pps: Positive = 250_000.0
    critical_pps: Positive = 1_000_000.0
    medium_bps: Positive = 200_000_000.0
    high_bps: Positive = 1_000_000_000.0
    critical_bps: Positive = 10_000_000_000.0


def severity(
    cfg: SeverityScale,
    peak_pps: float,
    peak_bps: float,
    ref_pps: float,
    ref_bps: float,
    multi_vector: bool = False,
) -> Severity:
    """`ref_*`: the reference rate (max(baseline p99, floor)) for the ratio column."""
    ratio = max(
        peak_pps / ref_pps if ref_pps > 0 else 0.0, peak_bps / ref_bps if ref_bps > 0 else 0.0
    )
    level = 0
    rows = (
        (3, cfg.critical_ratio, cfg.critical_pps, cfg.critical_bps),
        (2, cfg.high_ratio, cfg.high_pps, cfg.high_bps),
        (1, cfg.medium_ratio, cfg.medium_pps, cfg.medium_bps),
    )
    for lvl, r, pps, bps in rows:
        if ratio >= r or peak_pps >= pps or peak_bps >= bps:
            level = lvl
            break
    if multi_vector:
        level = min(level + 1, 3)
    return SEVERITIES[level]
