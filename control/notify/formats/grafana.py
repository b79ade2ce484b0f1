"""Grafana: an annotation (POST /api/annotations) per event, Bearer service-account token.

The start is a point annotation at the attack's start; the end is a region annotation
from start to end, so the whole attack is shaded on dashboards.
"""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from control.notify.config import GrafanaConfig
from control.notify.formats.request import OutboundRequest, join_url, json_request, parse_iso
from control.notify.message import Notice


def _epoch_ms(moment: datetime | None) -> int:
    return int((moment or datetime.now(UTC)).timestamp() * 1000)


def _where(notice: Notice) -> list[str]:
    return ["fleet", notice.group] if notice.is_fleet else [notice.node_name]


def build(cfg: GrafanaConfig, notice: Notice) -> OutboundRequest:
    started = _epoch_ms(parse_iso(notice.started_at))
    facts = "<br>".join(f"<b>{escape(n)}:</b> {escape(v)}" for n, v in notice.facts())
    text = f"<b>{escape(notice.title)}</b><br>{facts}"
    if notice.summary:
        text += f"<br>{escape(notice.summary)}"
    payload: dict[str, object] = {
        "time": started,
        "tags": ["ddos", notice.kind, notice.family, notice.severity, *_where(notice), *cfg.tags],
        "text": text,
    }
    if notice.is_end:
        payload["timeEnd"] = max(started, _epoch_ms(parse_iso(notice.ended_at)))
    if cfg.dashboard_uid:
        payload["dashboardUID"] = cfg.dashboard_uid
    if cfg.panel_id is not None:
        payload["panelId"] = cfg.panel_id
    headers = {"Authorization": f"Bearer {cfg.token}"}
    return json_request(join_url(cfg.url, "/api/annotations"), payload, headers=headers)
