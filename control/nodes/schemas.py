"""The REST representation of a node (msgspec Structs), shared by the service and routes."""

from __future__ import annotations

from typing import Literal

import msgspec

from control.bgp.schemas import MitigationPolicy

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
    # upstream mitigation (BGP): local = XDP only; flowspec; flowspec_then_rtbh
    mitigation_policy: MitigationPolicy = "local"
    uplink_mbps: float | None = None  # the uplink's capacity; null: not declared


class NodeDetail(Node, kw_only=True):
    baseline: Baseline | None  # null until the node's agent reports one
