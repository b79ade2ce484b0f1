"""What the control plane tells an agent: its overrides, and the operator's rule commands.

An operator blocks an address or prefix on a node (POST /api/v1/nodes/{uuid}/rules): a
`node_rules` row and a `block` command. DELETE queues an `unblock` command. The agent
gets every un-acked command in GET config, in id order, applies them and acks each one
(POST commands/ack), which sets the rule's state. Every change bumps the node's
`config_version`, which the heartbeat reply carries, so the agent fetches at once; the
caller's `moved(node_id)` (the fleet order book's bump) wakes the agent's fleet long-poll,
so it fetches within the second.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Literal

import aiosqlite
import msgspec

from control.core import clock
from control.core.db import transaction
from control.core.errors import InvalidValue, NotFound
from control.install.versions import agent_outdated
from control.nodes.service import NodeCaller
from ftcontract import agent_api
from ftcontract.bounds import MAX_RULE_TTL_S
from ftcontract.vocabulary import AttackState, BaselineState, MitigationMode, XdpMode

# Told the node whose config_version moved (wakes its fleet long-poll).
ConfigMoved = Callable[[int], None]

RuleState = Literal["pending", "active", "failed", "expired", "removing", "removed"]


class AgentState(msgspec.Struct, kw_only=True):
    """What the node's agent last said about itself (heartbeat); nulls until it has."""

    version: str | None
    xdp_mode: XdpMode | None
    interface: str | None
    baseline_state: BaselineState | None
    attack_state: AttackState | None
    mitigation_mode: MitigationMode | None
    spool_size: int
    rules_active: int
    uptime_s: float | None
    last_heartbeat: str | None
    config_version: int
    # The agent's release is older than this control plane's wheel (null: unknown yet).
    outdated: bool | None = None


class NodeRule(msgspec.Struct, kw_only=True):
    id: int
    target: str
    ttl_s: float
    status: RuleState
    created_at: str
    applied_at: str | None
    expires_at: str | None
    removed_at: str | None
    error: str | None


def canonical_target(target: str) -> str:
    try:
        net = ipaddress.ip_network(target.strip(), strict=False)
    except ValueError as exc:
        raise InvalidValue("target", f"{target!r} is not an IP address or prefix") from exc
    if net.prefixlen == 0:
        raise InvalidValue("target", "refusing to block every address (/0)")
    return str(net.network_address) if net.num_addresses == 1 else str(net)


def validate_overrides(o: agent_api.Overrides) -> agent_api.Overrides:
    """What decoding cannot check (ranges are checked by the contract's bounds on decode)."""
    for i, text in enumerate(o.allowlist or []):
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise InvalidValue(f"allowlist[{i}]", f"{text!r} is not an address or prefix") from exc
    return o


async def _bump(db: aiosqlite.Connection, node_id: int) -> None:
    await db.execute(
        """INSERT INTO agent_state (node_id, config_version) VALUES (?, 2)
           ON CONFLICT (node_id) DO UPDATE SET config_version = config_version + 1""",
        (node_id,),
    )


async def live_node_id(db: aiosqlite.Connection, workspace_id: int, node_uuid: str) -> int:
    rows = list(
        await db.execute_fetchall(
            "SELECT id FROM nodes WHERE workspace_id = ? AND uuid = ? AND deleted_at IS NULL",
            (workspace_id, node_uuid),
        )
    )
    if not rows:
        raise NotFound("node not found")
    return int(rows[0]["id"])


# ---- agent side -------------------------------------------------------------------------


async def record_heartbeat(
    db: aiosqlite.Connection, node: NodeCaller, beat: agent_api.Heartbeat
) -> tuple[int, int]:
    """Store the heartbeat; returns (config_version, pending command count)."""
    now = clock.now()
    async with transaction(db):
        await db.execute("UPDATE nodes SET last_seen = ? WHERE id = ?", (now, node.node_id))
        await db.execute(
            """INSERT INTO agent_state (node_id, version, xdp_mode, interface, baseline_state,
                   attack_state, mitigation_mode, spool_size, rules_active, uptime_s,
                   last_heartbeat)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (node_id) DO UPDATE SET version = excluded.version,
                   xdp_mode = excluded.xdp_mode, interface = excluded.interface,
                   baseline_state = excluded.baseline_state,
                   attack_state = excluded.attack_state,
                   mitigation_mode = excluded.mitigation_mode,
                   spool_size = excluded.spool_size, rules_active = excluded.rules_active,
                   uptime_s = excluded.uptime_s, last_heartbeat = excluded.last_heartbeat""",
            (
                node.node_id,
                beat.version,
                beat.xdp_mode,
                beat.interface,
                beat.baseline_state,
                beat.attack_state,
                beat.mitigation_mode,
                beat.spool_size,
                beat.rules_active,
                beat.uptime_s,
                now,
            ),
        )
    rows = list(
        await db.execute_fetchall(
            """SELECT s.config_version,
                      (SELECT count(*) FROM rule_commands c
                       WHERE c.node_id = s.node_id AND c.acked_at IS NULL) AS pending
               FROM agent_state s WHERE s.node_id = ?""",
            (node.node_id,),
        )
    )
    return int(rows[0]["config_version"]), int(rows[0]["pending"])


