"""Prometheus Alertmanager API v2: POST /api/v2/alerts, firing then resolved (endsAt).

Labels identify the alert in Alertmanager, so they hold only what never changes during
an incident (severity rises, so it is an annotation); the resolved post repeats the same
labels with endsAt set to the end.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from control.notify.config import PrometheusConfig
from control.notify.formats.request import (
    OutboundRequest,
    join_url,
    json_request,
    parse_iso,
    utc_iso,
)
from control.notify.message import Notice

ALERT_NAME = "DDoSAttack"


def _iso(moment: datetime) -> str:
    return utc_iso(moment.timestamp())


def build(cfg: PrometheusConfig, notice: Notice) -> OutboundRequest:
    now = datetime.now(UTC)
    started = parse_iso(notice.started_at) or now
    # a fleet incident has a group instead of a node
    where = (
        {"scope": "fleet", "group": notice.group} if notice.is_fleet else {"node": notice.node_name}
    )
    labels = {
        **cfg.labels,
        "alertname": "DDoSTestAlert" if notice.kind == "test" else ALERT_NAME,
        **where,
        "family": notice.family,
        "incident_uuid": notice.incident_uuid,
    }
    annotations = {key: str(value) for key, value in notice.details().items()}
    annotations["title"] = notice.title
    if notice.is_end:
        ends = max(parse_iso(notice.ended_at) or now, started)
    else:
        # Alertmanager resolves an alert on its own at endsAt; a firing alert is held for
        # firing_hold_sec so that a lost end event still clears it eventually.
        ends = now + timedelta(seconds=cfg.firing_hold_sec)
    alert = {
        "labels": labels,
        "annotations": annotations,
        "startsAt": _iso(started),
        "endsAt": _iso(ends),
    }
    headers = {}
    if cfg.bearer_token:
        headers["Authorization"] = f"Bearer {cfg.bearer_token}"
    auth = (cfg.username, cfg.password) if cfg.username and cfg.password is not None else None
    return json_request(
        join_url(cfg.url, "/api/v2/alerts"), [alert], headers=headers, basic_auth=auth
    )
