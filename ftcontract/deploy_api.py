"""The Deploy API (`POST /api/deploy`): register a node with a workspace deploy token."""

from __future__ import annotations

import msgspec


class DeployRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    name: str  # display name, 1-100 characters, unique among the workspace's live nodes
    ip: str  # public IPv4 or IPv6 address (stored in canonical form)
    location: str | None = None
    os: str | None = None
    interface: str = "eth0"


class DeployReply(msgspec.Struct, kw_only=True):
    ok: bool
    node_uuid: str
    api_key: str  # 64 hex characters, shown only here; the store keeps its SHA-256
    name: str
    ip: str