async def agent_config(db: aiosqlite.Connection, node: NodeCaller) -> agent_api.AgentConfig:
    rows = list(
        await db.execute_fetchall(
            "SELECT config_version, overrides FROM agent_state WHERE node_id = ?",
            (node.node_id,),
        )
    )
    version = int(rows[0]["config_version"]) if rows else 1
    overrides = msgspec.json.decode(
        rows[0]["overrides"] if rows else "{}", type=agent_api.Overrides
    )
    commands = [
        agent_api.RuleCommand(id=r["id"], action=r["action"], target=r["target"], ttl_s=r["ttl_s"])
        for r in await db.execute_fetchall(
            """SELECT c.id, c.action, r.target, r.ttl_s FROM rule_commands c
               JOIN node_rules r ON r.id = c.rule_id
               WHERE c.node_id = ? AND c.acked_at IS NULL ORDER BY c.id""",
            (node.node_id,),
        )
    ]
    return agent_api.AgentConfig(
        **msgspec.structs.asdict(overrides), config_version=version, commands=commands
    )


async def record_acks(
    db: aiosqlite.Connection, node: NodeCaller, acks: list[agent_api.CommandAck]
) -> int:
    """Mark this node's commands done; unknown, foreign or already acked ids are ignored."""
    now = clock.now()
    done = 0
    async with transaction(db):
        for ack in acks:
            cur = await db.execute(
                """UPDATE rule_commands SET acked_at = ?, ok = ?, error = ?
                   WHERE id = ? AND node_id = ? AND acked_at IS NULL""",
                (now, int(ack.ok), ack.error or None, ack.id, node.node_id),
            )
            done += cur.rowcount
    return done


# ---- operator side (REST API) -----------------------------------------------------------

_RULES = """
SELECT r.*,
       b.acked_at AS block_acked, b.ok AS block_ok, b.error AS block_error,
       u.acked_at AS unblock_acked, u.ok AS unblock_ok, u.error AS unblock_error
FROM node_rules r
JOIN rule_commands b ON b.rule_id = r.id AND b.action = 'block'
LEFT JOIN rule_commands u ON u.rule_id = r.id AND u.action = 'unblock'
"""


def _rule_from_row(row: aiosqlite.Row, now: float) -> NodeRule:
    applied = row["block_acked"] if row["block_ok"] else None
    expires = applied + row["ttl_s"] if applied is not None else None
    state: RuleState
    error = None
    if row["removed_at"] is not None:
        state = "removed" if row["unblock_acked"] is not None else "removing"
        error = row["unblock_error"] if row["unblock_acked"] is not None else None
    elif row["block_acked"] is None:
        state = "pending"
    elif not row["block_ok"]:
        state, error = "failed", row["block_error"]
    else:
        state = "expired" if expires is not None and expires <= now else "active"
    return NodeRule(
        id=row["id"],
        target=row["target"],
        ttl_s=row["ttl_s"],
        status=state,
        created_at=clock.iso(row["created_at"]) or "",
        applied_at=clock.iso(applied),
        expires_at=clock.iso(expires),
        removed_at=clock.iso(row["removed_at"]),
        error=error,
    )


async def _rule(db: aiosqlite.Connection, node_id: int, rule_id: int) -> NodeRule:
    rows = list(
        await db.execute_fetchall(_RULES + " WHERE r.node_id = ? AND r.id = ?", (node_id, rule_id))
    )
    if not rows:
        raise NotFound("rule not found")
    return _rule_from_row(rows[0], clock.now())


async def list_rules(db: aiosqlite.Connection, workspace_id: int, node_uuid: str) -> list[NodeRule]:
    node_id = await live_node_id(db, workspace_id, node_uuid)
    now = clock.now()
    rows = await db.execute_fetchall(_RULES + " WHERE r.node_id = ? ORDER BY r.id", (node_id,))
    return [_rule_from_row(r, now) for r in rows]


