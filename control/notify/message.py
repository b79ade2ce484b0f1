"""What every notification says, independent of the service that carries it.

A `Notice` is read from the incident the incident service publishes (the REST API's
incident object) and turned into a title, a list of facts and plain text; each service
module lays those out in its own message format.

A fleet incident (an attack spread over a group of nodes) is one notice per event, not one
per node: it names the group and how many nodes instead of a node (`subject`).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

from control.bgp.schemas import UpstreamAnnouncement
from control.incidents.schemas import Incident, IncidentScope, IncidentStatus
from control.incidents.summary import format_duration, format_rate, group_label
from ftcontract.vocabulary import Family, Severity

NoticeKind = Literal[
    "opened",
    "escalated",
    "resolved",
    "false_positive",
    "test",
    "upstream_announced",  # a FlowSpec rule / RTBH route went out to the upstream routers
    "upstream_withdrawn",
]
NOTICE_KINDS: tuple[NoticeKind, ...] = (
    "opened",
    "escalated",
    "resolved",
    "false_positive",
    "test",
    "upstream_announced",
    "upstream_withdrawn",
)
UPSTREAM_KINDS: tuple[NoticeKind, ...] = ("upstream_announced", "upstream_withdrawn")


def notice_kind(value: str) -> NoticeKind:
    """Narrow an event or column value to a NoticeKind (ValueError for anything else)."""
    for kind in NOTICE_KINDS:
        if kind == value:
            return kind
    raise ValueError(f"not a notification kind: {value!r}")


_HEADLINES: dict[str, str] = {
    "opened": "DDoS attack detected",
    "escalated": "DDoS attack escalated",
    "resolved": "DDoS attack ended",
    "false_positive": "Incident marked false positive",
    "test": "Test notification",
    "upstream_announced": "DDoS attack escalated upstream (BGP)",
    "upstream_withdrawn": "Upstream mitigation withdrawn (BGP)",
}
_FLEET_HEADLINES: dict[str, str] = {
    "opened": "Fleet DDoS attack detected",
    "escalated": "Fleet DDoS attack escalated",
    "resolved": "Fleet DDoS attack ended",
    "false_positive": "Fleet incident marked false positive",
    "upstream_announced": "Fleet DDoS attack escalated upstream (BGP)",
    "upstream_withdrawn": "Fleet upstream mitigation withdrawn (BGP)",
}


def describe_announcement(a: UpstreamAnnouncement) -> str:
    """ "FlowSpec discard 203.0.113.7/32 proto 17 sport 11211" / "RTBH 203.0.113.7/32 ..." """
    if a.kind == "rtbh":
        return f"RTBH {a.destination} community {a.community}"
    terms = [f"FlowSpec {a.action}", a.destination]
    for name, value in (
        ("from", a.source),
        ("proto", a.protocol),
        ("sport", a.src_port),
        ("dport", a.dst_port),
        ("tcp-flags", a.tcp_flags),
    ):
        if value is not None:
            terms.append(f"{name} {value}")
    if a.rate_pps is not None:
        terms.append(f"at {a.rate_pps:g} pps")
    return " ".join(terms)


def _upstream(kind: NoticeKind, incident: Incident) -> str:
    """What is in force upstream (announced), or what was taken back (withdrawn)."""
    if kind not in UPSTREAM_KINDS:
        return ""
    wanted = kind == "upstream_announced"
    return "; ".join(
        describe_announcement(a) for a in incident.announcements if a.in_force == wanted
    )


@dataclass(frozen=True, slots=True)
class Notice:
    kind: NoticeKind
    incident_uuid: str
    node_uuid: str
    node_name: str
    family: Family
    severity: Severity
    status: IncidentStatus
    peak_pps: float
    peak_bps: float
    source_count: int
    duration_sec: float
    started_at: str | None
    ended_at: str | None
    summary: str
    # upstream_* notices: the announcements in force (announced) or withdrawn
    upstream: str = ""
    # A fleet incident: no node (node_uuid and node_name empty); its group and how many
    # nodes the group's attack was spread over.
    scope: IncidentScope = "node"
    group: str = ""
    node_count: int = 0

    @classmethod
    def from_incident(cls, kind: NoticeKind, incident: Incident) -> Notice:
        return cls(
            kind=kind,
            incident_uuid=incident.uuid,
            node_uuid=incident.node.uuid if incident.node else "",
            node_name=incident.node.name if incident.node else "",
            family=incident.family,
            severity=incident.severity,
            status=incident.status,
            peak_pps=float(incident.peak_pps),
            peak_bps=float(incident.peak_bps),
            source_count=incident.source_count,
            duration_sec=float(incident.duration_sec),
            started_at=incident.started_at,
            ended_at=incident.ended_at,
            summary=incident.summary,
            upstream=_upstream(kind, incident),
            scope=incident.scope,
            group=incident.group or "",
            node_count=len(incident.nodes),
        )

    @property
    def is_fleet(self) -> bool:
        return self.scope == "fleet"

    @property
    def subject(self) -> str:
        """What was attacked: the node, or the fleet group and its node count."""
        if not self.is_fleet:
            return self.node_name
        nodes = f"{self.node_count} node" + ("" if self.node_count == 1 else "s")
        where = group_label(self.group)
        return f"{where}, {nodes}" if self.node_count else where

    @property
    def is_end(self) -> bool:
        """The incident is over: paging services resolve/close their alert."""
        return self.kind in ("resolved", "false_positive")

    @property
    def headline(self) -> str:
        return (_FLEET_HEADLINES if self.is_fleet else _HEADLINES)[self.kind]

    @property
    def title(self) -> str:
        return f"{self.headline}: {self.family} on {self.subject} ({self.severity})"

    def facts(self) -> list[tuple[str, str]]:
        # A fleet incident's sources are the nodes' own (no group-wide count): not listed.
        where: list[tuple[str, str]] = (
            [("Scope", "fleet"), ("Group", self.group), ("Nodes", str(self.node_count))]
            if self.is_fleet
            else [("Node", self.node_name)]
        )
        return [
            *where,
            ("Family", self.family),
            ("Severity", self.severity),
            ("Peak pps", format_rate(self.peak_pps, "pps")),
            ("Peak bps", format_rate(self.peak_bps, "bps")),
            *([] if self.is_fleet else [("Sources", str(self.source_count))]),
            ("Duration", format_duration(self.duration_sec)),
            ("Incident", self.incident_uuid),
            *([("Upstream", self.upstream)] if self.upstream else []),
        ]

    def details(self) -> dict[str, str | float | int]:
        """Machine-readable fields for services that take structured details."""
        where: dict[str, str | float | int] = (
            {"scope": "fleet", "group": self.group, "node_count": self.node_count}
            if self.is_fleet
            else {"scope": "node", "node": self.node_name, "node_uuid": self.node_uuid}
        )
        return {
            **where,
            "family": self.family,
            "severity": self.severity,
            "status": self.status,
            "peak_pps": self.peak_pps,
            "peak_bps": self.peak_bps,
            "source_count": self.source_count,
            "duration_sec": self.duration_sec,
            "incident_uuid": self.incident_uuid,
            "summary": self.summary,
            **({"upstream": self.upstream} if self.upstream else {}),
        }

    def text(self) -> str:
        lines = [self.title, ""]
        lines += [f"{name}: {value}" for name, value in self.facts()]
        if self.summary:
            lines += ["", self.summary]
        return "\n".join(lines)


def build_test_notice() -> Notice:
    """A made-up incident for `POST /channels/{id}/test`; the text says it is a test.

    Its uuid is fresh each time so that paging services never merge two tests.
    """
    return Notice(
        kind="test",
        incident_uuid=str(uuid.uuid4()),
        node_uuid="00000000-0000-4000-8000-000000000001",
        node_name="test-node",
        family="udp_flood",
        severity="low",
        status="active",
        peak_pps=125000.0,
        peak_bps=1.2e9,
        source_count=42,
        duration_sec=65.0,
        started_at=None,
        ended_at=None,
        summary="This is a test message from the notification channel settings; "
        "no incident happened.",
    )
