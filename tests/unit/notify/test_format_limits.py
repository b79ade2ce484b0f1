"""Every service's request stays inside that service's documented limits, whatever the
incident holds (long summaries, long node names, any Unicode): each built request is
checked by the same validator the loopback receiver uses."""

from __future__ import annotations

import base64
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from control.notify.config import parse_config
from control.notify.formats import build_http_request
from control.notify.message import Notice
from lab import notify_receivers as rx
from lab.notify_channels import RECEIVERS, channel_config

VALIDATORS = {
    "discord": rx.check_discord,
    "slack": rx.check_slack,
    "teams": rx.check_teams,
    "telegram": rx.check_telegram,
    "sms": rx.check_twilio,
    "pagerduty": rx.check_pagerduty,
    "opsgenie": rx.check_opsgenie,
    "webhook": rx.check_webhook,
    "grafana": rx.check_grafana,
    "datadog": rx.check_datadog,
    "prometheus": rx.check_alertmanager,
}

text = st.text(min_size=1, max_size=6000)
notices = st.builds(
    Notice,
    kind=st.sampled_from(["opened", "escalated", "resolved", "false_positive", "test"]),
    incident_uuid=st.uuids().map(str),
    node_uuid=st.uuids().map(str),
    node_name=st.text(min_size=1, max_size=300),
    family=st.sampled_from(["udp_flood", "syn_flood", "dns_amplification", "multi_vector"]),
    severity=st.sampled_from(["low", "medium", "high", "critical"]),
    status=st.sampled_from(["active", "resolved", "false_positive"]),
    peak_pps=st.floats(min_value=0, max_value=1e12),
    peak_bps=st.floats(min_value=0, max_value=1e15),
    source_count=st.integers(min_value=0, max_value=10**7),
    duration_sec=st.floats(min_value=0, max_value=1e7),
    started_at=st.just("2026-01-01T00:00:00Z") | st.none(),
    ended_at=st.just("2026-01-01T01:00:00Z") | st.none(),
    summary=text | st.just(""),
)


def _received(req: Any) -> rx.Received:
    parts = urlsplit(req.url)
    headers = {k.lower(): v for k, v in req.headers.items()}
    headers["content-type"] = req.content_type
    if req.basic_auth:
        token = base64.b64encode(":".join(req.basic_auth).encode()).decode()
        headers["authorization"] = f"Basic {token}"
    return rx.Received(
        method=req.method,
        path=parts.path,
        query=parse_qs(parts.query),
        headers=headers,
        body=req.body,
        at=time.time(),
    )


RECEIVER_EXPECT = {}
CONFIGS = {}
for _service, _make in RECEIVERS.items():
    _r = _make()
    RECEIVER_EXPECT[_service] = dict(_r.expect)
    CONFIGS[_service] = parse_config(_service, channel_config(_r))
    _r.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(notice=notices, service=st.sampled_from(sorted(VALIDATORS)))
def test_requests_respect_documented_limits(notice: Notice, service: str) -> None:
    req = build_http_request(CONFIGS[service], notice, f"{notice.incident_uuid}:opened")
    received = _received(req)
    VALIDATORS[service](received, RECEIVER_EXPECT[service])
    assert received.problems == []


def test_extreme_incident_still_fits_every_service() -> None:
    notice = Notice(
        kind="opened",
        incident_uuid="6f1c2b1e-8a47-4b8e-9a51-0c8f9d3e2a10",
        node_uuid="2c7f0a8e-1d3b-4f6a-8e9c-5b4a3d2c1e0f",
        node_name="n" * 100,
        family="multi_vector",
        severity="critical",
        status="active",
        peak_pps=9.9e11,
        peak_bps=9.9e14,
        source_count=10**7,
        duration_sec=9e6,
        started_at="2026-01-01T00:00:00Z",
        ended_at=None,
        summary="Ü<b>&" * 5000,
    )
    for service, check in VALIDATORS.items():
        req = build_http_request(CONFIGS[service], notice, "k")
        received = _received(req)
        check(received, RECEIVER_EXPECT[service])
        assert received.problems == [], service
