"""Each service's own message format: one module per service, dispatched by channel type."""

from __future__ import annotations

from control.notify.config import (
    ChannelConfig,
    DatadogConfig,
    DiscordConfig,
    GrafanaConfig,
    OpsgenieConfig,
    PagerDutyConfig,
    PrometheusConfig,
    SlackConfig,
    SmsConfig,
    TeamsConfig,
    TelegramConfig,
    WebhookConfig,
)
from control.notify.formats import (
    datadog,
    discord,
    grafana,
    opsgenie,
    pagerduty,
    prometheus,
    slack,
    sms,
    teams,
    telegram,
    webhook,
)
from control.notify.formats.request import OutboundRequest
from control.notify.message import Notice


def build_http_request(cfg: ChannelConfig, notice: Notice, delivery_key: str) -> OutboundRequest:
    """The request that carries `notice` to an HTTP-based service (every type but email)."""
    if isinstance(cfg, DiscordConfig):
        return discord.build(cfg, notice)
    if isinstance(cfg, SlackConfig):
        return slack.build(cfg, notice)
    if isinstance(cfg, TeamsConfig):
        return teams.build(cfg, notice)
    if isinstance(cfg, TelegramConfig):
        return telegram.build(cfg, notice)
    if isinstance(cfg, SmsConfig):
        return sms.build(cfg, notice)
    if isinstance(cfg, PagerDutyConfig):
        return pagerduty.build(cfg, notice)
    if isinstance(cfg, OpsgenieConfig):
        return opsgenie.build(cfg, notice)
    if isinstance(cfg, WebhookConfig):
        return webhook.build(cfg, notice, delivery_key)
    if isinstance(cfg, GrafanaConfig):
        return grafana.build(cfg, notice)
    if isinstance(cfg, DatadogConfig):
        return datadog.build(cfg, notice)
    if isinstance(cfg, PrometheusConfig):
        return prometheus.build(cfg, notice)
    raise TypeError(f"{type(cfg).__name__} is not sent over HTTP")


__all__ = ["OutboundRequest", "build_http_request"]
