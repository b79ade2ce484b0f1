"""Per-type notification channel configuration: validation, defaults and secret masking.

Every channel type has one msgspec Struct (unknown keys refused). Each service's base URL
is a config key whose default is the real service, so a test (or an on-prem proxy) can
point it anywhere. Two optional keys are common to every type and act as filters:

- ``min_severity`` (default ``"low"``): only incidents at or above it are notified.
- ``nodes`` (default ``[]`` = every node): node UUIDs or node names to notify about.
"""

from __future__ import annotations

import re
from typing import Any, Literal, get_args
from urllib.parse import urlsplit

import msgspec

from control.channels.schemas import ChannelType
from ftcontract.vocabulary import Severity

# One list of types: the API schema's literal (control.channels.schemas.ChannelType).
CHANNEL_TYPES: tuple[str, ...] = get_args(ChannelType)

# Ordered lowest to highest (the literal's order); index comparison implements min_severity.


class ChannelConfigError(ValueError):
    """A channel config was refused; ``field`` names the offending key (``config.x``)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class _Base(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    min_severity: Severity = "low"
    nodes: list[str] = msgspec.field(default_factory=list)


class DiscordConfig(_Base, kw_only=True):
    webhook_url: str
    username: str | None = None


class SlackConfig(_Base, kw_only=True):
    webhook_url: str


class TeamsConfig(_Base, kw_only=True):
    webhook_url: str


class TelegramConfig(_Base, kw_only=True):
    bot_token: str
    chat_id: str | int
    api_url: str = "https://api.telegram.org"


class EmailConfig(_Base, kw_only=True):
    host: str
    port: int = 587
    # starttls: plain connect then STARTTLS (587); tls: TLS from the first byte (465);
    # none: no encryption (only for a relay on localhost).
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str | None = None
    password: str | None = None
    from_addr: str = msgspec.field(name="from")
    to: list[str]


class SmsConfig(_Base, kw_only=True):
    """Twilio Programmable Messaging (Messages API)."""

    account_sid: str
    auth_token: str
    from_number: str = msgspec.field(name="from")
    # One recipient per channel: a retry then never texts someone twice.
    to: str
    api_url: str = "https://api.twilio.com"


class PagerDutyConfig(_Base, kw_only=True):
    """PagerDuty Events API v2."""

    routing_key: str
    api_url: str = "https://events.pagerduty.com"


class OpsgenieConfig(_Base, kw_only=True):
    """Opsgenie Alert API v2 (EU accounts: api_url https://api.eu.opsgenie.com)."""

    api_key: str
    api_url: str = "https://api.opsgenie.com"
    responders: list[dict[str, str]] = msgspec.field(default_factory=list)
    tags: list[str] = msgspec.field(default_factory=list)


class WebhookConfig(_Base, kw_only=True):
    url: str
    secret: str
    signature_header: str = "X-Signature-256"


class GrafanaConfig(_Base, kw_only=True):
    """Grafana annotations HTTP API with a service account token."""

    token: str
    url: str = "http://localhost:3000"
    dashboard_uid: str | None = None
    panel_id: int | None = None
    tags: list[str] = msgspec.field(default_factory=list)


class DatadogConfig(_Base, kw_only=True):
    """Datadog Events API v1. ``api_url`` defaults to ``https://api.<site>``."""

    api_key: str
    site: str = "datadoghq.com"
    api_url: str | None = None
    tags: list[str] = msgspec.field(default_factory=list)


class PrometheusConfig(_Base, kw_only=True):
    """Prometheus Alertmanager API v2."""

    url: str = "http://localhost:9093"
    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    # endsAt of a firing alert is now + this, so a lost end event clears it eventually.
    firing_hold_sec: int = 3600


ChannelConfig = (
    DiscordConfig
    | SlackConfig
    | TeamsConfig
    | TelegramConfig
    | EmailConfig
    | SmsConfig
    | PagerDutyConfig
    | OpsgenieConfig
    | WebhookConfig
    | GrafanaConfig
    | DatadogConfig
    | PrometheusConfig
)

CONFIG_STRUCTS: dict[str, type[ChannelConfig]] = {
    "discord": DiscordConfig,
    "slack": SlackConfig,
    "teams": TeamsConfig,
    "telegram": TelegramConfig,
    "email": EmailConfig,
    "sms": SmsConfig,
    "pagerduty": PagerDutyConfig,
    "opsgenie": OpsgenieConfig,
    "webhook": WebhookConfig,
    "grafana": GrafanaConfig,
    "datadog": DatadogConfig,
    "prometheus": PrometheusConfig,
}

# Keys whose values are credentials: never returned in full by the API.
SECRET_KEYS: dict[str, tuple[str, ...]] = {
    "telegram": ("bot_token",),
    "email": ("password",),
    "sms": ("auth_token",),
    "pagerduty": ("routing_key",),
    "opsgenie": ("api_key",),
    "webhook": ("secret",),
    "grafana": ("token",),
    "datadog": ("api_key",),
    "prometheus": ("password", "bearer_token"),
}
# Keys holding URLs; for chat webhooks the path itself is the credential.
URL_KEYS: dict[str, tuple[str, ...]] = {
    "discord": ("webhook_url",),
    "slack": ("webhook_url",),
    "teams": ("webhook_url",),
    "telegram": ("api_url",),
    "sms": ("api_url",),
    "pagerduty": ("api_url",),
    "opsgenie": ("api_url",),
    "webhook": ("url",),
    "grafana": ("url",),
    "datadog": ("api_url",),
    "prometheus": ("url",),
}
SECRET_URL_TYPES = frozenset({"discord", "slack", "teams"})

_MISSING = re.compile(r"missing required field `([^`]+)`")
_UNKNOWN = re.compile(r"unknown field `([^`]+)`")
_AT_PATH = re.compile(r" - at `\$(.*)`$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_SITE = re.compile(r"^[a-z0-9.-]+\.[a-z]{2,}$")


def _field_from_error(message: str) -> tuple[str, str]:
    """Turn a msgspec ValidationError message into (config.<path>, reason)."""
    for pattern, reason in ((_MISSING, "is required"), (_UNKNOWN, "is not a known key")):
        match = pattern.search(message)
        if match:
            prefix = ""
            at = _AT_PATH.search(message)
            if at:
                prefix = at.group(1)
            return f"config{prefix}.{match.group(1)}", reason
    at = _AT_PATH.search(message)
    if at:
        return f"config{at.group(1)}", message[: at.start()]
    return "config", message


def _check_url(field: str, value: str) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ChannelConfigError(f"config.{field}", "must be an http(s) URL with a host")


def _require_text(field: str, value: str | None) -> None:
    if value is not None and not value.strip():
        raise ChannelConfigError(f"config.{field}", "must not be empty")


def _check_struct(type_: str, cfg: ChannelConfig) -> None:
    for node in cfg.nodes:
        if not node.strip():
            raise ChannelConfigError("config.nodes", "must hold node UUIDs or names")
    for key in URL_KEYS.get(type_, ()):
        value = getattr(cfg, key)
        if value is not None:
            _check_url(key, value)
    for key in SECRET_KEYS.get(type_, ()):
        _require_text(key, getattr(cfg, key))
    if isinstance(cfg, TelegramConfig):
        if ":" not in cfg.bot_token:
            raise ChannelConfigError("config.bot_token", "must look like <bot id>:<secret>")
        _require_text("chat_id", str(cfg.chat_id))
    elif isinstance(cfg, EmailConfig):
        _require_text("host", cfg.host)
        if not 0 < cfg.port < 65536:
            raise ChannelConfigError("config.port", "must be 1-65535")
        if not _EMAIL.match(cfg.from_addr):
            raise ChannelConfigError("config.from", "must be an email address")
        if not cfg.to:
            raise ChannelConfigError("config.to", "needs at least one address")
        for i, addr in enumerate(cfg.to):
            if not _EMAIL.match(addr):
                raise ChannelConfigError(f"config.to[{i}]", "must be an email address")
        if (cfg.username is None) != (cfg.password is None):
            raise ChannelConfigError("config.password", "username and password go together")
    elif isinstance(cfg, SmsConfig):
        if not re.fullmatch(r"AC[0-9a-fA-F]{32}", cfg.account_sid):
            raise ChannelConfigError("config.account_sid", "must be AC followed by 32 hex digits")
        if not _E164.match(cfg.from_number):
            raise ChannelConfigError("config.from", "must be an E.164 number like +15551234567")
        if not _E164.match(cfg.to):
            raise ChannelConfigError("config.to", "must be an E.164 number like +15551234567")
    elif isinstance(cfg, PagerDutyConfig):
        if len(cfg.routing_key) != 32:
            raise ChannelConfigError("config.routing_key", "must be the 32-character key")
    elif isinstance(cfg, WebhookConfig):
        if len(cfg.secret) < 16:
            raise ChannelConfigError("config.secret", "must be at least 16 characters")
        if not re.fullmatch(r"[A-Za-z0-9-]+", cfg.signature_header):
            raise ChannelConfigError("config.signature_header", "must be a header name")
    elif isinstance(cfg, DatadogConfig):
        if not _SITE.match(cfg.site):
            raise ChannelConfigError("config.site", "must be a Datadog site like datadoghq.eu")
    elif isinstance(cfg, PrometheusConfig):
        if (cfg.username is None) != (cfg.password is None):
            raise ChannelConfigError("config.password", "username and password go together")
        if cfg.password is not None and cfg.bearer_token is not None:
            raise ChannelConfigError("config.bearer_token", "use basic auth or a token, not both")
        if cfg.firing_hold_sec < 60:
            raise ChannelConfigError("config.firing_hold_sec", "must be at least 60")
        for name in cfg.labels:
            if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name):
                raise ChannelConfigError(f"config.labels.{name}", "is not a valid label name")


# Bounds on every value of a config: room for any real URL, token, address list or label
# set, but a config can neither bloat the store nor every message built from it.
CONFIG_TEXT_MAX = 2048
CONFIG_ITEMS_MAX = 100


def _check_sizes(value: Any, path: str) -> None:
    if isinstance(value, str) and len(value) > CONFIG_TEXT_MAX:
        raise ChannelConfigError(path, f"at most {CONFIG_TEXT_MAX} characters")
    if isinstance(value, dict | list) and len(value) > CONFIG_ITEMS_MAX:
        raise ChannelConfigError(path, f"at most {CONFIG_ITEMS_MAX} entries")
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and len(key) > CONFIG_TEXT_MAX:
                raise ChannelConfigError(path, f"keys of at most {CONFIG_TEXT_MAX} characters")
            _check_sizes(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_sizes(item, f"{path}[{i}]")


def parse_config(type_: str, config: Any) -> ChannelConfig:
    """Decode and check a channel config into its Struct (raises ChannelConfigError)."""
    struct = CONFIG_STRUCTS.get(type_)
    if struct is None:
        raise ChannelConfigError("type", f"must be one of {', '.join(CHANNEL_TYPES)}")
    if not isinstance(config, dict):
        raise ChannelConfigError("config", "must be an object")
    _check_sizes(config, "config")
    try:
        cfg = msgspec.convert(config, type=struct)
    except msgspec.ValidationError as exc:
        field, reason = _field_from_error(str(exc))
        raise ChannelConfigError(field, reason) from None
    _check_struct(type_, cfg)
    return cfg


def validate_config(type_: str, config: dict[str, Any]) -> dict[str, Any]:
    """Return the normalised config (defaults filled) or raise ChannelConfigError."""
    cfg = parse_config(type_, config)
    normalised: dict[str, Any] = msgspec.to_builtins(cfg)
    if isinstance(cfg, TelegramConfig):
        normalised["chat_id"] = str(cfg.chat_id)
    if isinstance(cfg, DatadogConfig) and cfg.api_url is None:
        normalised["api_url"] = f"https://api.{cfg.site}"
    return normalised


def mask_secret(value: str) -> str:
    """Show that a secret is set, and its last 4 characters when it is long enough."""
    if len(value) >= 16:
        return "****" + value[-4:]
    return "****"


def mask_url(value: str, *, whole_path: bool) -> str:
    """Drop user:password from a URL; for webhook URLs the path (the token) as well."""
    parts = urlsplit(value)
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    if parts.username is not None or parts.password is not None:
        host = f"****@{host}"
    if whole_path:
        return f"{parts.scheme}://{host}/{mask_secret(parts.path + parts.query)}"
    tail = parts.path + (f"?{parts.query}" if parts.query else "")
    return f"{parts.scheme}://{host}{tail}"


def mask_config(type_: str, config: dict[str, Any]) -> dict[str, Any]:
    """A copy of a stored config that is safe to return in any API response."""
    masked = dict(config)
    for key in SECRET_KEYS.get(type_, ()):
        value = masked.get(key)
        if isinstance(value, str):
            masked[key] = mask_secret(value)
    for key in URL_KEYS.get(type_, ()):
        value = masked.get(key)
        if isinstance(value, str):
            masked[key] = mask_url(value, whole_path=type_ in SECRET_URL_TYPES)
    return masked
