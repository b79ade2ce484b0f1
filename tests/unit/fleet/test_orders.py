"""The order book: versions move on changes only; a long-poll wakes on a change."""

from __future__ import annotations

import asyncio

from control.fleet.orders import OrderBook
from ftcontract.agent_api import FleetOrder, FleetVector

ORDER = FleetOrder(
    incident_uuid="0b7e4c1e-3f3a-4d5e-9c1b-2a6f0e8d9c7b",
    family="dns_amplification",
    vectors=[FleetVector(family="dns_amplification", group="udp", amp_port=53)],
    ttl_s=60.0,
    group="workspace",
)


def test_version_moves_only_when_orders_change() -> None:
    book = OrderBook()
    v0 = book.version(7)
    assert book.set_orders(7, [ORDER])
    v1 = book.version(7)
    assert v1 > v0
    assert not book.set_orders(7, [ORDER])
    assert book.version(7) == v1
    assert book.set_orders(7, [])
    assert book.version(7) > v1 and book.orders(7) == []


async def test_wait_answers_at_once_on_another_version_and_wakes_on_change() -> None:
    book = OrderBook()
    assert await book.wait(7, after=-1, wait_s=30) == book.version(7)
    current = book.version(7)
    waiter = asyncio.create_task(book.wait(7, after=current, wait_s=30))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    book.set_orders(7, [ORDER])
    assert await asyncio.wait_for(waiter, 5) == book.version(7) != current


async def test_wait_gives_the_same_version_when_nothing_changed() -> None:
    book = OrderBook()
    current = book.version(3)
    assert await book.wait(3, after=current, wait_s=0.05) == current


async def test_close_answers_held_polls_and_holds_none_after() -> None:
    book = OrderBook()
    v = book.version(7)
    held = asyncio.create_task(book.wait(7, v, 30))
    await asyncio.sleep(0.01)
    assert not held.done()
    book.close()  # the server is stopping
    assert await asyncio.wait_for(held, 5) == v  # answered, its version as it is
    # a poll arriving while the server stops is held briefly only, not its 30 s
    assert await asyncio.wait_for(book.wait(7, v, 30), 5) == v
