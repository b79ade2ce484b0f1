"""PagerDuty Events API v2: trigger with dedup_key = incident uuid, resolve when it ends."""

from __future__ import annotations

from control.notify.config import PagerDutyConfig
from control.notify.formats.request import OutboundRequest, join_url, json_request, truncate
from control.notify.message import Notice
from ftcontract.vocabulary import Severity

# PagerDuty's payload.severity is one of critical, error, warning, info.
SEVERITY: dict[Severity, str] = {
    "critical": "critical",
    "high": "error",
    "medium": "warning",
    "low": "info",
}


def build(cfg: PagerDutyConfig, notice: Notice) -> OutboundRequest:
    url = join_url(cfg.api_url, "/v2/enqueue")
    if notice.is_end:
        payload: dict[str, object] = {
            "routing_key": cfg.routing_key,
            "event_action": "resolve",
            "dedup_key": notice.incident_uuid,
        }
        return json_request(url, payload)
    severity = "info" if notice.kind == "test" else SEVERITY[notice.severity]
    summary = notice.title + (f". {notice.summary}" if notice.summary else "")
    event: dict[str, object] = {
        "summary": truncate(summary, 1024),
        # a fleet incident's source is its group (no one node)
        "source": notice.subject,
        "severity": severity,
        "component": notice.group if notice.is_fleet else notice.node_name,
        "group": notice.group if notice.is_fleet else (notice.node_uuid or notice.node_name),
        "class": notice.family,
        "custom_details": notice.details(),
    }
    if notice.started_at:
        event["timestamp"] = notice.started_at
    payload = {
        "routing_key": cfg.routing_key,
        "event_action": "trigger",
        "dedup_key": notice.incident_uuid,
        "client": "fasttrace",
        "payload": event,
    }
    return json_request(url, payload)
