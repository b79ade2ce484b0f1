"""Upstream for a fleet incident: ONE FlowSpec rule for the group's prefix.

Each evaluated second of a group with an active fleet incident: when the group's summed
bps reaches `escalate_uplink_share` x its `uplink_mbps` and every member's mitigation
policy allows FlowSpec (not 'local'), the rule destination = the group's prefix, with
the signature of the incident's main vector (protocol, source port, TCP flags), is
announced through the BGP engine (which checks it lies inside the workspace's declared
prefixes), and renewed once less than half its TTL is left. Never RTBH: a whole prefix
is never blackholed automatically. The 'workspace' group has no prefix: refused and
recorded. Withdrawal after the hold-down once the incident resolved is the BGP area's
sweep (control.bgp.auto), which treats these rows (node_id NULL, trigger
'fleet_uplink_share') as every other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from control.bgp import prefixes
from control.bgp import store as bgp_store
from control.bgp.announcements import FlowSpecRule
from control.bgp.builder import Refusal
from control.bgp.ledger import Owner
from control.bgp.service import Upstream
from control.core.errors import NotFound
from control.fleet.aggregation import GroupSecond
from control.fleet.engine import Group
from control.fleet.figures import fleet_vectors, signature_rule
from control.fleet.settings import FleetSettings
from control.incidents.fleet import fleet_row
from control.nodes.service import NodeAddress

log = logging.getLogger("ftcontrol.fleet")

RETRY_REFUSED_S = 30.0


def flowspec_for_group(group: Group) -> FlowSpecRule | None:
    c = group.detector.classification
    if group.network is None or c is None:
        return None
    rule = signature_rule(fleet_vectors(c)[0])
    return FlowSpecRule(
        destination=str(group.network),
        protocol=rule.proto,
        src_port=rule.src_port,
        tcp_flags=rule.tcp_flags,
        tcp_flags_mask=rule.tcp_flags_mask,
    )


class FleetUpstream:
    def __init__(
        self, upstream: Upstream, settings: FleetSettings, *, clock: Callable[[], float] = time.time
    ) -> None:
        assert upstream.engine is not None
        self.upstream = upstream
        self.engine = upstream.engine
        self.settings = settings
        self.clock = clock
        self._refused: dict[str, float] = {}  # incident uuid -> when last refused

    def triggered(self, group: Group, gs: GroupSecond) -> bool:
        uplink = group.settings.uplink_mbps
        share = self.settings.escalate_uplink_share
        return uplink is not None and gs.metrics["bps"] >= share * uplink * 1e6

    async def on_second(
        self, group: Group, gs: GroupSecond, nodes: Mapping[int, NodeAddress]
    ) -> None:
        uuid = group.incident_uuid
        if uuid is None or not self.triggered(group, gs):
            return
        now = self.clock()
        refused_at = self._refused.get(uuid)
        if refused_at is not None and now - refused_at < RETRY_REFUSED_S:
            return
        incident_id = await self._incident_id(group.workspace_id, uuid)
        if incident_id is None:
            return
        live = self.upstream.live_of(incident_id)
        left = min((a.expires_at for a in live), default=0.0) - self.engine.clock()
        if live and left >= self.engine.config.default_ttl_s / 2:
            return  # in force, not yet due for renewal (the BGP engine's clock: its expiry)
        refusal = await self._announce(group, incident_id, nodes)
        if refusal is None:
            self._refused.pop(uuid, None)
            return
        self._refused[uuid] = now
        log.info("fleet FlowSpec for %s refused: %s", group.key, refusal.reason)
        await bgp_store.record_refusal(
            self.upstream.db, group.workspace_id, incident_id, "flowspec", "fleet_uplink_share",
            refusal.reason,
        )  # fmt: skip

    async def _announce(
        self, group: Group, incident_id: int, nodes: Mapping[int, NodeAddress]
    ) -> Refusal | None:
        if group.network is None:
            return Refusal(
                "the workspace group has no prefix of its own: a fleet FlowSpec rule is only "
                "announced for a declared prefix's group"
            )
        policies = {nodes[n].mitigation_policy for n in group.members if n in nodes}
        if not policies or "local" in policies:
            return Refusal("a node of the group has mitigation_policy 'local': no FlowSpec")
        rule = flowspec_for_group(group)
        if rule is None:
            return Refusal(
                "the incident has no vector to build a FlowSpec rule from", "not_buildable"
            )
        declared = await prefixes.workspace_prefixes(self.upstream.db, group.workspace_id)
        owner = Owner(
            workspace_id=group.workspace_id,
            node_id=None,
            incident_id=incident_id,
            trigger="fleet_uplink_share",
        )
        result = await self.engine.announce(rule, declared, owner=owner)
        if isinstance(result, Refusal):
            return result
        log.info("fleet FlowSpec for %s announced (%s)", group.key, rule.key())
        if result.replaced is None:
            await self.upstream.publish(
                "upstream_announced", group.workspace_id, str(group.incident_uuid), result.live.id
            )
        return None

    async def _incident_id(self, workspace_id: int, uuid: str) -> int | None:
        """The fleet incident's row id (what announcements and refusals reference)."""
        try:
            row = await fleet_row(self.upstream.db, workspace_id, uuid)
        except NotFound:
            return None
        return int(row["id"])
