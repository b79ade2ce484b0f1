"""Generic webhook: our own JSON document, signed with HMAC-SHA256 of the exact body.

The signature header (default ``X-Signature-256``) carries ``sha256=<hex digest>`` of the
raw request body keyed with the channel's secret; receivers recompute and compare in
constant time. ``X-Webhook-Delivery`` is stable across retries of one delivery, so a
receiver can drop a repeat.
"""

from __future__ import annotations

import hashlib
import hmac

import msgspec

from control.notify.config import WebhookConfig
from control.notify.formats.request import OutboundRequest, utc_iso
from control.notify.message import Notice

EVENT_NAMES = {
    "opened": "attack_start",
    "escalated": "attack_update",
    "resolved": "attack_end",
    "false_positive": "attack_end",
    "test": "test",
    "upstream_announced": "upstream_announced",
    "upstream_withdrawn": "upstream_withdrawn",
}


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def build(cfg: WebhookConfig, notice: Notice, delivery_key: str) -> OutboundRequest:
    event = EVENT_NAMES[notice.kind]
    document = {
        "event": event,
        "kind": notice.kind,
        "delivery": delivery_key,
        "sent_at": utc_iso(),
        "title": notice.title,
        "incident": {
            **notice.details(),
            "started_at": notice.started_at,
            "ended_at": notice.ended_at,
        },
    }
    body = msgspec.json.encode(document)
    headers = {
        cfg.signature_header: sign(cfg.secret, body),
        "X-Webhook-Event": event,
        "X-Webhook-Delivery": delivery_key,
    }
    return OutboundRequest(method="POST", url=cfg.url, body=body, headers=headers)
