"""Channel configs that point at the loopback receivers (lab.notify_receivers): one
receiver factory per HTTP channel type, and the config a channel of that type needs to
deliver to a given receiver. Shared by the notification tests and bench_notify."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lab import notify_receivers as rx


def channel_config(receiver: rx.Receiver) -> dict[str, Any]:
    """A channel config of the receiver's type that points at the receiver."""
    e, base = receiver.expect, receiver.base_url
    match receiver.service:
        case "discord" | "slack" | "teams":
            return {"webhook_url": base + e["path"]}
        case "telegram":
            return {"bot_token": e["bot_token"], "chat_id": e["chat_id"], "api_url": base}
        case "sms":
            return {
                "account_sid": e["account_sid"],
                "auth_token": e["auth_token"],
                "from": e["from"],
                "to": e["to"],
                "api_url": base,
            }
        case "pagerduty":
            return {"routing_key": e["routing_key"], "api_url": base}
        case "opsgenie":
            return {"api_key": e["api_key"], "api_url": base}
        case "webhook":
            return {"url": base + e["path"], "secret": e["secret"]}
        case "grafana":
            return {"token": e["token"], "url": base}
        case "datadog":
            return {"api_key": e["api_key"], "api_url": base}
        case "prometheus":
            return {"url": base}
    raise AssertionError(receiver.service)


RECEIVERS: dict[str, Callable[[], rx.Receiver]] = {
    "discord": rx.discord,
    "slack": rx.slack,
    "teams": rx.teams,
    "telegram": rx.telegram,
    "sms": rx.twilio,
    "pagerduty": rx.pagerduty,
    "opsgenie": rx.opsgenie,
    "webhook": rx.webhook,
    "grafana": rx.grafana,
    "datadog": rx.datadog,
    "prometheus": rx.alertmanager,
}
