"""The REST representation of a node (msgspec Structs), shared by the service and routes."""

from __future__ import annotations

from typing import Literal

import msgspec

NodeStatus = Literal["online", "offline", "attack", "elevated"]
NodePriority = Literal["production", "staging", "development", "normal", "high"]


class Baseline(msgspec.Struct, kw_only=True):
    avg_pps: float
    p95_pps: float
    protocols: dict[str, float]  # protocol -> percent share of packets


class Node(msgspec.Struct, kw_only=True):
    uuid: str
    name: str
    ip: str
    location: str | None
    os: str | None
    interface: str
    priority: NodePriority
    status: NodeStatus
    last_pps: float
    active_incidents: int
    created_at: str
    last_seen: str | None


class NodeDetail(Node, kw_only=True):
    baseline: Baseline | None  # null until the node's agent reports one
