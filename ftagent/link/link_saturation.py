"""The verdict "the link is saturated", from one lost-packets rate per second.

Receive losses happen before XDP (the NIC's ring or FIFO overflowed, the host's backlog
was full): XDP drops cannot bring them down. While XDP can still keep up, its drops free
the ring and the losses stop within a second or two; when they keep rising at
`lost_pps` or more for `saturation_s` seconds in a row, the node cannot take what its
link delivers and only an upstream filter helps, so the agent says so in its metrics and
the control plane may escalate by BGP. The verdict clears after `clear_s` seconds in a
row below `lost_pps` (hysteresis: one quiet second during a flood must not withdraw an
escalation and announce it again).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SaturationSettings:
    lost_pps: float  # a second is lossy at this many lost packets per second or more
    saturation_s: int  # lossy seconds in a row that make the link saturated
    clear_s: int  # seconds in a row below lost_pps that clear it


class SaturationVerdict:
    def __init__(self, settings: SaturationSettings) -> None:
        self.settings = settings
        self.saturated = False
        self.lossy_run = 0  # lossy seconds in a row, up to now
        self.quiet_run = 0  # seconds in a row below the threshold, up to now

    def observe(self, lost_pps: float) -> bool:
        """One second's lost-packets rate; returns the verdict after it."""
        s = self.settings
        if lost_pps >= s.lost_pps:
            self.lossy_run += 1
            self.quiet_run = 0
            if self.lossy_run >= s.saturation_s:
                self.saturated = True
        else:
            self.quiet_run += 1
            self.lossy_run = 0
            if self.quiet_run >= s.clear_s:
                self.saturated = False
        return self.saturated
