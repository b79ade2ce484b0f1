"""The REST representation of a workspace."""

from __future__ import annotations

from typing import Literal

import msgspec


class Workspace(msgspec.Struct, kw_only=True):
    name: str
    plan: str
    subscription_status: Literal["active", "past_due", "canceled"]
    node_count: int
    node_limit: int
    created_at: str
