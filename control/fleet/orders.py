"""Each node's fleet orders, their version and the long-poll wake-ups (in memory).

A node's version moves when its orders change (a fleet incident of one of its groups
opens, changes its vectors, ends), and when the node's config or pending operator
commands move (`bump`). Versions start from the wall clock in milliseconds, so after a
restart they are above anything an agent saw before: its next poll answers at once.

`close()` (the server is stopping) answers every held long-poll at once with the current
version, and every later poll without holding it: the server does not wait for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from ftcontract.agent_api import FleetOrder


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
        is), and hold none from here on."""
        self.closing = True
        for event in self._changed.values():
            event.set()
        self._changed.clear()

    async def wait(self, node_id: int, after: int, wait_s: float) -> int:
        """Return the node's version once it differs from `after`, or after wait_s (at
        once while the server is stopping)."""
        if self.version(node_id) != after or wait_s <= 0 or self.closing:
            return self.version(node_id)
        event = self._changed.setdefault(node_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await event.wait()
        return self.version(node_id)