async def create_rule(
    db: aiosqlite.Connection,
    workspace_id: int,
    node_uuid: str,
    target: str,
    ttl_s: float,
    moved: ConfigMoved | None = None,
) -> NodeRule:
    canonical = canonical_target(target)
    if not 0 < ttl_s <= MAX_RULE_TTL_S:
        raise InvalidValue("ttl_s", f"must be above 0 and at most {MAX_RULE_TTL_S:.0f}")
    node_id = await live_node_id(db, workspace_id, node_uuid)
    now = clock.now()
    async with transaction(db):
        cur = await db.execute(
            """INSERT INTO node_rules (workspace_id, node_id, target, ttl_s, created_at)
               VALUES (?, ?, ?, ?, ?)""",
            (workspace_id, node_id, canonical, ttl_s, now),
        )
        rule_id = cur.lastrowid
        await db.execute(
            """INSERT INTO rule_commands (rule_id, node_id, action, created_at)
               VALUES (?, ?, 'block', ?)""",
            (rule_id, node_id, now),
        )
        await _bump(db, node_id)
    assert rule_id is not None
    if moved is not None:
        moved(node_id)
    return await _rule(db, node_id, rule_id)


async def delete_rule(
    db: aiosqlite.Connection,
    workspace_id: int,
    node_uuid: str,
    rule_id: int,
    moved: ConfigMoved | None = None,
) -> NodeRule:
    """Queue the unblock (idempotent: a rule already removed is returned as it is)."""
    node_id = await live_node_id(db, workspace_id, node_uuid)
    rule = await _rule(db, node_id, rule_id)
    if rule.removed_at is not None:
        return rule
    now = clock.now()
    async with transaction(db):
        cur = await db.execute(
            "UPDATE node_rules SET removed_at = ? WHERE id = ? AND removed_at IS NULL",
            (now, rule_id),
        )
        if cur.rowcount:
            await db.execute(
                """INSERT INTO rule_commands (rule_id, node_id, action, created_at)
                   VALUES (?, ?, 'unblock', ?)""",
                (rule_id, node_id, now),
            )
            await _bump(db, node_id)
    if moved is not None:
        moved(node_id)
    return await _rule(db, node_id, rule_id)


async def agent_state(db: aiosqlite.Connection, workspace_id: int, node_uuid: str) -> AgentState:
    node_id = await live_node_id(db, workspace_id, node_uuid)
    rows = list(
        await db.execute_fetchall("SELECT * FROM agent_state WHERE node_id = ?", (node_id,))
    )
    if not rows:
        return AgentState(
            version=None, xdp_mode=None, interface=None, baseline_state=None,
            attack_state=None, mitigation_mode=None, spool_size=0, rules_active=0,
            uptime_s=None, last_heartbeat=None, config_version=1,
        )  # fmt: skip
    r = rows[0]
    return AgentState(
        version=r["version"],
        xdp_mode=r["xdp_mode"],
        interface=r["interface"],
        baseline_state=r["baseline_state"],
        attack_state=r["attack_state"],
        mitigation_mode=r["mitigation_mode"],
        spool_size=r["spool_size"],
        rules_active=r["rules_active"],
        uptime_s=r["uptime_s"],
        last_heartbeat=clock.iso(r["last_heartbeat"]),
        config_version=r["config_version"],
        outdated=agent_outdated(r["version"]),
    )


async def get_overrides(
    db: aiosqlite.Connection, workspace_id: int, node_uuid: str
) -> agent_api.Overrides:
    node_id = await live_node_id(db, workspace_id, node_uuid)
    rows = list(
        await db.execute_fetchall("SELECT overrides FROM agent_state WHERE node_id = ?", (node_id,))
    )
    return msgspec.json.decode(rows[0]["overrides"] if rows else "{}", type=agent_api.Overrides)


async def set_overrides(
    db: aiosqlite.Connection,
    workspace_id: int,
    node_uuid: str,
    overrides: agent_api.Overrides,
    moved: ConfigMoved | None = None,
) -> agent_api.Overrides:
    validate_overrides(overrides)
    node_id = await live_node_id(db, workspace_id, node_uuid)
    text = msgspec.json.encode(overrides).decode()
    async with transaction(db):
        await db.execute(
            """INSERT INTO agent_state (node_id, overrides, config_version) VALUES (?, ?, 2)
               ON CONFLICT (node_id) DO UPDATE SET overrides = excluded.overrides,
                   config_version = config_version + 1""",
            (node_id, text),
        )
    if moved is not None:
        moved(node_id)
    return overrides


async def config_state(db: aiosqlite.Connection, node_id: int) -> tuple[int, int]:
    """(config_version, pending command count) of a node, as the heartbeat reply has them."""
    rows = list(
        await db.execute_fetchall(
            """SELECT coalesce((SELECT config_version FROM agent_state WHERE node_id = :n), 1)
                      AS config_version,
                      (SELECT count(*) FROM rule_commands
                       WHERE node_id = :n AND acked_at IS NULL) AS pending""",
            {"n": node_id},
        )
    )
    return int(rows[0]["config_version"]), int(rows[0]["pending"])
