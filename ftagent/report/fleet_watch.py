"""`FleetWatcher`: a thread beside the reporter's sender that keeps a long poll open on
`GET /api/v1/agent/fleet?after=V&wait=S` and hands every answer to the agent loop.

The control plane answers at once when the node's version is not V, else holds the
request until it moves or S seconds pass. Every answer lists the fleet orders in force
(the loop renews their rules' TTL on each) and says whether to fetch /config now (the
config version moved, or operator commands wait: block commands take this path).

- The first request, and the first after a failure or a hint, asks with wait=0 (answer at
  once): the node learns the state without waiting out a long poll. A poll never waits
  longer than a third of the shortest order's TTL (answers are what renew it).
- A failure backs off (0.5 s doubling to 30 s; never spins) and is logged once per outage.
- A 404 is an older control plane without /fleet: logged once at INFO, retried every
  10 minutes (or at once when a metrics reply shows a fleet version: it has /fleet now).
- `hint(version)`: the metrics post's reply carried the node's fleet version. When it is
  not the watcher's, the watcher re-polls at once (a sleeping watcher wakes; one stuck in
  a request for more than a second gets a quick poll beside it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ftagent.report.client import AgentClient, RejectedError
from ftcontract import agent_api

log = logging.getLogger("ftagent.fleet")

WatchState = Literal["starting", "watching", "backing_off", "absent", "stopped"]


@dataclass(frozen=True, slots=True)
class WatchTimings:
    wait_s: int = 20  # [control] fleet_wait_s
    retry_min_s: float = 0.5
    retry_max_s: float = 30.0
    absent_retry_s: float = 600.0  # a control plane without /fleet is asked again this often
    # a request outstanding this long while a hint says the version moved is stuck
    stuck_after_s: float = 1.0


class FleetWatcher:
    def __init__(
        self,
        client: AgentClient,
        deliver: Callable[[agent_api.FleetOrders], None],
        fetch_config: Callable[[], None],
        timings: WatchTimings = WatchTimings(),
    ) -> None:
        self._client = client
        self._deliver_orders = deliver
        self._fetch_config = fetch_config
        self.timings = timings
        self.version: int | None = None
        self.state: WatchState = "starting"
        self.answers = 0
        self._config_version: int | None = None
        # Polls end in time to renew the shortest order's TTL three times over, whatever
        # the control plane's TTL and fleet_wait_s (an answer is what renews it).
        self._renew_within = timings.wait_s
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._urgent = True  # the next request asks wait=0
        self._request_since: float | None = None
        self._quick_running = False
        self._thread: threading.Thread | None = None

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ftagent-fleet", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop watching; a long poll in flight is abandoned (daemon thread) after a
        short join, then the client is closed."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(1.0)
            self._thread = None
        self.state = "stopped"
        self._client.close()

    # ---- from the reporter's sender thread ---------------------------------------------

    def hint(self, version: int) -> None:
        """The metrics reply's fleet version: re-poll at once when it is not ours."""
        with self._lock:
            if version == self.version:
                return
            self._urgent = True
            since = self._request_since
            stuck = since is not None and time.monotonic() - since > self.timings.stuck_after_s
            quick = stuck and not self._quick_running and not self._stop.is_set()
            if quick:
                self._quick_running = True
        self._wake.set()
        if quick:
            quick_poll = threading.Thread(target=self._quick_poll, name="ftagent-fleet-quick")
            quick_poll.daemon = True
            quick_poll.start()

    # ---- the watcher thread ------------------------------------------------------------

    def _run(self) -> None:
        delay = self.timings.retry_min_s
        outage = False
        while not self._stop.is_set():
            with self._lock:
                wait = 0 if self._urgent else min(self.timings.wait_s, self._renew_within)
                self._urgent = False
                after = self.version if self.version is not None else 0
                self._request_since = time.monotonic()
            self._wake.clear()
            try:
                orders = self._client.fleet(after, wait)
            except Exception as exc:  # TransientError, RejectedError, or unforeseen
                self._forget_request()
                if self._stop.is_set():
                    break  # stop() closed the client under the poll
                self._urgent = True  # the first poll after a failure answers at once
                if isinstance(exc, RejectedError) and exc.status == 404:
                    self._absent()
                    continue
                if not outage:
                    if isinstance(exc, RejectedError):
                        log.error("the control plane refused the fleet poll: %s", exc)
                    else:
                        log.warning("fleet orders unreachable: %s; retrying with back-off", exc)
                    outage = True
                self.state = "backing_off"
                self._sleep(delay)
                delay = min(delay * 2, self.timings.retry_max_s)
                continue
            self._forget_request()
            if outage or self.state in ("absent", "starting"):
                log.info("watching fleet orders (version %d)", orders.version)
            outage = False
            delay = self.timings.retry_min_s
            self.state = "watching"
            self._take(orders)

    def _absent(self) -> None:
        """An older control plane without /fleet: ask again rarely (or when hinted)."""
        if self.state != "absent":
            log.info(
                "the control plane has no fleet orders (older version): not watching; "
                "asking again in %.0f s",
                self.timings.absent_retry_s,
            )
        self.state = "absent"
        self._sleep(self.timings.absent_retry_s)

    def _quick_poll(self) -> None:
        """A poll with wait=0 beside a long poll that looks stuck."""
        try:
            self._take(self._client.fleet(self.version or 0, 0))
        except Exception as exc:  # the long poll goes on; it reports failures
            log.debug("quick fleet poll failed: %s", exc)
        finally:
            with self._lock:
                self._quick_running = False

    def _forget_request(self) -> None:
        with self._lock:
            self._request_since = None

    def _sleep(self, seconds: float) -> None:
        """Wait, unless stopped or hinted (a hint means: ask now)."""
        self._wake.wait(seconds)
        self._wake.clear()

    def _take(self, orders: agent_api.FleetOrders) -> None:
        ttls = [o.ttl_s for o in orders.orders]
        with self._lock:
            self.version = orders.version
            self.answers += 1
            self._renew_within = max(1, int(min(ttls) / 3)) if ttls else self.timings.wait_s
            moved = orders.config_version != self._config_version
            self._config_version = orders.config_version
        self._deliver_orders(orders)
        if moved or orders.pending_commands > 0:
            self._fetch_config()
