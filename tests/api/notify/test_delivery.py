"""Delivery guarantees: retries with back-off and jitter, Retry-After, one record per
attempt, restart with deliveries pending, isolation of slow channels, no duplicates,
per-channel filters, HMAC verification by the receiver."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from control.channels import service as channel_store
from control.core.db import open_db
from control.incidents.event_bus import IncidentEvent, IncidentEvents
from control.incidents.schemas import MitigationRule
from control.incidents.service import IncidentChange
from control.nodes.service import NodeFields, NodeStatusPolicy, create_node
from control.notify.retry import RetryPolicy
from control.notify.service import NotificationService, NotifySettings
from lab import notify_receivers as rx
from lab.notify_channels import channel_config
from tests.api.notify.conftest import FAST, Store


async def test_server_errors_are_retried_with_growing_jittered_backoff(
    store: Store, receivers: Any
) -> None:
    receiver = receivers("webhook").then(rx.SERVER_ERROR, rx.SERVER_ERROR)
    channel_id = await store.channel("webhook", channel_config(receiver))
    await store.service()
    await store.open_incident()
    reqs = await receiver.wait_for(3)
    await store.wait_settled(channel_id, 1)

    attempts = await store.attempts(channel_id)
    assert [(a["attempt"], a["outcome"], a["http_status"]) for a in attempts] == [
        (1, "retry", 500),
        (2, "retry", 500),
        (3, "delivered", 200),
    ]
    policy = FAST.retry
    first, second = attempts[0]["retry_in_sec"], attempts[1]["retry_in_sec"]
    # Full back-off d = base * 2^(n-1), drawn from [(1 - jitter) d, d].
    assert (1 - policy.jitter) * policy.base_delay_sec <= first <= policy.base_delay_sec
    assert (1 - policy.jitter) * 2 * policy.base_delay_sec <= second <= 2 * policy.base_delay_sec
    assert "HTTP 500" in attempts[0]["error"]
    # The waits really happened between the requests the receiver saw.
    assert reqs[1].at - reqs[0].at >= first - 0.01
    assert reqs[2].at - reqs[1].at >= second - 0.01
    (delivery,) = await store.deliveries(channel_id)
    assert (delivery["status"], delivery["attempts"]) == ("delivered", 3)
    # Every try carried the same delivery id, so a receiver can drop repeats.
    assert len({r.headers["x-webhook-delivery"] for r in reqs}) == 1


async def test_retry_after_is_honoured(store: Store, receivers: Any) -> None:
    receiver = receivers("slack").then(rx.too_many("1"))
    channel_id = await store.channel("slack", channel_config(receiver))
    await store.service()
    await store.open_incident()
    first, second = await receiver.wait_for(2)
    await store.wait_settled(channel_id, 1)

    attempts = await store.attempts(channel_id)
    assert [(a["outcome"], a["http_status"], a["retry_in_sec"]) for a in attempts] == [
        ("retry", 429, 1.0),
        ("delivered", 200, None),
    ]
    # Far above the 0.1 s back-off this channel would otherwise use.
    assert second.at - first.at >= 1.0


async def test_telegram_retry_after_in_json_body_is_honoured(store: Store, receivers: Any) -> None:
    limited = rx.json_reply(
        429,
        {
            "ok": False,
            "error_code": 429,
            "description": "Too Many Requests: retry after 1",
            "parameters": {"retry_after": 1},
        },
    )
    receiver = receivers("telegram").then(limited)
    channel_id = await store.channel("telegram", channel_config(receiver))
    await store.service()
    await store.open_incident()
    first, second = await receiver.wait_for(2)
    await store.wait_settled(channel_id, 1)
    assert (await store.attempts(channel_id))[0]["retry_in_sec"] == 1.0
    assert second.at - first.at >= 1.0


async def test_gives_up_after_max_attempts(store: Store, receivers: Any) -> None:
    receiver = receivers("datadog").then(*[rx.SERVER_ERROR] * 10)
    channel_id = await store.channel("datadog", channel_config(receiver))
    await store.service()
    await store.open_incident()
    await store.wait_settled(channel_id, 1)

    attempts = await store.attempts(channel_id)
    assert [a["outcome"] for a in attempts] == ["retry"] * 3 + ["failed"]
    assert len(receiver.requests) == FAST.retry.max_attempts
    (delivery,) = await store.deliveries(channel_id)
    assert delivery["status"] == "failed"
    assert "HTTP 500" in delivery["last_error"]


async def test_client_errors_are_not_retried(store: Store, receivers: Any) -> None:
    receiver = receivers("discord").then(rx.json_reply(404, {"message": "Unknown Webhook"}))
    channel_id = await store.channel("discord", channel_config(receiver))
    await store.service()
    await store.open_incident()
    await store.wait_settled(channel_id, 1)
    attempts = await store.attempts(channel_id)
    assert [(a["outcome"], a["http_status"]) for a in attempts] == [("failed", 404)]
    assert "Unknown Webhook" in attempts[0]["error"]
    assert len(receiver.requests) == 1


async def test_a_hanging_channel_does_not_delay_another(store: Store, receivers: Any) -> None:
    stuck = receivers("webhook").then(rx.HANG)
    healthy = receivers("slack")
    stuck_id = await store.channel("webhook", channel_config(stuck), name="stuck")
    healthy_id = await store.channel("slack", channel_config(healthy), name="healthy")
    settings = msgspec.structs.replace(FAST, http_timeout_sec=2.0)
    await store.service(settings)
    await store.open_incident()

    await healthy.wait_for(1)
    await store.wait_settled(healthy_id, 1)
    # The healthy channel is done while the stuck channel's first attempt is still open.
    assert len(stuck.requests) == 1
    assert await store.attempts(stuck_id) == []
    # The stuck attempt times out, is recorded, and the retry goes through.
    await store.wait_settled(stuck_id, 1)
    attempts = await store.attempts(stuck_id)
    assert [a["outcome"] for a in attempts] == ["retry", "delivered"]
    assert "timeout" in attempts[0]["error"]
    assert attempts[0]["http_status"] is None


async def test_pending_deliveries_survive_a_restart(store: Store, receivers: Any) -> None:
    receiver = receivers("pagerduty").then(rx.SERVER_ERROR)
    channel_id = await store.channel("pagerduty", channel_config(receiver))
    slow_retry = msgspec.structs.replace(
        FAST, retry=RetryPolicy(base_delay_sec=0.5, max_delay_sec=1.0, jitter=0.0)
    )
    first = await store.service(slow_retry)
    incident = await store.open_incident()
    await receiver.wait_for(1)

    async def one_attempt() -> bool:
        return len(await store.attempts(channel_id)) == 1

    await store.wait_until(one_attempt, what="first attempt")
    await first.stop()
    # Events while the service is down are persisted too (the subscription stays).
    await store.incidents.resolve(store.workspace_id, incident.uuid)
    assert [d["status"] for d in await store.deliveries(channel_id)] == ["pending", "pending"]

    # A real restart: new connection, new bus, new service, same database file.
    await store.db.close()
    store.db = await open_db(store.path)
    store.events = IncidentEvents()
    second = NotificationService(store.db, store.events, slow_retry)
    store.services.append(second)
    await second.start()

    reqs = await receiver.wait_for(3)
    await store.wait_settled(channel_id, 2)
    rows = await store.deliveries(channel_id)
    assert [(d["event_kind"], d["status"]) for d in rows] == [
        ("opened", "delivered"),
        ("resolved", "delivered"),
    ]
    # In order, and each event delivered exactly once after the restart.
    assert [r.json()["event_action"] for r in reqs] == ["trigger", "trigger", "resolve"]
    assert receiver.problems() == []


async def test_stop_lets_an_attempt_in_flight_finish_so_restart_does_not_resend(
    store: Store, receivers: Any
) -> None:
    receiver = receivers("webhook").then(rx.Reply(200, delay_sec=0.5))
    channel_id = await store.channel("webhook", channel_config(receiver))
    first = await store.service(msgspec.structs.replace(FAST, http_timeout_sec=2.0))
    await store.open_incident()
    await receiver.wait_for(1)
    await first.stop()  # while the receiver is still answering
    assert [d["status"] for d in await store.deliveries(channel_id)] == ["delivered"]

    await store.service()
    await asyncio.sleep(0.5)
    assert len(receiver.requests) == 1


async def test_one_event_is_never_delivered_twice_to_one_channel(
    store: Store, receivers: Any
) -> None:
    receiver = receivers("webhook")
    channel_id = await store.channel("webhook", channel_config(receiver))
    await store.service()
    incident = await store.open_incident()
    await store.wait_settled(channel_id, 1)
    # The same event again (a replayed publish): queued once, sent once.
    event = IncidentEvent(
        kind="opened",
        workspace_id=store.workspace_id,
        incident_uuid=incident.uuid,
        incident=incident,
    )
    await store.events.publish(event)
    await store.events.publish(event)
    # A later, distinct event still goes out, and proves the worker had time to act.
    await store.incidents.resolve(store.workspace_id, incident.uuid)
    await store.wait_settled(channel_id, 2)
    reqs = await receiver.wait_for(2)
    assert [r.json()["event"] for r in reqs] == ["attack_start", "attack_end"]
    assert len(await store.deliveries(channel_id)) == 2


async def test_filters_minimum_severity_and_node_list(store: Store, receivers: Any) -> None:
    other_node, _ = await create_node(
        store.db,
        store.workspace_id,
        NodeFields.validated(name="edge-ams-2", ip="203.0.113.20"),
        NodeStatusPolicy(),
    )
    high_only = receivers("webhook")
    other_only = receivers("webhook")
    this_by_name = receivers("webhook")
    high_id = await store.channel(
        "webhook", {**channel_config(high_only), "min_severity": "high"}, name="high"
    )
    other_id = await store.channel(
        "webhook", {**channel_config(other_only), "nodes": [other_node.uuid]}, name="other"
    )
    this_id = await store.channel(
        "webhook", {**channel_config(this_by_name), "nodes": [store.node_name]}, name="this"
    )
    await store.service()

    incident = await store.open_incident(severity="medium")
    await store.wait_settled(this_id, 1)
    await store.incidents.update(
        store.workspace_id, incident.uuid, IncidentChange(severity="critical")
    )
    await store.incidents.resolve(store.workspace_id, incident.uuid)
    await store.wait_settled(this_id, 3)
    await store.wait_settled(high_id, 2)

    def events(receiver: rx.Receiver) -> list[str]:
        return [r.json()["event"] for r in receiver.requests]

    assert events(this_by_name) == ["attack_start", "attack_update", "attack_end"]
    # Below "high" while medium; notified from the escalation to critical on.
    assert events(high_only) == ["attack_update", "attack_end"]
    assert await store.deliveries(other_id) == []
    assert events(other_only) == []


async def test_receiver_rejects_a_wrong_hmac_signature(store: Store, receivers: Any) -> None:
    receiver = receivers("webhook")
    config = {**channel_config(receiver), "secret": "not-the-receivers-secret"}
    channel_id = await store.channel("webhook", config)
    await store.service()
    await store.open_incident()
    await receiver.wait_for(1)
    await store.wait_settled(channel_id, 1)
    assert receiver.problems() == ["POST /hooks/ddos: HMAC signature mismatch"]


async def test_deleted_channel_stops_its_pending_retries(store: Store, receivers: Any) -> None:
    receiver = receivers("slack").then(*[rx.SERVER_ERROR] * 10)
    channel_id = await store.channel("slack", channel_config(receiver))
    slow = msgspec.structs.replace(FAST, retry=RetryPolicy(base_delay_sec=0.3, jitter=0.0))
    await store.service(slow)
    await store.open_incident()
    await receiver.wait_for(1)
    await channel_store.delete_channel(store.db, store.workspace_id, channel_id)
    seen = len(receiver.requests)
    await asyncio.sleep(1.0)  # more than two retry windows of this channel
    assert len(receiver.requests) == seen
    assert await store.deliveries(channel_id) == []


async def test_settings_are_strict() -> None:
    try:
        msgspec.convert({"retry": {"base_delay": 1}}, NotifySettings)
    except msgspec.ValidationError as exc:
        assert "base_delay" in str(exc)
    else:
        raise AssertionError("unknown settings key accepted")


async def test_disabling_a_channel_ends_its_pending_retries(store: Store, receivers: Any) -> None:
    receiver = receivers("grafana").then(*[rx.SERVER_ERROR] * 10)
    channel_id = await store.channel("grafana", channel_config(receiver))
    slow = msgspec.structs.replace(FAST, retry=RetryPolicy(base_delay_sec=0.3, jitter=0.0))
    await store.service(slow)
    await store.open_incident()
    await receiver.wait_for(1)
    await store.db.execute("UPDATE channels SET enabled = 0 WHERE id = ?", (channel_id,))
    await store.wait_settled(channel_id, 1)
    (delivery,) = await store.deliveries(channel_id)
    assert (delivery["status"], delivery["last_error"]) == ("failed", "channel disabled")
    assert len(receiver.requests) == 1
    # A disabled channel is not queued for new events at all.
    await store.open_incident()
    await asyncio.sleep(0.3)
    assert len(await store.deliveries(channel_id)) == 1


async def test_a_delivery_queued_before_the_new_incident_fields_is_still_sent(
    store: Store, receivers: Any
) -> None:
    """Pending rows written by the previous version hold the incident without
    peak_burst_*, end_reason and spared_packets: the typed decode takes them as is."""
    receiver = receivers("webhook")
    channel_id = await store.channel("webhook", channel_config(receiver))
    incident = await store.open_incident(
        mitigation_rules=[MitigationRule(kind="source", match="198.51.100.7/32")]
    )
    old = msgspec.to_builtins(incident)
    for key in ("peak_burst_pps", "peak_burst_bps", "end_reason"):
        del old[key]
    for rule in old["mitigation_rules"]:
        del rule["spared_packets"]
    await store.db.execute(
        "INSERT INTO notification_deliveries (channel_id, workspace_id, event_key, event_kind,"
        " incident_uuid, incident, status, attempts, next_attempt_at, created_at)"
        " VALUES (?, ?, ?, 'opened', ?, ?, 'pending', 0, 0, 0)",
        (
            channel_id,
            store.workspace_id,
            f"{incident.uuid}:opened",
            incident.uuid,
            msgspec.json.encode(old).decode(),
        ),
    )
    await store.db.commit()
    await store.service()  # start() resumes pending deliveries
    (request,) = await receiver.wait_for(1)
    await store.wait_settled(channel_id, 1)
    assert [d["status"] for d in await store.deliveries(channel_id)] == ["delivered"]
    assert incident.uuid in request.body.decode()
    assert receiver.problems() == []
