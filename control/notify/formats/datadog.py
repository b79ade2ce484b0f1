"""Datadog Events API v1: POST /api/v1/events with the DD-API-KEY header."""

from __future__ import annotations

from control.notify.config import DatadogConfig
from control.notify.formats.request import OutboundRequest, join_url, json_request, truncate
from control.notify.message import Notice
from ftcontract.vocabulary import Severity

ALERT_TYPE: dict[Severity, str] = {
    "critical": "error",
    "high": "error",
    "medium": "warning",
    "low": "warning",
}


def _where(notice: Notice) -> list[str]:
    if notice.is_fleet:
        return ["scope:fleet", f"group:{notice.group}", f"nodes:{notice.node_count}"]
    return [f"node:{notice.node_name}"]


def build(cfg: DatadogConfig, notice: Notice) -> OutboundRequest:
    if notice.is_end:
        alert_type = "success"
    elif notice.kind == "test":
        alert_type = "info"
    else:
        alert_type = ALERT_TYPE[notice.severity]
    payload: dict[str, object] = {
        "title": truncate(notice.title, 100),
        "text": truncate(notice.text(), 4000),
        "alert_type": alert_type,
        "priority": "normal",
        "source_type_name": "fasttrace",
        # One aggregation key per incident groups its start, escalations and end.
        "aggregation_key": notice.incident_uuid[:100],
        "tags": [
            *_where(notice),
            f"family:{notice.family}",
            f"severity:{notice.severity}",
            f"incident:{notice.incident_uuid}",
            f"event:{notice.kind}",
            *cfg.tags,
        ],
    }
    if not notice.is_fleet:
        payload["host"] = notice.node_name  # a fleet incident is on no one host
    api_url = cfg.api_url or f"https://api.{cfg.site}"
    headers = {"DD-API-KEY": cfg.api_key}
    return json_request(join_url(api_url, "/api/v1/events"), payload, headers=headers)
