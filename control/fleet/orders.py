"""Each node's fleet orders, their version and the long-poll wake-ups (in memory).

A node's version moves when its orders change (a fleet incident of one of its groups
opens, changes its vectors, ends), and when the node's config or pending operator
commands move (`bump`). Versions start from the wall clock in milliseconds, so after a
restart they are above anything an agent saw before: its next poll answers at once.

`close()` (the server is stopping) answers every held long-poll at once with the current
version; a poll arriving after that is held CLOSING_HOLD_S at most (an agent re-polls at
once on an answer: not holding it at all would make it spin until the server stops
listening), so the server waits for none of them longer than that.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from ftcontract.agent_api import FleetOrder

CLOSING_HOLD_S = 0.2


class OrderBook:
    def __init__(self) -> None:
        self._base = int(time.time() * 1000)
        self._versions: dict[int, int] = {}
        self._orders: dict[int, tuple[FleetOrder, ...]] = {}
        self._changed: dict[int, asyncio.Event] = {}
        self.closing = False

    def version(self, node_id: int) -> int:
        return self._versions.get(node_id, self._base)

    def orders(self, node_id: int) -> list[FleetOrder]:
        return list(self._orders.get(node_id, ()))

    def bump(self, node_id: int) -> None:
        """The node has something new (orders, config, commands): wake its long-poll."""
        self._versions[node_id] = self.version(node_id) + 1
        event = self._changed.pop(node_id, None)
        if event is not None:
            event.set()

    def set_orders(self, node_id: int, orders: list[FleetOrder]) -> bool:
        """Replace the node's orders; True (and a new version) when they changed."""
        new = tuple(sorted(orders, key=lambda o: o.incident_uuid))
        if self._orders.get(node_id, ()) == new:
            return False
        if new:
            self._orders[node_id] = new
        else:
            self._orders.pop(node_id, None)
        self.bump(node_id)
        return True

    def nodes_with_orders(self) -> list[int]:
        return list(self._orders)

    def close(self) -> None:
        """The server is stopping: answer every held long-poll now (their version as it
        is), and hold later ones briefly only."""
        self.closing = True
        for event in self._changed.values():
            event.set()
        self._changed.clear()

    async def wait(self, node_id: int, after: int, wait_s: float) -> int:
        """Return the node's version once it differs from `after`, or after wait_s (after
        CLOSING_HOLD_S at most while the server is stopping)."""
        if self.version(node_id) != after or wait_s <= 0:
            return self.version(node_id)
        if self.closing:
            await asyncio.sleep(min(wait_s, CLOSING_HOLD_S))
            return self.version(node_id)
        event = self._changed.setdefault(node_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await event.wait()
        return self.version(node_id)
