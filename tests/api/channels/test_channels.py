"""REST API v1 channels: every reference type, config validated per type, secrets masked."""

from __future__ import annotations

import json

from tests.api.conftest import Api, Workspace, assert_error

LOOP = "http://127.0.0.1:9"  # nothing listens: a delivery attempt fails fast, on loopback
# One valid config per type; every credential contains "SECRETX" and ends in "tail".
CONFIGS: dict[str, dict[str, object]] = {
    "discord": {"webhook_url": f"{LOOP}/api/webhooks/1/SECRETX-discord-tail"},
    "slack": {"webhook_url": f"{LOOP}/services/T0/B0/SECRETX-slack-tail"},
    "teams": {"webhook_url": f"{LOOP}/webhookb2/SECRETX-teams-tail"},
    "telegram": {"bot_token": "123456:SECRETX-telegram-tail", "chat_id": "42", "api_url": LOOP},
    "email": {
        "host": "127.0.0.1",
        "port": 2525,
        "security": "none",
        "username": "u",
        "password": "SECRETX-mail-tail",
        "from": "ft@example.com",
        "to": ["ops@example.com"],
    },
    "sms": {
        "account_sid": "AC" + "0" * 32,
        "auth_token": "SECRETX-twilio-tail",
        "from": "+15551234567",
        "to": "+15557654321",
        "api_url": LOOP,
    },
    "pagerduty": {"routing_key": "SECRETX-pagerduty-key-123456tail", "api_url": LOOP},
    "opsgenie": {"api_key": "SECRETX-opsgenie-tail", "api_url": LOOP},
    "webhook": {"url": f"{LOOP}/hook", "secret": "SECRETX-webhook-tail"},
    "grafana": {"token": "SECRETX-grafana-tail", "url": LOOP},
    "datadog": {"api_key": "SECRETX-datadog-tail", "api_url": LOOP},
    "prometheus": {"url": LOOP, "bearer_token": "SECRETX-alertmanager-tail"},
}


async def test_every_reference_type_is_created_and_masked(api: Api, ws: Workspace) -> None:
    created = {}
    for type_, config in CONFIGS.items():
        r = await api.client.post(
            "/api/v1/channels",
            json={"name": f"{type_} alerts", "type": type_, "config": config},
            headers=ws.headers,
        )
        assert r.status_code == 201, (type_, r.text)
        body = r.json()
        assert body["ok"] is True
        channel = body["channel"]
        assert set(channel) == {"id", "name", "type", "config", "enabled", "created_at"}
        assert channel["type"] == type_ and channel["enabled"] is True
        assert "SECRETX" not in json.dumps(channel), (type_, channel)
        created[type_] = channel["id"]
    assert len(created) == 12
    listed = await api.get("/api/v1/channels", ws)
    assert listed.status_code == 200 and listed.json()["ok"] is True
    assert [c["type"] for c in listed.json()["channels"]] == list(CONFIGS)
    assert "SECRETX" not in listed.text
    # The store keeps the real values (deliveries need them); only responses mask.
    async with api.app.state.db.execute(
        "SELECT config FROM channels WHERE type = 'webhook'"
    ) as cur:
        (stored,) = await cur.fetchone()
    assert json.loads(stored)["secret"] == "SECRETX-webhook-tail"


async def test_invalid_channels_are_refused_naming_the_field(api: Api, ws: Workspace) -> None:
    cases = [
        ({"name": "a", "type": "pigeon", "config": {}}, "type"),
        (
            {
                "name": "a",
                "type": "webhook",
                "config": {"url": "ftp://x/hook", "secret": "0123456789abcdef"},
            },
            "config.url",
        ),
        (
            {"name": "a", "type": "discord", "config": {"webhook_url": "discord.com/x"}},
            "config.webhook_url",
        ),
        ({"name": "a", "type": "slack", "config": {}}, "config.webhook_url"),
        (
            {"name": "a", "type": "slack", "config": {"webhook_url": f"{LOOP}/x", "colour": 1}},
            "config.colour",
        ),
        (
            {
                "name": "a",
                "type": "email",
                "config": {"host": "h", "from": "nope", "to": ["a@b.c"]},
            },
            "config.from",
        ),
        ({"name": "", "type": "slack", "config": {"webhook_url": f"{LOOP}/x"}}, "name"),
        ({"name": "a", "type": "slack"}, "config"),
        ({"name": "a", "type": "slack", "config": "https://x"}, "config"),
    ]
    for body, field in cases:
        r = await api.client.post("/api/v1/channels", json=body, headers=ws.headers)
        assert assert_error(r, 400, field)["field"] == field, body
    assert (await api.get("/api/v1/channels", ws)).json()["channels"] == []


async def test_delete_is_permanent_and_scoped(api: Api, ws: Workspace, other: Workspace) -> None:
    body = {"name": "hook", "type": "webhook", "config": CONFIGS["webhook"]}
    mine = (await api.client.post("/api/v1/channels", json=body, headers=ws.headers)).json()
    await api.client.post("/api/v1/channels", json=body, headers=other.headers)
    channel_id = mine["channel"]["id"]
    theirs = (await api.get("/api/v1/channels", other)).json()["channels"]
    assert len(theirs) == 1 and theirs[0]["id"] != channel_id
    assert_error(
        await api.client.delete(f"/api/v1/channels/{channel_id}", headers=other.headers), 404
    )
    r = await api.client.delete(f"/api/v1/channels/{channel_id}", headers=ws.headers)
    assert r.status_code == 200 and r.json() == {"ok": True}
    assert (await api.get("/api/v1/channels", ws)).json()["channels"] == []
    assert_error(await api.client.delete(f"/api/v1/channels/{channel_id}", headers=ws.headers), 404)
    # A non-numeric id matches no route: an unknown id, 404 in the same error shape.
    assert_error(await api.client.delete("/api/v1/channels/abc", headers=ws.headers), 404)
    # The other workspace's channel is untouched.
    assert len((await api.get("/api/v1/channels", other)).json()["channels"]) == 1


async def test_channel_routes_need_a_token(api: Api) -> None:
    assert_error(await api.client.get("/api/v1/channels"), 401)
    assert_error(await api.client.post("/api/v1/channels", json={}), 401)
    assert_error(await api.client.delete("/api/v1/channels/1"), 401)


def test_api_channel_types_are_the_notifiers_types() -> None:
    # The OpenAPI enum (a Literal) must list exactly the types notify can deliver to.
    from typing import get_args

    from control.channels.schemas import ChannelType
    from control.notify.config import CHANNEL_TYPES

    assert set(get_args(ChannelType)) == set(CHANNEL_TYPES)
    assert set(CONFIGS) == set(CHANNEL_TYPES)
