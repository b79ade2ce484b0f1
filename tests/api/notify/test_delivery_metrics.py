"""ftcontrol_notification_deliveries on /metrics: what the "deliveries failing" alert reads."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from lab import notify_receivers as rx
from lab.notify_channels import RECEIVERS, channel_config
from tests.api.conftest import Api, Workspace


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    made: list[rx.Receiver] = []

    def make(service: str) -> rx.Receiver:
        made.append(RECEIVERS[service]())
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def _gauge(text: str, status: str) -> float:
    found = re.search(
        rf'^ftcontrol_notification_deliveries\{{status="{status}",workspace="acme"\}} (\S+)$',
        text,
        re.M,
    )
    assert found, f"no {status} series in /metrics"
    return float(found.group(1))


async def test_failed_deliveries_are_counted_per_workspace(
    api: Api, ws: Workspace, receiver_factory: Any
) -> None:
    before = (await api.client.get("/metrics")).text
    assert [_gauge(before, s) for s in ("pending", "delivered", "failed")] == [0.0, 0.0, 0.0]
    receiver = receiver_factory("datadog").then(
        rx.json_reply(403, {"errors": ["Forbidden"]}), rx.json_reply(202, {"status": "ok"})
    )
    created = await api.client.post(
        "/api/v1/channels",
        json={"name": "dd", "type": "datadog", "config": channel_config(receiver)},
        headers=ws.headers,
    )
    assert created.status_code == 201, created.text
    channel_id = created.json()["channel"]["id"]
    for _ in range(2):  # the first test send is refused (403), the second delivered
        sent = await api.client.post(f"/api/v1/channels/{channel_id}/test", headers=ws.headers)
        assert sent.status_code == 200, sent.text
    after = (await api.client.get("/metrics")).text
    assert _gauge(after, "failed") == 1.0
    assert _gauge(after, "delivered") == 1.0
