"""The channel API as users see it: config validation naming the field, secrets masked
in every response, POST /channels/{id}/test, GET /channels/{id}/deliveries."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from lab import notify_receivers as rx
from lab.notify_channels import RECEIVERS, channel_config
from tests.api.conftest import Api, Workspace, assert_error

SID = "AC" + "0123456789abcdef" * 2

# type, config, the field the error must name
BAD_CONFIGS: list[tuple[str, dict[str, Any], str]] = [
    ("discord", {}, "config.webhook_url"),
    ("slack", {"webhook_url": "ftp://hooks.slack.com/x"}, "config.webhook_url"),
    (
        "teams",
        {"webhook_url": "https://x.example/h", "min_severity": "urgent"},
        "config.min_severity",
    ),
    ("telegram", {"bot_token": "no-colon", "chat_id": 5}, "config.bot_token"),
    (
        "email",
        {"host": "smtp.example.net", "from": "a@example.net", "to": ["nope"]},
        "config.to[0]",
    ),
    (
        "email",
        {
            "host": "smtp.example.net",
            "from": "a@example.net",
            "to": ["b@example.net"],
            "security": "ssl",
        },
        "config.security",
    ),
    (
        "sms",
        {"account_sid": SID, "auth_token": "t" * 32, "from": "5551234", "to": "+15005550006"},
        "config.from",
    ),
    ("pagerduty", {"routing_key": "short"}, "config.routing_key"),
    ("opsgenie", {"api_key": 12345}, "config.api_key"),
    ("webhook", {"url": "https://hooks.example.net/x"}, "config.secret"),
    ("grafana", {"url": "https://grafana.example.net"}, "config.token"),
    ("datadog", {"api_key": "k" * 32, "apikey": "typo"}, "config.apikey"),
    ("prometheus", {"labels": {"bad-name": "x"}}, "config.labels.bad-name"),
    ("prometheus", {"nodes": "edge-1"}, "config.nodes"),
]


@pytest.mark.parametrize(("type_", "config", "field"), BAD_CONFIGS)
async def test_create_refuses_a_bad_config_naming_the_field(
    api: Api, ws: Workspace, type_: str, config: dict[str, Any], field: str
) -> None:
    response = await api.client.post(
        "/api/v1/channels",
        json={"name": "bad", "type": type_, "config": config},
        headers=ws.headers,
    )
    body = assert_error(response, 400, field)
    assert body.get("field") == field
    listed = await api.get("/api/v1/channels", ws)
    assert listed.json()["channels"] == []  # nothing half-created


SECRET_CONFIGS: dict[str, dict[str, Any]] = {
    "discord": {"webhook_url": "https://discord.com/api/webhooks/123/SECRETdiscordTOKENvalue"},
    "slack": {"webhook_url": "https://hooks.slack.com/services/T0/B0/SECRETslackTOKENvalue"},
    "teams": {"webhook_url": "https://x.webhook.office.com/webhookb2/SECRETteamsTOKENvalue"},
    "telegram": {"bot_token": "123456:SECRETtelegramTOKENvalue", "chat_id": "-1001"},
    "email": {
        "host": "smtp.example.net",
        "username": "u",
        "password": "SECRETsmtpPASSWORD",
        "from": "a@example.net",
        "to": ["b@example.net"],
    },
    "sms": {
        "account_sid": SID,
        "auth_token": "SECRETtwilioAUTHtokenValue12345",
        "from": "+15005550006",
        "to": "+491701234567",
    },
    "pagerduty": {"routing_key": "SECRETpagerdutyROUTINGkey0123456"},
    "opsgenie": {"api_key": "SECRETopsgenieAPIkeyValue"},
    "webhook": {
        "url": "https://user:SECRETurlPASSWORD@hooks.example.net/x",
        "secret": "SECREThmacSIGNINGkey",
    },
    "grafana": {"token": "SECRETgrafanaSERVICEtoken"},
    "datadog": {"api_key": "SECRETdatadogAPIkeyValue", "site": "datadoghq.eu"},
    "prometheus": {"url": "http://alertmanager:9093", "bearer_token": "SECRETalertmanagerTOKEN"},
}


async def test_secrets_are_masked_in_every_response(api: Api, ws: Workspace) -> None:
    assert set(SECRET_CONFIGS) == set(RECEIVERS) | {"email"}
    for type_, config in SECRET_CONFIGS.items():
        response = await api.client.post(
            "/api/v1/channels",
            json={"name": type_, "type": type_, "config": config},
            headers=ws.headers,
        )
        assert response.status_code == 201, response.text
        assert "SECRET" not in response.text, response.text
    listed = await api.get("/api/v1/channels", ws)
    assert listed.status_code == 200
    assert "SECRET" not in listed.text
    channels = {c["type"]: c["config"] for c in listed.json()["channels"]}
    assert len(channels) == 12
    assert channels["pagerduty"]["routing_key"] == "****3456"
    assert channels["discord"]["webhook_url"].startswith("https://discord.com/****")
    assert channels["webhook"]["url"] == "https://****@hooks.example.net/x"
    # Defaults are filled in and shown (they are not secret).
    assert channels["datadog"]["api_url"] == "https://api.datadoghq.eu"
    assert channels["pagerduty"]["api_url"] == "https://events.pagerduty.com"
    assert channels["email"]["port"] == 587 and channels["email"]["security"] == "starttls"


async def _create(api: Api, ws: Workspace, receiver: rx.Receiver) -> int:
    response = await api.client.post(
        "/api/v1/channels",
        json={
            "name": receiver.service,
            "type": receiver.service,
            "config": channel_config(receiver),
        },
        headers=ws.headers,
    )
    assert response.status_code == 201, response.text
    channel_id: int = response.json()["channel"]["id"]
    return channel_id


@pytest.fixture
def receiver_factory() -> Any:
    made: list[rx.Receiver] = []

    def make(service: str) -> rx.Receiver:
        made.append(RECEIVERS[service]())
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.mark.parametrize("service", sorted(RECEIVERS))
async def test_test_endpoint_sends_a_test_message(
    api: Api, ws: Workspace, receiver_factory: Any, service: str
) -> None:
    receiver = receiver_factory(service)
    channel_id = await _create(api, ws, receiver)
    response = await api.client.post(f"/api/v1/channels/{channel_id}/test", headers=ws.headers)
    assert response.status_code == 200, response.text
    delivery = response.json()["delivery"]
    assert delivery["status"] == "delivered"
    assert delivery["error"] is None
    (req,) = receiver.requests
    assert receiver.problems() == []
    assert delivery["http_status"] == req.answered
    text = req.form()["Body"][0] if service == "sms" else req.body.decode()
    assert "test" in text.lower()

    listed = await api.get(f"/api/v1/channels/{channel_id}/deliveries", ws)
    assert listed.status_code == 200
    body = listed.json()
    assert body["total"] == 1 and body["pending"] == 0
    (attempt,) = body["deliveries"]
    assert attempt["event"] == "test"
    assert attempt["outcome"] == "delivered"
    assert attempt["delivery_id"] == delivery["id"]


async def test_test_endpoint_reports_a_failure_and_does_not_retry(
    api: Api, ws: Workspace, receiver_factory: Any
) -> None:
    receiver = receiver_factory("datadog").then(
        rx.json_reply(403, {"errors": ["Forbidden"]}), rx.SERVER_ERROR
    )
    channel_id = await _create(api, ws, receiver)
    response = await api.client.post(f"/api/v1/channels/{channel_id}/test", headers=ws.headers)
    assert response.status_code == 200
    delivery = response.json()["delivery"]
    assert (delivery["status"], delivery["http_status"]) == ("failed", 403)
    assert "Forbidden" in delivery["error"]
    response = await api.client.post(f"/api/v1/channels/{channel_id}/test", headers=ws.headers)
    assert response.json()["delivery"]["http_status"] == 500
    await asyncio.sleep(0.3)
    assert len(receiver.requests) == 2  # one attempt per test, no retries
    listed = (await api.get(f"/api/v1/channels/{channel_id}/deliveries", ws)).json()
    assert [a["outcome"] for a in listed["deliveries"]] == ["failed", "failed"]


async def test_incident_deliveries_are_listed_newest_first_with_paging(
    api: Api, ws: Workspace, receiver_factory: Any
) -> None:
    receiver = receiver_factory("pagerduty")
    channel_id = await _create(api, ws, receiver)
    node = await api.node(ws)
    incident = await api.incident(ws, node["uuid"], severity="critical")
    await receiver.wait_for(1)
    await api.incidents.resolve(ws.id, incident.uuid)
    await receiver.wait_for(2)

    async def listed(**params: Any) -> dict[str, Any]:
        response = await api.get(f"/api/v1/channels/{channel_id}/deliveries", ws, **params)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    for _ in range(100):
        body = await listed()
        if body["total"] == 2 and body["pending"] == 0:
            break
        await asyncio.sleep(0.05)
    assert [(a["event"], a["incident_uuid"]) for a in body["deliveries"]] == [
        ("resolved", incident.uuid),
        ("opened", incident.uuid),
    ]
    page = await listed(limit=1, offset=1)
    assert (page["total"], page["limit"], page["offset"]) == (2, 1, 1)
    assert [a["event"] for a in page["deliveries"]] == ["opened"]
    bad = await api.get(f"/api/v1/channels/{channel_id}/deliveries", ws, limit=0)
    assert_error(bad, 400, "limit")


async def test_another_workspaces_channel_is_not_found(
    api: Api, ws: Workspace, other: Workspace, receiver_factory: Any
) -> None:
    receiver = receiver_factory("slack")
    channel_id = await _create(api, ws, receiver)
    response = await api.client.post(f"/api/v1/channels/{channel_id}/test", headers=other.headers)
    assert_error(response, 404, "channel")
    response = await api.get(f"/api/v1/channels/{channel_id}/deliveries", other)
    assert_error(response, 404, "channel")
    response = await api.client.post("/api/v1/channels/99999/test", headers=ws.headers)
    assert_error(response, 404, "channel")
    assert receiver.requests == []


async def test_delivery_routes_need_the_deploy_token(api: Api, ws: Workspace) -> None:
    assert_error(await api.client.post("/api/v1/channels/1/test"), 401)
    assert_error(await api.client.get("/api/v1/channels/1/deliveries"), 401)
    bad = {"Authorization": "Bearer " + "0" * 64}
    assert_error(await api.client.get("/api/v1/channels/1/deliveries", headers=bad), 401)


async def test_app_runs_the_notification_service(api: Api) -> None:
    assert api.app.state.notifications.running
