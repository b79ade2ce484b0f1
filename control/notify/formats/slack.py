"""Slack: incoming webhook with Block Kit blocks (and `text` as the notification fallback)."""

from __future__ import annotations

from control.notify.config import SlackConfig
from control.notify.formats.request import OutboundRequest, json_request, truncate
from control.notify.message import Notice


def build(cfg: SlackConfig, notice: Notice) -> OutboundRequest:
    # Block Kit limits: header text 150, section field text 2000 (max 10 fields),
    # section text 3000.
    blocks: list[dict[str, object]] = [
        {"type": "header", "text": {"type": "plain_text", "text": truncate(notice.title, 150)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": truncate(f"*{name}*\n{value}", 2000)}
                for name, value in notice.facts()[:10]
            ],
        },
    ]
    if notice.summary:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": truncate(notice.summary, 3000)}}
        )
    footer = f"fasttrace · incident {notice.incident_uuid}"
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": footer}]})
    return json_request(cfg.webhook_url, {"text": notice.title, "blocks": blocks})
