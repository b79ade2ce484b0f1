"""Fleet incidents for API tests: written through IncidentService's fleet API, as the
fleet engine (control.fleet) writes them."""

from __future__ import annotations

import time
from typing import Any

from control.incidents.fleet import FleetFigures, FleetNodeFigures
from control.incidents.schemas import Incident
from ftcontract import agent_api
from ftcontract.vocabulary import Severity
from tests.api.conftest import Api, Workspace

DNS_AMP = agent_api.FleetVector(family="dns_amplification", group="udp", amp_port=53)
DNS_RULE = agent_api.RuleFigure(
    kind="signature", match="signature proto=17 sport=53", proto=17, src_port=53
)


def figures(severity: Severity = "high", **changes: Any) -> FleetFigures:
    values: dict[str, Any] = {
        "family": "dns_amplification",
        "subtype": "",
        "severity": severity,
        "peak_pps": 225_000.0,
        "peak_bps": 2.2e9,
        "current_pps": 220_000.0,
        "protocols": {"udp": 99.0, "tcp": 1.0},
        "vectors": [DNS_AMP],
        "rules": [DNS_RULE],
        **changes,
    }
    return FleetFigures(**values)


async def node_id(api: Api, node_uuid: str) -> int:
    rows = list(
        await api.app.state.db.execute_fetchall("SELECT id FROM nodes WHERE uuid = ?", (node_uuid,))
    )
    return int(rows[0]["id"])


def report(
    incident_uuid: str, dropped: int, spared: int, since: float | None
) -> agent_api.FleetRuleReport:
    rule = agent_api.RuleFigure(
        kind="signature",
        match="signature proto=17 sport=53",
        proto=17,
        src_port=53,
        dropped_packets=dropped,
        spared_packets=spared,
    )
    return agent_api.FleetRuleReport(
        incident_uuid=incident_uuid, rules=[rule], in_force_since=since
    )


async def fleet_incident(
    api: Api,
    ws: Workspace,
    group: str = "203.0.113.0/24",
    node_names: tuple[str, ...] = ("edge-1", "edge-2"),
    *,
    severity: Severity = "high",
) -> tuple[Incident, list[dict[str, Any]]]:
    """A fleet incident on `group` with a node per name (ips 203.0.113.11, .12, ...):
    the first reports its rules in force, the others none yet."""
    nodes = [
        await api.node(ws, name, ip=f"203.0.113.{11 + i}") for i, name in enumerate(node_names)
    ]
    ids = [await node_id(api, n["uuid"]) for n in nodes]
    opened = await api.incidents.open_fleet(ws.id, group, time.time() - 30, figures(severity))
    share = 1.0 / len(ids)
    await api.incidents.set_fleet_nodes(
        ws.id,
        opened.uuid,
        [
            FleetNodeFigures(
                node_id=nid,
                share=share,
                peak_pps=225_000.0 * share,
                peak_bps=2.2e9 * share,
                state="reporting",
                report=report(opened.uuid, 9_000, 40, time.time() - 29) if i == 0 else None,
            )
            for i, nid in enumerate(ids)
        ],
    )
    return await api.incidents.get(ws.id, opened.uuid), nodes
