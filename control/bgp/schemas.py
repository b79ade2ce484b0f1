"""The REST representation of upstream mitigation (msgspec Structs): announcements, refusals,
peers. Shared by the BGP routes and the incident (which shows its own)."""

from __future__ import annotations

from typing import Literal

import msgspec

from control.bgp.ledger import Trigger, WithdrawReason

AnnouncementKind = Literal["flowspec", "rtbh"]
AnnouncementAction = Literal["discard", "rate_limit", "blackhole"]
MitigationPolicy = Literal["local", "flowspec", "flowspec_then_rtbh"]
MITIGATION_POLICIES: tuple[MitigationPolicy, ...] = ("local", "flowspec", "flowspec_then_rtbh")


class UpstreamAnnouncement(msgspec.Struct, kw_only=True):
    """One FlowSpec rule or RTBH route ftcontrol announced, in force or past."""

    id: int
    kind: AnnouncementKind
    # null: a fleet incident's announcement (for its group's prefix, no one node)
    node_uuid: str | None
    incident_uuid: str | None  # null once the incident is gone
    # manual (an operator), uplink_share or link_saturated (automatic), fleet_uplink_share
    # (a fleet incident's group sum)
    trigger: Trigger
    destination: str  # the node's address as /32 or /128, or a fleet group's prefix
    # FlowSpec match fields; null: not matched on
    source: str | None = None
    protocol: int | None = None
    src_port: int | None = None
    dst_port: int | None = None
    tcp_flags: int | None = None
    tcp_flags_mask: int | None = None
    packet_length_min: int | None = None
    packet_length_max: int | None = None
    action: AnnouncementAction  # FlowSpec discard / rate_limit, RTBH blackhole
    rate_pps: float | None = None  # rate_limit: packets per second let through
    next_hop: str | None = None  # RTBH
    community: str | None = None  # RTBH, "ASN:VALUE"
    announced_at: str  # the last (re)announcement; a renewal moves it
    expires_at: str
    in_force: bool
    withdrawn_at: str | None = None
    withdraw_reason: WithdrawReason | None = None


class UpstreamRefusal(msgspec.Struct, kw_only=True):
    """An escalation that announced nothing, and why."""

    action: AnnouncementKind
    trigger: Trigger
    reason: str
    refused_at: str


class BgpPeer(msgspec.Struct, kw_only=True):
    """A BGP session of ftcontrol's speaker, as ExaBGP last reported it."""

    address: str
    state: Literal["down", "connected", "up"]
    since: str
    reason: str  # why it last went down ("" while up)
