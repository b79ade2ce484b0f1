"""Fleet incidents through every channel type: one notification per fleet incident event
(not one per node), saying it is a fleet incident, naming the group and the node count,
and never an empty node name."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from control.incidents.fleet import FleetNodeFigures
from control.incidents.schemas import Incident
from control.nodes.service import NodeFields, NodeStatusPolicy, create_node
from lab.notify_channels import RECEIVERS, channel_config
from tests.api.incidents.fleet_data import figures
from tests.api.notify.conftest import Store
from tests.api.notify.test_service_formats import _haystack

GROUP = "203.0.113.0/24"


async def _open_fleet(store: Store, nodes: int = 4, **changes: Any) -> Incident:
    """A fleet incident over the store's node and `nodes - 1` more of its workspace."""
    ids = [
        int(r["id"])
        for r in await store.rows("SELECT id FROM nodes WHERE uuid = ?", store.node_uuid)
    ]
    for i in range(nodes - 1):
        node, _ = await create_node(
            store.db,
            store.workspace_id,
            NodeFields.validated(name=f"edge-fra-{i + 2}", ip=f"203.0.113.{20 + i}"),
            NodeStatusPolicy(),
        )
        ids += [int(r["id"]) for r in await store.rows("SELECT id FROM nodes WHERE uuid = ?",
                                                      node.uuid)]  # fmt: skip
    members = [
        FleetNodeFigures(node_id=i, share=1 / nodes, peak_pps=5e4, peak_bps=5e8,
                         state="reporting")
        for i in ids
    ]  # fmt: skip
    return await store.incidents.open_fleet(
        store.workspace_id, GROUP, time.time() - 65, figures(**changes), nodes=members
    )


@pytest.mark.parametrize("service", sorted(RECEIVERS))
async def test_fleet_start_and_end_are_one_notice_each(
    service: str, store: Store, receivers: Any
) -> None:
    receiver = receivers(service)
    channel_id = await store.channel(service, channel_config(receiver))
    await store.service()

    incident = await _open_fleet(store, severity="critical")
    (start,) = await receiver.wait_for(1)
    await store.incidents.resolve_fleet(store.workspace_id, incident.uuid, time.time())
    _, end = await receiver.wait_for(2)
    await store.wait_settled(channel_id, 2)

    assert receiver.problems() == []
    rows = await store.deliveries(channel_id)
    assert [(r["event_kind"], r["status"]) for r in rows] == [
        ("opened", "delivered"),
        ("resolved", "delivered"),
    ]
    text = _haystack(service, start)
    assert "fleet" in text.lower() and GROUP in text, text
    assert "4 nodes" in text or re.search(r"node_count\W+4\b", text), text
    assert incident.uuid in text and "dns_amplification" in text
    # No node: no "Node: " fact with an empty value, no " on ," in a sentence.
    assert not re.search(r"(?m)^(node|Node|host|source|entity): ?$", text), text
    assert " on ," not in text and " on  " not in text and "0 sources" not in text
    if service not in ("pagerduty", "opsgenie"):  # their end is resolve/close by key
        assert "ended" in _haystack(service, end) or "resolved" in _haystack(service, end)


async def test_fleet_notice_titles_read_well(store: Store, receivers: Any) -> None:
    receiver = receivers("slack")
    await store.channel("slack", channel_config(receiver))
    await store.service()
    incident = await _open_fleet(store, nodes=3, severity="medium")
    await store.incidents.update_fleet(store.workspace_id, incident.uuid, figures("critical"))
    # The same severity again: "updated", which notifies nobody.
    await store.incidents.update_fleet(store.workspace_id, incident.uuid, figures("critical"))
    whole = await store.incidents.open_fleet(
        store.workspace_id, "workspace", time.time(), figures("high")
    )
    reqs = await receiver.wait_for(3)
    titles = [r.json()["text"] for r in reqs]
    assert titles == [
        f"Fleet DDoS attack detected: dns_amplification on prefix {GROUP}, 3 nodes (medium)",
        f"Fleet DDoS attack escalated: dns_amplification on prefix {GROUP}, 3 nodes (critical)",
        "Fleet DDoS attack detected: dns_amplification on the whole workspace (high)",
    ]
    fields = [f["text"] for f in reqs[0].json()["blocks"][1]["fields"]]
    assert fields[:3] == ["*Scope*\nfleet", f"*Group*\n{GROUP}", "*Nodes*\n3"]
    assert not any(f.startswith(("*Node*", "*Sources*")) for f in fields)
    assert whole.uuid in str(reqs[2].json())


async def test_node_filtered_channel_gets_fleet_incidents_of_its_nodes(
    store: Store, receivers: Any
) -> None:
    mine, other = receivers("webhook"), receivers("webhook")
    cfg_mine = {**channel_config(mine), "nodes": [store.node_name]}
    cfg_other = {**channel_config(other), "nodes": ["some-other-node"]}
    mine_id = await store.channel("webhook", cfg_mine, name="mine")
    other_id = await store.channel("webhook", cfg_other, name="other")
    await store.service()
    incident = await _open_fleet(store, nodes=2)
    (req,) = await mine.wait_for(1)
    assert req.json()["incident"]["incident_uuid"] == incident.uuid
    assert req.json()["incident"]["scope"] == "fleet"
    assert req.json()["incident"]["group"] == GROUP
    assert req.json()["incident"]["node_count"] == 2
    await store.wait_settled(mine_id, 1)
    assert await store.deliveries(other_id) == []
