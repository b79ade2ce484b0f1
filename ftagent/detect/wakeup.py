"""The kernel's wake-ups, waited for in a thread of their own.

The XDP program sends one wake-up per short slot per CPU once a CPU's packet count in the
slot reaches what the agent asked for (`Datapath.set_wake_pps`, from
`detector.wake_pps`). `Waker` blocks on them (the GIL is released while it waits) and sets
`woken`, on which the loop waits between its polls: a flood far above threshold is then
confirmed in a window that ends milliseconds after it began, not at the next poll.
"""

from __future__ import annotations

import logging
import threading

from ftagent.datapath import Datapath, Wake

log = logging.getLogger("ftagent.wakeup")

WAIT_S = 0.25  # how long one wait blocks: stop() is noticed within this


class Waker:
    def __init__(self, datapath: Datapath) -> None:
        self.dp = datapath
        self.woken = threading.Event()
        self.last: Wake | None = None
        self.count = 0  # wake-ups received (for tests and /metrics-style counting)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ftagent-wake", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop waiting (before the data path closes: the buffer is freed there)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5 * WAIT_S + 5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                got = self.dp.wait_wake(WAIT_S)
            except Exception as exc:  # the loop's polls go on without wake-ups
                log.warning("kernel wake-ups unavailable, polling only: %s", exc)
                return
            if got:
                self.last = got[-1]
                self.count += len(got)
                self.woken.set()
