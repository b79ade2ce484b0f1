"""`LinkWatch`: the monitored interface's receive losses and the saturation verdict, once
a second for the loop's metric point, /health and /metrics.

Reading is `link_losses`, deciding is `link_saturation`; this module ties them to the
loop's second and keeps the last state for the views. A link whose statistics cannot be
read never stops the loop: its state says so and reports no losses and no saturation
(the control plane then escalates on bps share alone).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from ftagent.link.link_losses import LinkCounters, LinkStatsError, RxLosses, lost_pps
from ftagent.link.link_saturation import SaturationSettings, SaturationVerdict

log = logging.getLogger("ftagent.link")


@dataclass(frozen=True, slots=True)
class LinkState:
    """What the views show; replaced whole each second (the HTTP thread reads it)."""

    readable: bool = False  # the interface's statistics were read this second
    rx_lost_pps: float = 0.0
    saturated: bool = False
    saturated_since: float | None = None  # Unix time the verdict last became true
    losses: RxLosses | None = None  # the last cumulative counters read
    error: str = ""


class LinkWatch:
    def __init__(
        self,
        interface: str,
        settings: SaturationSettings,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.interface = interface
        self.verdict = SaturationVerdict(settings)
        self.wall = wall
        self.counters: LinkCounters | None = None
        self.prev: RxLosses | None = None
        self.state = LinkState()

    def start(self) -> None:
        """Open the netlink reader; call it from the thread that will poll (its network
        namespace is the one read)."""
        try:
            self.counters = LinkCounters(self.interface)
            self.prev = self.counters.read()
        except LinkStatsError as exc:
            log.warning("link losses not watched: %s", exc)
            self.state = LinkState(error=str(exc))
            return
        self.state = LinkState(readable=True, losses=self.prev)

    def second(self) -> LinkState:
        """Read the counters, judge this second and keep the state."""
        cur, error = self._read()
        rate = lost_pps(self.prev, cur) if self.prev is not None and cur is not None else 0.0
        if cur is not None:
            self.prev = cur
        was = self.verdict.saturated
        now_saturated = self.verdict.observe(rate)
        since = self.state.saturated_since
        if now_saturated and not was:
            since = self.wall()
            log.warning(
                "link %s saturated: %.0f packets/s lost for %d s in a row",
                self.interface,
                rate,
                self.verdict.lossy_run,
                extra={"event": "link_saturated", "rx_lost_pps": round(rate, 1)},
            )
        elif was and not now_saturated:
            log.info("link %s no longer saturated", self.interface, extra={"event": "link_cleared"})
        self.state = LinkState(
            readable=cur is not None,
            rx_lost_pps=rate,
            saturated=now_saturated,
            saturated_since=since if now_saturated else None,
            losses=self.prev,
            error=error,
        )
        return self.state

    def _read(self) -> tuple[RxLosses | None, str]:
        if self.counters is None:
            return None, self.state.error
        try:
            return self.counters.read(), ""
        except LinkStatsError as exc:
            if str(exc) != self.state.error:  # once per distinct failure, not every second
                log.warning("link losses: %s", exc)
            return None, str(exc)

    def close(self) -> None:
        if self.counters is not None:
            self.counters.close()
            self.counters = None
