"""The fleet engine: points in, group seconds evaluated, fleet incidents and orders out.

- `on_points` (the metrics route): the points go into the workspace's `Seconds` (memory).
- A background loop (every `tick_s`) evaluates each group's due seconds: the detector
  decides, the baseline learns complete quiet seconds, and the incidents area's fleet API
  (IncidentService.open_fleet / update_fleet / set_fleet_nodes / resolve_fleet) records
  the incident. The orders of the group's nodes follow the incident at once (OrderBook:
  the long-polls wake in the same tick).
- Membership (nodes' addresses, declared prefixes, group settings) is re-read every
  `refresh_s`; a node deleted or moved out of a group during its incident shows 'removed'.
- At start the active fleet incidents are resumed (detector in attack, orders listed,
  cool-down counted again from there), and the saved baselines reloaded; they are saved
  every `baseline_save_s` and at stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

import aiosqlite

from control.core.errors import DomainError
from control.fleet import groups as group_store
from control.fleet.aggregation import KEEP_S, GroupCursor, GroupSecond, Seconds
from control.fleet.baseline import GroupBaseline
from control.fleet.detector import GroupDetector, signature, thresholds_for
from control.fleet.figures import (
    classification_of,
    family,
    fleet_figures,
    fleet_vectors,
    protocol_shares,
)
from control.fleet.groups import GroupSettings, Network
from control.fleet.orders import OrderBook
from control.fleet.settings import EffectiveThresholds, FleetSettings
from control.incidents.event_bus import IncidentEvent
from control.incidents.fleet import FleetFigures, FleetNodeFigures
from control.incidents.service import IncidentService
from control.nodes.service import NodeAddress, NodeCaller, live_node_addresses
from ftcontract.agent_api import FleetOrder, FleetRuleReport, MetricPoint
from ftcontract.classify import METRICS, Classification

log = logging.getLogger("ftcontrol.fleet")

NodeState = Literal["reporting", "missing", "removed"]


@dataclass(slots=True)
class NodeTally:
    """One node's part in a group's active incident."""

    peak_pps: float = 0.0
    peak_bps: float = 0.0
    attack_packets: float = 0.0  # summed pps over the incident's seconds (for its share)
    state: NodeState = "reporting"
    report: FleetRuleReport | None = None


@dataclass(slots=True)
class Group:
    workspace_id: int
    key: str
    network: Network | None
    members: frozenset[int]
    settings: GroupSettings
    eff: EffectiveThresholds
    baseline: GroupBaseline
    cursor: GroupCursor = field(default_factory=GroupCursor)
    detector: GroupDetector = field(default_factory=GroupDetector)
    incident_uuid: str | None = None
    order: FleetOrder | None = None
    tallies: dict[int, NodeTally] = field(default_factory=dict)
    tallies_dirty: bool = False
    tallies_written_at: float = 0.0
    # a person closed the incident during the attack: none reopened before it cools down
    dismissed: bool = False


class FleetEngine:
    def __init__(
        self,
        db: aiosqlite.Connection,
        incidents: IncidentService,
        settings: FleetSettings,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.incidents = incidents
        self.settings = settings
        self.clock = clock
        self.orders = OrderBook()
        self.groups: dict[tuple[int, str], Group] = {}
        self.nodes: dict[int, NodeAddress] = {}
        self._seconds: dict[int, Seconds] = {}
        self._node_groups: dict[int, list[Group]] = {}
        self._task: asyncio.Task[None] | None = None
        self._refreshed_at = 0.0
        self._saved_at = 0.0
        self._upstream: UpstreamHook | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    def attach_upstream(self, hook: UpstreamHook) -> None:
        self._upstream = hook

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if not self.enabled:
            # nothing would ever end them: fleet incidents left active are closed now
            for active in await self.incidents.active_fleet():
                with contextlib.suppress(DomainError):
                    await self.incidents.resolve_fleet(
                        active.workspace_id, active.uuid, self.clock()
                    )
                log.info("fleet detection is off: fleet incident %s resolved", active.uuid)
            return
        await self.refresh()
        now = self.clock()
        for key, state in (await group_store.load_baselines(self.db)).items():
            group = self.groups.get(key)
            if group is not None and not group.baseline.restore(
                state, now, self.settings.baseline_max_age_s
            ):
                log.info("fleet baseline of %s dropped (too old or unreadable)", key)
        self._saved_at = now
        await self._expect_reporters(now)
        await self._resume()
        self.incidents.events.subscribe(self._on_event)
        self._task = asyncio.create_task(self._run(), name="fleet-engine")

    async def stop(self) -> None:
        self.orders.close()  # long-polls still held are answered, none held from now on
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        if self.enabled:
            try:
                await self.save_baselines(force=True)
            except Exception:
                log.exception("saving the fleet baselines at stop failed")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.settings.tick_s)
            try:
                await self.tick()
            except Exception:
                log.exception("fleet evaluation failed")

    async def _on_event(self, event: IncidentEvent) -> None:
        """A person closed a fleet incident (false positive, or resolved by hand): its
        group stops ordering its nodes at once."""
        if event.kind not in ("resolved", "false_positive"):
            return
        for group in self.groups.values():
            if group.incident_uuid == event.incident_uuid:
                self._forget_incident(group, dismissed=True)

    # ---- inputs ------------------------------------------------------------------------

    def on_points(self, node: NodeCaller, points: list[MetricPoint]) -> None:
        """A metrics post was accepted (cheap: memory only)."""
        if not self.enabled or not points:
            return
        self._seconds_of(node.workspace_id).add(node.node_id, points, self.clock())

    def _seconds_of(self, workspace_id: int) -> Seconds:
        seconds = self._seconds.get(workspace_id)
        if seconds is None:
            seconds = Seconds(self.settings.grace_s, self.settings.stale_s)
            self._seconds[workspace_id] = seconds
        return seconds

    def version(self, node_id: int) -> int:
        return self.orders.version(node_id)

    # ---- membership --------------------------------------------------------------------

    async def refresh(self) -> None:
        """Re-read nodes, declared prefixes and group settings."""
        self._refreshed_at = self.clock()
        nodes = await live_node_addresses(self.db)
        by_ws: dict[int, list[NodeAddress]] = {}
        for n in nodes:
            by_ws.setdefault(n.workspace_id, []).append(n)
        workspaces = set(by_ws) | {ws for ws, _ in self.groups}
        seen: set[tuple[int, str]] = set()
        for ws in workspaces:
            settings = await group_store.all_settings(self.db, ws)
            for key in await group_store.group_keys(self.db, ws):
                seen.add((ws, key))
                network = group_store.network_of(key)
                members = frozenset(
                    n.node_id for n in by_ws.get(ws, []) if group_store.contains(network, n.ip)
                )
                self._set_group(ws, key, network, members, settings.get(key, GroupSettings()))
        for gone_key in [k for k in self.groups if k not in seen]:
            group = self.groups.pop(gone_key)
            if group.incident_uuid is not None:  # the prefix was removed during its incident
                await self._resolve(group, self.clock())
        gone = set(self.nodes) - {n.node_id for n in nodes}
        self.nodes = {n.node_id: n for n in nodes}
        for node_id in gone:
            for seconds in self._seconds.values():
                seconds.forget(node_id)
        self._index_nodes(gone)

    def _set_group(
        self, ws: int, key: str, network: Network | None, members: frozenset[int], gs: GroupSettings
    ) -> None:
        s = self.settings
        group = self.groups.get((ws, key))
        if group is None:
            group = Group(
                workspace_id=ws,
                key=key,
                network=network,
                members=members,
                settings=gs,
                eff=s.effective(gs.thresholds),
                baseline=GroupBaseline(s.window_s, s.min_samples, s.hour_min_samples),
            )
            self.groups[(ws, key)] = group
            return
        for node_id in group.members - members:
            tally = group.tallies.get(node_id)
            if tally is not None:
                tally.state = "removed"
                group.tallies_dirty = True
        group.members = members
        group.settings = gs
        group.eff = s.effective(gs.thresholds)

    def _index_nodes(self, gone: set[int]) -> None:
        before = {n: [g.key for g in gs] for n, gs in self._node_groups.items()}
        index: dict[int, list[Group]] = {}
        for group in self.groups.values():
            for node_id in group.members:
                index.setdefault(node_id, []).append(group)
        self._node_groups = index
        for node_id in set(index) | set(before) | gone:
            self._publish_orders(node_id)

    # ---- orders ------------------------------------------------------------------------

    def _publish_orders(self, node_id: int) -> None:
        orders = [g.order for g in self._node_groups.get(node_id, []) if g.order is not None]
        self.orders.set_orders(node_id, orders)

    def _publish_group(self, group: Group) -> None:
        for node_id in group.members:
            self._publish_orders(node_id)

    def _order_of(self, group: Group) -> FleetOrder | None:
        c = group.detector.classification
        if group.incident_uuid is None or c is None:
            return None
        vectors = fleet_vectors(c)
        return FleetOrder(
            incident_uuid=group.incident_uuid,
            family=family(c.family),
            vectors=vectors,
            ttl_s=self.settings.ttl_s,
            group=group.key,
        )

    # ---- evaluation --------------------------------------------------------------------

    async def tick(self) -> None:
        now = self.clock()
        if now - self._refreshed_at >= self.settings.refresh_s:
            await self.refresh()
        for group in list(self.groups.values()):
            seconds = self._seconds.get(group.workspace_id)
            if seconds is None:
                continue
            for gs in seconds.due(group.cursor, group.members, now):
                try:
                    await self._evaluate(group, gs, now)
                except Exception:  # one group's failure (the store) leaves the others be
                    log.exception("fleet evaluation of %s failed", group.key)
            if (
                group.tallies_dirty
                and now - group.tallies_written_at >= self.settings.nodes_every_s
            ):
                await self._write_tallies(group, now)
        for ws, seconds in self._seconds.items():
            seconds.prune([g.cursor for g in self.groups.values() if g.workspace_id == ws], now)
        if now - self._saved_at >= self.settings.baseline_save_s:
            await self.save_baselines()

    async def _evaluate(self, group: Group, gs: GroupSecond, now: float) -> None:
        at = float(gs.second)
        p99 = {m: group.baseline.p99(m, at) for m in METRICS}
        thresholds = thresholds_for(group.eff, p99)
        before = group.detector.classification
        step = group.detector.observe(
            gs, thresholds, group.eff, group.baseline.averages(), p99, self.settings.severity
        )
        if step.learnable and not gs.attacked:  # a node's own attack is not normal either
            group.baseline.learn(gs.metrics, at)
        if step.kind == "opened":
            group.tallies = {}
            self._tally(group, gs)
            await self._open(group, gs)
        elif step.kind == "ongoing":
            self._tally(group, gs)
            if group.incident_uuid is None and not group.dismissed:
                # the opening failed, or a more specific group had it: tried again
                await self._open(group, gs)
            elif step.changed and group.incident_uuid is not None:
                await self._update(group, gs, moved=_moved(before, group))
        elif step.kind == "resolved":
            group.dismissed = False
            await self._resolve(group, at + 1)
        if self._upstream is not None and group.incident_uuid is not None:
            await self._upstream.on_second(group, gs, self.nodes)

    def _covered(self, group: Group) -> Group | None:
        """A more specific group of the workspace already has the attack's incident: one
        attack, one fleet incident (the prefix's, which can also be announced upstream)."""
        for other in self.groups.values():
            if (
                other is not group
                and other.workspace_id == group.workspace_id
                and other.incident_uuid is not None
                and other.members
                and other.members <= group.members
            ):
                return other
        return None

    async def _open(self, group: Group, gs: GroupSecond) -> None:
        d = group.detector
        assert d.classification is not None
        covering = self._covered(group)
        if covering is not None:
            log.debug("attack on %s is %s's fleet incident", group.key, covering.key)
            return
        try:
            incident = await self.incidents.open_fleet(
                group.workspace_id,
                group.key,
                d.started_at,
                self._figures(group, gs),
                nodes=self._node_figures(group),
            )
        except DomainError as exc:
            log.warning("fleet incident for %s not opened: %s", group.key, exc)
            return
        group.incident_uuid = incident.uuid
        group.tallies_dirty = False
        group.tallies_written_at = self.clock()
        group.order = self._order_of(group)
        self._publish_group(group)
        log.info(
            "fleet incident %s opened on %s (%s)", incident.uuid, group.key, d.classification.family
        )

    def _figures(self, group: Group, gs: GroupSecond) -> FleetFigures:
        d = group.detector
        assert d.classification is not None
        return fleet_figures(
            d.classification,
            d.severity,
            peak_pps=d.peak_pps,
            peak_bps=d.peak_bps,
            current_pps=d.current_pps,
            protocols=protocol_shares(gs.metrics),
            threshold_pps=d.threshold_pps,
            baseline_p99_pps=group.baseline.p99("pps", float(gs.second)) or None,
        )

    async def _update(self, group: Group, gs: GroupSecond, *, moved: bool) -> None:
        d = group.detector
        assert d.classification is not None and group.incident_uuid is not None
        try:
            await self.incidents.update_fleet(
                group.workspace_id, group.incident_uuid, self._figures(group, gs)
            )
        except DomainError as exc:
            # closed by a person (false positive) or gone: the group stops its answer
            log.info("fleet incident %s no longer updatable: %s", group.incident_uuid, exc)
            self._forget_incident(group, dismissed=True)
            return
        if moved:
            group.order = self._order_of(group)
            self._publish_group(group)

    async def _resolve(self, group: Group, ended_at: float) -> None:
        uuid = group.incident_uuid
        if uuid is None:
            return
        await self._write_tallies(group, self.clock())
        try:
            await self.incidents.resolve_fleet(group.workspace_id, uuid, ended_at)
        except DomainError as exc:
            log.info("fleet incident %s not resolved: %s", uuid, exc)
        log.info("fleet incident %s on %s resolved", uuid, group.key)
        self._forget_incident(group)

    def _forget_incident(self, group: Group, *, dismissed: bool = False) -> None:
        """The incident ended. `dismissed`: a person closed it while the group's sum may
        still be over: no new incident until the group has cooled down."""
        group.incident_uuid = None
        group.order = None
        group.tallies = {}
        group.tallies_dirty = False
        group.dismissed = dismissed and group.detector.state == "attack"
        if group.detector.state == "attack" and not group.dismissed:
            group.detector.state = "quiet"
            group.detector.classification = None
        self._publish_group(group)

    # ---- the nodes of an incident ------------------------------------------------------

    def _tally(self, group: Group, gs: GroupSecond) -> None:
        uuid = group.incident_uuid
        for node_id, ns in gs.reporters.items():
            if node_id in gs.attacked:
                continue  # its own incident; not a part of the group's sum
            t = group.tallies.setdefault(node_id, NodeTally())
            t.peak_pps = max(t.peak_pps, ns.metrics["pps"])
            t.peak_bps = max(t.peak_bps, ns.metrics["bps"])
            t.attack_packets += ns.metrics["pps"]
            t.state = "reporting"
            for report in ns.fleet_rules:
                if report.incident_uuid == uuid:
                    t.report = report
        for node_id in gs.missing:
            group.tallies.setdefault(node_id, NodeTally()).state = "missing"
        group.tallies_dirty = True

    def _node_figures(self, group: Group) -> list[FleetNodeFigures]:
        total = sum(t.attack_packets for t in group.tallies.values())
        return [
            FleetNodeFigures(
                node_id=node_id,
                share=min(1.0, t.attack_packets / total) if total > 0 else 0.0,
                peak_pps=t.peak_pps,
                peak_bps=t.peak_bps,
                state=(
                    "removed"
                    if node_id not in self.nodes or node_id not in group.members
                    else t.state
                ),
                report=t.report,
            )
            for node_id, t in group.tallies.items()
        ]

    async def _write_tallies(self, group: Group, now: float) -> None:
        uuid = group.incident_uuid
        group.tallies_written_at = now
        group.tallies_dirty = False
        if uuid is None or not group.tallies:
            return
        try:
            await self.incidents.set_fleet_nodes(
                group.workspace_id, uuid, self._node_figures(group)
            )
        except DomainError as exc:
            log.info("fleet incident %s nodes not written: %s", uuid, exc)

    # ---- restart -----------------------------------------------------------------------

    async def _expect_reporters(self, now: float) -> None:
        """After a restart, the nodes that were reporting (their newest point in the store
        is recent) are expected from the start: otherwise the first node back would be
        the whole expected set, its seconds alone 'complete', and a resumed incident
        would cool down on a fraction of the group's traffic (and its baseline learn
        it). A node that does not come back leaves the expected set after stale_s."""
        for report in await group_store.last_reports(self.db):
            if report.node_id in self.nodes and now - report.ts <= KEEP_S:
                self._seconds_of(report.workspace_id).expect(report.node_id, now)

    async def _resume(self) -> None:
        for active in await self.incidents.active_fleet():
            group = self.groups.get((active.workspace_id, active.group_key))
            if group is None:  # the prefix is no longer declared: nothing to continue
                with contextlib.suppress(DomainError):
                    await self.incidents.resolve_fleet(
                        active.workspace_id, active.uuid, self.clock()
                    )
                continue
            d = group.detector
            d.state = "attack"
            d.started_at = active.started_at
            d.peak_pps, d.peak_bps = active.peak_pps, active.peak_bps
            d.severity = active.severity
            d.classification = classification_of(active.family, active.vectors)
            group.incident_uuid = active.uuid
            group.order = self._order_of(group)
            self._publish_group(group)
            log.info("fleet incident %s on %s resumed", active.uuid, group.key)

    # ---- baselines ---------------------------------------------------------------------

    async def save_baselines(self, *, force: bool = False) -> None:
        now = self.clock()
        self._saved_at = now
        states = {
            key: g.baseline.state(now)
            for key, g in self.groups.items()
            if g.baseline.samples and (force or g.baseline.dirty)
        }
        await group_store.save_baselines(self.db, states)
        for key in states:
            self.groups[key].baseline.dirty = False


def _moved(before: Classification | None, group: Group) -> bool:
    """The vectors the nodes are ordered to plan from changed."""
    c = group.detector.classification
    if c is None or before is None or group.order is None:
        return True
    return signature(before) != signature(c)


class UpstreamHook(Protocol):
    """What the engine calls each evaluated second of a group with an active incident
    (control.fleet.upstream implements it)."""

    async def on_second(
        self, group: Group, gs: GroupSecond, nodes: Mapping[int, NodeAddress]
    ) -> None: ...
