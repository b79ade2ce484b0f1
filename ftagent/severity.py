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
in [severity]. Severity only goes up during an incident (escalation), never down.
"""

from __future__ import annotations

from ftagent.config import SeverityConfig
from ftcontract.vocabulary import SEVERITIES, Severity


def severity(
    cfg: SeverityConfig,
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
