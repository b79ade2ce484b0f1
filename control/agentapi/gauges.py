"""Per-node Prometheus gauges from what the agents report, on the control plane's /metrics.

A collector registered once in prometheus_client's default registry (which GET /metrics
exposes) serves the latest snapshot; the Agent API's background task refreshes that
snapshot from the store every `gauges_interval_s`, so a scrape costs no query.

Series (labels node = node name, ip, workspace):
  ftcontrol_node_pps, ftcontrol_node_bps, ftcontrol_node_dropped_pps
  ftcontrol_node_protocol_share{protocol}      percent of the node's packets, latest second
  ftcontrol_node_baseline_avg_pps, _p95_pps, _p99_pps
  ftcontrol_node_incidents_active, ftcontrol_node_incidents_24h
  ftcontrol_node_spool_entries                 reports waiting in the agent's spool
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import aiosqlite
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from control.agentapi.metrics_store import protocol_shares

_LABELS = ["node", "ip", "workspace"]
_SNAPSHOT_SQL = """
SELECT n.name, n.ip, w.name AS workspace, n.last_pps, n.last_bps, n.baseline_avg_pps,
       n.baseline_p95_pps, s.baseline_p99_pps, s.last_dropped_pps, s.last_protocols,
       s.spool_size,
       (SELECT count(*) FROM incidents i
        WHERE i.node_id = n.id AND i.status = 'active') AS incidents_active,
       (SELECT count(*) FROM incidents i
        WHERE i.node_id = n.id AND i.started_at >= :since) AS incidents_24h
FROM nodes n
JOIN workspaces w ON w.id = n.workspace_id
LEFT JOIN agent_state s ON s.node_id = n.id
WHERE n.deleted_at IS NULL
"""


@dataclass(frozen=True, slots=True)
class NodeFigures:
    labels: tuple[str, str, str]
    pps: float
    bps: float
    dropped_pps: float
    protocol_share: dict[str, float]
    baseline: dict[str, float | None]
    incidents_active: int
    incidents_24h: int
    spool_entries: int


@dataclass(slots=True)
class GaugeSnapshot:
    nodes: list[NodeFigures] = field(default_factory=list)
    taken_at: float = 0.0


async def take_snapshot(db: aiosqlite.Connection) -> GaugeSnapshot:
    rows = await db.execute_fetchall(_SNAPSHOT_SQL, {"since": time.time() - 86400})
    nodes = [
        NodeFigures(
            labels=(r["name"], r["ip"], r["workspace"]),
            pps=r["last_pps"],
            bps=r["last_bps"],
            dropped_pps=r["last_dropped_pps"] or 0.0,
            protocol_share=protocol_shares(json.loads(r["last_protocols"] or "{}")),
            baseline={
                "avg": r["baseline_avg_pps"],
                "p95": r["baseline_p95_pps"],
                "p99": r["baseline_p99_pps"],
            },
            incidents_active=r["incidents_active"],
            incidents_24h=r["incidents_24h"],
            spool_entries=r["spool_size"] or 0,
        )
        for r in rows
    ]
    return GaugeSnapshot(nodes=nodes, taken_at=time.time())


class NodeGaugeCollector(Collector):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot = GaugeSnapshot()

    def publish(self, snapshot: GaugeSnapshot) -> None:
        with self._lock:
            self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snap = self._snapshot

        def family(name: str, text: str, extra: list[str] | None = None) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, text, labels=_LABELS + (extra or []))

        pps = family("ftcontrol_node_pps", "Packets per second the node's agent reported")
        bps = family("ftcontrol_node_bps", "Bits per second the node's agent reported")
        dropped = family("ftcontrol_node_dropped_pps", "Packets per second dropped in XDP")
        share = family(
            "ftcontrol_node_protocol_share", "Percent of the node's packets", ["protocol"]
        )
        base = {
            stat: family(f"ftcontrol_node_baseline_{stat}_pps", f"Baseline {stat} pps")
            for stat in ("avg", "p95", "p99")
        }
        active = family("ftcontrol_node_incidents_active", "Active incidents on the node")
        day = family("ftcontrol_node_incidents_24h", "Incidents started in the last 24 h")
        spool = family("ftcontrol_node_spool_entries", "Reports waiting in the agent's spool")
        for n in snap.nodes:
            labels = list(n.labels)
            pps.add_metric(labels, n.pps)
            bps.add_metric(labels, n.bps)
            dropped.add_metric(labels, n.dropped_pps)
            for proto, value in n.protocol_share.items():
                share.add_metric([*labels, proto], value)
            for stat, level in n.baseline.items():
                if level is not None:
                    base[stat].add_metric(labels, level)
            active.add_metric(labels, n.incidents_active)
            day.add_metric(labels, n.incidents_24h)
            spool.add_metric(labels, n.spool_entries)
        yield from (pps, bps, dropped, share, *base.values(), active, day, spool)


_collector: NodeGaugeCollector | None = None
_register_lock = threading.Lock()


def collector() -> NodeGaugeCollector:
    """The process's one collector, registered in the default registry on first use."""
    global _collector
    with _register_lock:
        if _collector is None:
            _collector = NodeGaugeCollector()
            REGISTRY.register(_collector)
        return _collector
