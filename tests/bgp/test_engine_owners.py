"""The engine's rules for announcements with owners (the product's), and its restart from
the store: no daemons needed, because with ExaBGP not running an announcement is kept
(sent=False) to go out once it is up, exactly as after a speaker crash."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiosqlite
import pytest

from control.bgp.announcements import FlowSpecRule
from control.bgp.builder import Refusal
from control.bgp.engine import Accepted, BgpEngine
from control.bgp.ledger import LiveAnnouncement, Owner, WithdrawReason
from control.bgp.store import SqliteLedger
from control.core.db import open_db
from control.nodes.service import NodeFields, NodeStatusPolicy, create_node
from control.workspace.service import create_workspace
from lab.bird import speaker_config

DECLARED = ["203.0.113.0/24"]


def rule(port: int) -> FlowSpecRule:
    return FlowSpecRule(destination="203.0.113.7/32", protocol=17, dst_port=port)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[aiosqlite.Connection]:
    conn = await open_db(tmp_path / "ftcontrol.db")
    try:
        yield conn
    finally:
        await conn.close()


async def owners(db: aiosqlite.Connection) -> tuple[Owner, Owner]:
    """Two workspaces, a node each (announcements reference real rows)."""
    made = []
    for name in ("alpha", "beta"):
        ws, _ = await create_workspace(db, name, "pro")
        await create_node(db, ws, NodeFields(name="edge", ip="203.0.113.7"), NodeStatusPolicy())
        [[node_id]] = await db.execute_fetchall(
            "SELECT id FROM nodes WHERE workspace_id = ?", (ws,)
        )
        made.append(Owner(workspace_id=ws, node_id=node_id, incident_id=None, trigger="manual"))
    return made[0], made[1]


def accepted(result: Accepted | Refusal) -> Accepted:
    assert isinstance(result, Accepted), result
    return result


async def test_cap_evicts_only_within_the_workspace_and_routes_are_not_shared(
    db: aiosqlite.Connection, tmp_path: Path
) -> None:
    alpha, beta = await owners(db)
    engine = BgpEngine(speaker_config(max_announcements=2), tmp_path, ledger=SqliteLedger(db))
    first = accepted(await engine.announce(rule(1), DECLARED, owner=alpha)).live.id
    assert not accepted(await engine.announce(rule(2), DECLARED, owner=alpha)).sent
    # beta has nothing in force to give up: refused, alpha's stay
    refused = await engine.announce(rule(3), DECLARED, owner=beta)
    assert isinstance(refused, Refusal) and refused.kind == "cap", refused
    # alpha's third pushes out alpha's oldest
    third = accepted(await engine.announce(rule(3), DECLARED, owner=alpha))
    assert third.evicted == (first,)
    # the same route for another workspace: refused, not taken over
    taken = await engine.announce(rule(3), DECLARED, owner=beta)
    assert taken == Refusal("203.0.113.7/32 is announced for another workspace")
    rows = await db.execute_fetchall(
        "SELECT id, workspace_id, withdrawn_at IS NULL, withdraw_reason "
        "FROM bgp_announcements ORDER BY id"
    )
    assert [tuple(r) for r in rows] == [
        (first, alpha.workspace_id, 0, "evicted"),
        (first + 1, alpha.workspace_id, 1, None),
        (third.live.id, alpha.workspace_id, 1, None),
    ]


async def test_restart_loads_live_withdraws_expired_and_applies_a_lowered_cap(
    db: aiosqlite.Connection, tmp_path: Path
) -> None:
    alpha, _ = await owners(db)
    engine = BgpEngine(speaker_config(), tmp_path, ledger=SqliteLedger(db))
    ids = [accepted(await engine.announce(rule(p), DECLARED, owner=alpha)).live.id
           for p in (1, 2, 3, 4)]  # fmt: skip
    await db.execute(
        "UPDATE bgp_announcements SET expires_at = ? WHERE id = ?", (time.time() - 1, ids[3])
    )
    # "restarted" with max_announcements lowered to 2: the oldest live one goes
    again = BgpEngine(speaker_config(max_announcements=2), tmp_path, ledger=SqliteLedger(db))
    withdrawn: list[tuple[int, WithdrawReason]] = []

    async def told(live: LiveAnnouncement, reason: WithdrawReason) -> None:
        withdrawn.append((live.id, reason))

    again.on_withdrawn = told
    await again._load()
    assert [a.id for a in again.live()] == [ids[1], ids[2]]
    assert sorted(withdrawn) == [(ids[0], "evicted"), (ids[3], "expired")]
    assert [a.announcement for a in again.live()] == [rule(2), rule(3)]
    assert again.live()[0].owner == alpha
    rows = await db.execute_fetchall("SELECT withdraw_reason FROM bgp_announcements ORDER BY id")
    assert [r[0] for r in rows] == ["evicted", None, None, "expired"]
