"""Microsoft Teams: webhook (Workflows or Incoming Webhook) message with an Adaptive Card."""

from __future__ import annotations

from control.notify.config import TeamsConfig
from control.notify.formats.request import OutboundRequest, json_request
from control.notify.message import Notice
from ftcontract.vocabulary import Severity

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
_TITLE_COLOURS: dict[Severity, str] = {
    "low": "accent",
    "medium": "warning",
    "high": "warning",
    "critical": "attention",
}


def build(cfg: TeamsConfig, notice: Notice) -> OutboundRequest:
    if notice.is_end:
        title_colour = "good"
    elif notice.kind == "test":
        title_colour = "default"
    else:
        title_colour = _TITLE_COLOURS[notice.severity]
    body: list[dict[str, object]] = [
        {
            "type": "TextBlock",
            "text": notice.title,
            "size": "Large",
            "weight": "Bolder",
            "color": title_colour,
            "wrap": True,
        },
        {
            "type": "FactSet",
            "facts": [{"title": name, "value": value} for name, value in notice.facts()],
        },
    ]
    if notice.summary:
        body.append({"type": "TextBlock", "text": notice.summary, "wrap": True})
    card = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    payload = {
        "type": "message",
        "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}],
    }
    return json_request(cfg.webhook_url, payload)
