"""Channel config validation, defaults and masking."""

from __future__ import annotations

from typing import Any

import pytest

from control.notify.config import (
    CHANNEL_TYPES,
    CONFIG_STRUCTS,
    SECRET_KEYS,
    ChannelConfigError,
    mask_config,
    validate_config,
)

SID = "AC" + "ab" * 16

MINIMAL: dict[str, dict[str, Any]] = {
    "discord": {"webhook_url": "https://discord.com/api/webhooks/1/tok"},
    "slack": {"webhook_url": "https://hooks.slack.com/services/T/B/X"},
    "teams": {"webhook_url": "https://example.webhook.office.com/webhookb2/x"},
    "telegram": {"bot_token": "1:abc", "chat_id": -1001},
    "email": {"host": "smtp.example.net", "from": "a@example.net", "to": ["b@example.net"]},
    "sms": {
        "account_sid": SID,
        "auth_token": "t" * 32,
        "from": "+15005550006",
        "to": "+491701234567",
    },
    "pagerduty": {"routing_key": "r" * 32},
    "opsgenie": {"api_key": "k"},
    "webhook": {"url": "https://hooks.example.net/x", "secret": "s" * 16},
    "grafana": {"token": "glsa_x"},
    "datadog": {"api_key": "k" * 32},
    "prometheus": {},
}

REAL_DEFAULT_URLS = {
    "telegram": ("api_url", "https://api.telegram.org"),
    "sms": ("api_url", "https://api.twilio.com"),
    "pagerduty": ("api_url", "https://events.pagerduty.com"),
    "opsgenie": ("api_url", "https://api.opsgenie.com"),
    "grafana": ("url", "http://localhost:3000"),
    "datadog": ("api_url", "https://api.datadoghq.com"),
    "prometheus": ("url", "http://localhost:9093"),
}


def test_every_type_has_a_struct() -> None:
    assert set(CHANNEL_TYPES) == set(CONFIG_STRUCTS) == set(MINIMAL)
    assert len(CHANNEL_TYPES) == 12


@pytest.mark.parametrize("type_", CHANNEL_TYPES)
def test_minimal_config_gets_defaults(type_: str) -> None:
    config = validate_config(type_, MINIMAL[type_])
    assert config["min_severity"] == "low"
    assert config["nodes"] == []
    if type_ in REAL_DEFAULT_URLS:
        key, url = REAL_DEFAULT_URLS[type_]
        assert config[key] == url
    # Normalised output validates again to itself (what is stored can be re-read).
    assert validate_config(type_, config) == config


def test_filters_are_validated() -> None:
    config = validate_config(
        "slack", {**MINIMAL["slack"], "min_severity": "high", "nodes": ["edge-1"]}
    )
    assert (config["min_severity"], config["nodes"]) == ("high", ["edge-1"])
    with pytest.raises(ChannelConfigError) as err:
        validate_config("slack", {**MINIMAL["slack"], "nodes": [""]})
    assert err.value.field == "config.nodes"


def test_unknown_type_and_non_object() -> None:
    with pytest.raises(ChannelConfigError) as err:
        validate_config("irc", {})
    assert err.value.field == "type"
    with pytest.raises(ChannelConfigError) as err:
        validate_config("slack", ["x"])  # type: ignore[arg-type]
    assert err.value.field == "config"
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    ("type_", "patch", "field"),
    [
        ("email", {"port": 0}, "config.port"),
        ("email", {"username": "u"}, "config.password"),
        ("email", {"from": "not-an-address"}, "config.from"),
        ("sms", {"account_sid": "AB123"}, "config.account_sid"),
        ("sms", {"to": "0170 123"}, "config.to"),
        ("webhook", {"signature_header": "X Sig"}, "config.signature_header"),
        ("datadog", {"site": "not a site"}, "config.site"),
        (
            "prometheus",
            {"username": "u", "password": "p", "bearer_token": "t"},
            "config.bearer_token",
        ),
        ("prometheus", {"firing_hold_sec": 5}, "config.firing_hold_sec"),
        ("grafana", {"token": "  "}, "config.token"),
        ("opsgenie", {"api_url": "api.opsgenie.com"}, "config.api_url"),
    ],
)
def test_bad_values_name_their_field(type_: str, patch: dict[str, Any], field: str) -> None:
    with pytest.raises(ChannelConfigError) as err:
        validate_config(type_, {**MINIMAL[type_], **patch})
    assert err.value.field == field
    assert str(err.value).startswith(field)


@pytest.mark.parametrize("type_", CHANNEL_TYPES)
def test_masking_hides_every_secret(type_: str) -> None:
    config = validate_config(type_, MINIMAL[type_])
    masked = mask_config(type_, config)
    for key in SECRET_KEYS.get(type_, ()):
        if config.get(key) is not None:
            assert masked[key].startswith("****")
            assert masked[key] != config[key]
    assert mask_config(type_, config) == masked  # pure; input untouched
    assert config == validate_config(type_, MINIMAL[type_])


def test_webhook_url_tokens_and_url_credentials_are_masked() -> None:
    masked = mask_config(
        "discord", {"webhook_url": "https://discord.com/api/webhooks/123/abcdefghijkl"}
    )
    assert "abcdefgh" not in masked["webhook_url"]
    assert masked["webhook_url"].startswith("https://discord.com/****")
    masked = mask_config("prometheus", {"url": "https://u:pw@am.example.net:9093/am"})
    assert masked["url"] == "https://****@am.example.net:9093/am"
