"""Each channel type, end to end: an incident opens and ends in the store, the service's
loopback receiver gets that service's documented request, carrying the incident."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from control.incidents.schemas import Incident
from lab import notify_receivers as rx
from lab.notify_channels import RECEIVERS, channel_config
from tests.api.notify.conftest import Store


def _haystack(service: str, req: rx.Received) -> str:
    """Where the human-readable message lives in that service's request."""
    if service == "sms":
        return req.form()["Body"][0]
    if service == "telegram":
        return str(req.json()["text"])
    return "\n".join(_flatten(req.json()))


def _flatten(value: Any, key: str = "") -> list[str]:
    """Every leaf of a JSON document as "key: value" lines (escapes decoded)."""
    if isinstance(value, dict):
        return [line for k, v in value.items() for line in _flatten(v, str(k))]
    if isinstance(value, list):
        return [line for v in value for line in _flatten(v, key)]
    return [f"{key}: {value}"]


def assert_carries_incident(text: str, incident: Incident, node_name: str) -> None:
    # node, family, severity, peak pps and bps, source count, duration, uuid, summary
    assert node_name in text
    assert incident.family in text
    assert incident.severity in text
    assert "2.45 Mpps" in text or "2450000" in text
    assert "1.20 Gbps" in text or "1200000000" in text
    assert re.search(r"(?is)(sources?(_count)?\W.{0,18}?\b3\b|\b3 sources)", text), text
    assert re.search(r"(?is)(duration(_sec)?\W.{0,18}?\d|\d+ min \d+ s)", text), text
    assert incident.uuid in text
    # The summary (JSON-escaped in JSON bodies, HTML-escaped for Telegram).
    assert incident.summary.split(",")[0] in text


@pytest.mark.parametrize("service", sorted(RECEIVERS))
async def test_start_and_end_reach_the_service_in_its_format(
    service: str, store: Store, receivers: Any
) -> None:
    receiver = receivers(service)
    channel_id = await store.channel(service, channel_config(receiver))
    await store.service()

    incident = await store.open_incident()
    (start,) = await receiver.wait_for(1)
    await store.incidents.resolve(store.workspace_id, incident.uuid)
    start, end = await receiver.wait_for(2)
    await store.wait_settled(channel_id, 2)

    assert receiver.problems() == []
    assert_carries_incident(_haystack(service, start), incident, store.node_name)
    rows = await store.deliveries(channel_id)
    assert [(r["event_kind"], r["status"], r["attempts"]) for r in rows] == [
        ("opened", "delivered", 1),
        ("resolved", "delivered", 1),
    ]
    if service not in ("pagerduty", "opsgenie"):  # their end messages are resolve/close
        assert "ended" in _haystack(service, end) or "resolved" in _haystack(service, end)


async def test_pagerduty_triggers_with_incident_uuid_and_resolves_on_end(
    store: Store, receivers: Any
) -> None:
    receiver = receivers("pagerduty")
    await store.channel("pagerduty", channel_config(receiver))
    await store.service()
    incident = await store.open_incident(severity="medium")
    await receiver.wait_for(1)
    await store.incidents.update(store.workspace_id, incident.uuid, _change(severity="critical"))
    await receiver.wait_for(2)
    await store.incidents.set_status(store.workspace_id, incident.uuid, "false_positive")
    reqs = await receiver.wait_for(3)

    assert receiver.problems() == []
    bodies = [r.json() for r in reqs]
    assert [b["event_action"] for b in bodies] == ["trigger", "trigger", "resolve"]
    assert {b["dedup_key"] for b in bodies} == {incident.uuid}
    assert [b["payload"]["severity"] for b in bodies[:2]] == ["warning", "critical"]


async def test_opsgenie_creates_with_alias_and_closes_on_end(store: Store, receivers: Any) -> None:
    receiver = receivers("opsgenie")
    await store.channel("opsgenie", channel_config(receiver))
    await store.service()
    incident = await store.open_incident(severity="high")
    await receiver.wait_for(1)
    await store.incidents.resolve(store.workspace_id, incident.uuid)
    create, close = await receiver.wait_for(2)

    assert receiver.problems() == []
    assert create.path == "/v2/alerts"
    assert create.json()["alias"] == incident.uuid
    assert create.json()["priority"] == "P2"
    assert close.path == f"/v2/alerts/{incident.uuid}/close"
    assert close.query == {"identifierType": ["alias"]}


async def test_alertmanager_fires_then_resolves_with_ends_at(store: Store, receivers: Any) -> None:
    receiver = receivers("prometheus")
    await store.channel("prometheus", channel_config(receiver))
    await store.service()
    incident = await store.open_incident()
    await receiver.wait_for(1)
    await store.incidents.resolve(store.workspace_id, incident.uuid)
    firing, resolved = await receiver.wait_for(2)

    assert receiver.problems() == []
    (fire,) = firing.json()
    (done,) = resolved.json()
    now = datetime.now(UTC)
    # Same labels = same alert in Alertmanager; endsAt in the future while firing,
    # at the end (not after now) when resolved.
    assert fire["labels"] == done["labels"]
    assert fire["labels"]["incident_uuid"] == incident.uuid
    assert _ts(fire["endsAt"]) > now
    assert _ts(done["endsAt"]) <= now
    assert _ts(done["startsAt"]) == _ts(fire["startsAt"])


async def test_grafana_end_is_a_region_from_start_to_end(store: Store, receivers: Any) -> None:
    receiver = receivers("grafana")
    await store.channel("grafana", channel_config(receiver))
    await store.service()
    incident = await store.open_incident()
    await receiver.wait_for(1)
    await store.incidents.resolve(store.workspace_id, incident.uuid)
    start, end = await receiver.wait_for(2)
    assert receiver.problems() == []
    assert "timeEnd" not in start.json()
    assert end.json()["time"] == start.json()["time"]
    assert end.json()["timeEnd"] > end.json()["time"]


async def test_discord_embed_colour_follows_severity(store: Store, receivers: Any) -> None:
    receiver = receivers("discord")
    await store.channel("discord", channel_config(receiver))
    await store.service()
    low = await store.open_incident(severity="low")
    critical = await store.open_incident(severity="critical")
    reqs = await receiver.wait_for(2)
    colours = {
        r.json()["embeds"][0]["fields"][-1]["value"]: r.json()["embeds"][0]["color"] for r in reqs
    }
    assert colours[low.uuid] != colours[critical.uuid]
    assert colours[critical.uuid] == 0xE74C3C


def _change(**fields: Any) -> Any:
    from control.incidents.service import IncidentChange

    return IncidentChange(**fields)


def _ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))
