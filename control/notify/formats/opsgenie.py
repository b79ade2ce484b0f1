"""Opsgenie Alert API v2: create with alias = incident uuid, close by alias when it ends."""

from __future__ import annotations

from urllib.parse import quote

from control.notify.config import OpsgenieConfig
from control.notify.formats.request import OutboundRequest, join_url, json_request, truncate
from control.notify.message import Notice
from ftcontract.vocabulary import Severity

PRIORITY: dict[Severity, str] = {"critical": "P1", "high": "P2", "medium": "P3", "low": "P4"}


def build(cfg: OpsgenieConfig, notice: Notice) -> OutboundRequest:
    headers = {"Authorization": f"GenieKey {cfg.api_key}"}
    if notice.is_end:
        url = join_url(cfg.api_url, f"/v2/alerts/{quote(notice.incident_uuid, safe='')}/close")
        payload: dict[str, object] = {
            "source": "fasttrace",
            "user": "fasttrace",
            "note": truncate(notice.text(), 25000),
        }
        return json_request(url + "?identifierType=alias", payload, headers=headers)
    # Documented limits: message 130, alias 512, description 15000, entity 512,
    # details values are strings, up to 20 tags of 50 characters.
    scope = ["fleet"] if notice.is_fleet else []
    tags = ["ddos", notice.family, notice.severity, *scope, *cfg.tags]
    payload = {
        "message": truncate(notice.title, 130),
        "alias": notice.incident_uuid,
        "description": truncate(notice.text(), 15000),
        "tags": [truncate(tag, 50) for tag in tags][:20],
        "details": {key: truncate(str(value), 8000) for key, value in notice.details().items()},
        "entity": truncate(notice.subject, 512),
        "source": "fasttrace",
        "priority": "P5" if notice.kind == "test" else PRIORITY[notice.severity],
    }
    if cfg.responders:
        payload["responders"] = cfg.responders
    return json_request(join_url(cfg.api_url, "/v2/alerts"), payload, headers=headers)
