"""Discord: execute webhook with one embed whose colour is the severity."""

from __future__ import annotations

from control.notify.config import DiscordConfig
from control.notify.formats.request import OutboundRequest, json_request, truncate, utc_iso
from control.notify.message import Notice
from ftcontract.vocabulary import Severity

SEVERITY_COLOURS: dict[Severity, int] = {
    "low": 0x3498DB,  # blue
    "medium": 0xF1C40F,  # yellow
    "high": 0xE67E22,  # orange
    "critical": 0xE74C3C,  # red
}
ENDED_COLOUR = 0x2ECC71  # green
TEST_COLOUR = 0x95A5A6  # grey


def colour(notice: Notice) -> int:
    if notice.is_end:
        return ENDED_COLOUR
    if notice.kind == "test":
        return TEST_COLOUR
    return SEVERITY_COLOURS[notice.severity]


def build(cfg: DiscordConfig, notice: Notice) -> OutboundRequest:
    # Limits from Discord's embed docs: title 256, description 4096, field value 1024.
    embed = {
        "title": truncate(notice.title, 256),
        "description": truncate(notice.summary or notice.headline, 4096),
        "color": colour(notice),
        "fields": [
            {"name": name, "value": truncate(value, 1024), "inline": name != "Incident"}
            for name, value in notice.facts()
        ],
        "footer": {"text": "fasttrace"},
        "timestamp": utc_iso(),
    }
    payload: dict[str, object] = {"embeds": [embed], "allowed_mentions": {"parse": []}}
    if cfg.username:
        payload["username"] = cfg.username
    return json_request(cfg.webhook_url, payload)
