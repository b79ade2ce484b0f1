"""The REST representation of a notification channel."""

from __future__ import annotations

from typing import Literal

import msgspec

ChannelType = Literal[
    "discord",
    "slack",
    "email",
    "sms",
    "pagerduty",
    "opsgenie",
    "webhook",
    "teams",
    "telegram",
    "grafana",
    "datadog",
    "prometheus",
]


class Channel(msgspec.Struct, kw_only=True):
    id: int
    name: str
    type: str
    config: dict[str, object]  # secrets masked
    enabled: bool
    created_at: str
