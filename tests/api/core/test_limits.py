"""Request limits: body sizes (JSON and pcap), string lengths, list and page sizes.

Each refusal is a clear 413 or 400 in the common error shape naming the limit or field,
and a refused request leaves nothing behind.
"""

from __future__ import annotations

import struct
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from control.agentapi.routes import PCAP_REQUEST_CAP
from control.app import create_app
from control.core.limits import MAX_BODY_BYTES
from control.core.validation import MAX_OFFSET, NAME_MAX
from control.notify.config import CONFIG_ITEMS_MAX, CONFIG_TEXT_MAX
from tests.api.agentapi.conftest import settings_for
from tests.api.conftest import Api, Workspace, assert_error
from tests.api.served import Served, served_control

PCAP_LIMIT = 64 * 1024


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    db_path = tmp_path / "ftcontrol.db"
    app = create_app(str(db_path))
    app.state.agentapi_settings = settings_for(tmp_path, pcap_max_bytes=PCAP_LIMIT)
    async with AsyncTestClient(app) as client:
        yield Api(app=app, client=client, db_path=db_path)


@pytest.fixture
async def ws(api: Api) -> Workspace:
    return await api.workspace("acme", "pro")


async def _node(api: Api, ws: Workspace) -> dict[str, str]:
    body = {"name": "e", "ip": "192.0.2.1"}
    r = await api.client.post("/api/deploy", json=body, headers=ws.headers)
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['api_key']}", "X-Node-UUID": r.json()["node_uuid"]}


def _pcap(size: int) -> bytes:
    head = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    return head + b"\0" * (size - len(head))


# ---- bodies -------------------------------------------------------------------------------


async def test_json_body_over_the_limit_is_413(api: Api, ws: Workspace) -> None:
    padding = "x" * (MAX_BODY_BYTES + 1)
    r = await api.client.post(
        "/api/v1/nodes", content=f'{{"name":"{padding}","ip":"192.0.2.1"}}', headers=ws.headers
    )
    assert_error(r, 413)
    nodes = (await api.get("/api/v1/nodes", ws)).json()
    assert nodes["total"] == 0


async def test_a_full_metrics_batch_fits_under_the_json_limit(api: Api, ws: Workspace) -> None:
    agent = await _node(api, ws)
    now = int(time.time())
    point = {
        "pps": 123456.789, "bps": 987654321.123, "dropped_pps": 1234.5, "dropped_bps": 98765.4,
        "protocols": {k: 12345.678 for k in ("tcp", "udp", "icmp", "other", "fragment")},
        "tcp_flags": {k: 1234.567 for k in ("syn", "synack", "ack", "rst", "fin", "other")},
        "attack": True, "baseline_avg_pps": 1000.5, "baseline_p95_pps": 2000.5,
        "baseline_p99_pps": 3000.5,
    }  # fmt: skip
    points = [{"ts": float(now - 3600 + i), **point} for i in range(3600)]
    r = await api.client.post("/api/v1/agent/metrics", json={"points": points}, headers=agent)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 3600


async def test_pcap_limits_413(api: Api, ws: Workspace) -> None:
    agent = await _node(api, ws)
    inc = str(uuid.uuid4())
    figures = {"seq": 1, "family": "udp_flood"}
    r = await api.client.post(
        "/api/v1/agent/incidents",
        json={"uuid": inc, "started_at": time.time(), "figures": figures},
        headers=agent,
    )
    assert r.status_code == 201
    url = f"/api/v1/agent/incidents/{inc}/pcap"
    # Over the stored-file limit (configurable): 413 naming the limit.
    files = {"file": ("c.pcap", _pcap(PCAP_LIMIT + 1), "application/vnd.tcpdump.pcap")}
    assert_error(await api.client.post(url, files=files, headers=agent), 413, str(PCAP_LIMIT))
    # Over the route's request cap: refused before the multipart is parsed.
    files = {"file": ("c.pcap", _pcap(PCAP_REQUEST_CAP + 1024), "application/vnd.tcpdump.pcap")}
    assert_error(await api.client.post(url, files=files, headers=agent), 413)
    ws_headers = ws.headers
    assert_error(await api.client.get(f"/api/v1/incidents/{inc}/pcap", headers=ws_headers), 404)
    # At the limit it is stored.
    files = {"file": ("c.pcap", _pcap(PCAP_LIMIT), "application/vnd.tcpdump.pcap")}
    r = await api.client.post(url, files=files, headers=agent)
    assert r.status_code == 200 and r.json()["size"] == PCAP_LIMIT


# ---- strings, lists, pages ------------------------------------------------------------------


async def test_string_lengths_name_their_field(api: Api, ws: Workspace) -> None:
    long = "x" * (NAME_MAX + 1)
    for body, field in (
        ({"name": long, "ip": "192.0.2.1"}, "name"),
        ({"name": "n", "ip": "192.0.2.1", "location": long}, "location"),
        ({"name": "n", "ip": "192.0.2.1", "os": long}, "os"),
        ({"name": "n", "ip": "192.0.2.1", "interface": "e" * 16}, "interface"),
        ({"name": "n", "ip": "192.0.2.1" * 20}, "ip"),
    ):
        for url in ("/api/v1/nodes", "/api/deploy"):
            r = await api.client.post(url, json=body, headers=ws.headers)
            assert assert_error(r, 400)["field"] == field, (url, r.text)
    hook: dict[str, Any] = {"url": "http://127.0.0.1:9/h", "secret": "s" * 32}
    for name, config, field in (
        (long, hook, "name"),
        ("n", {**hook, "url": "http://127.0.0.1:9/" + "p" * CONFIG_TEXT_MAX}, "config.url"),
        ("n", {**hook, "secret": "s" * (CONFIG_TEXT_MAX + 1)}, "config.secret"),
        ("n", {**hook, "nodes": ["a"] * (CONFIG_ITEMS_MAX + 1)}, "config.nodes"),
    ):
        r = await api.client.post(
            "/api/v1/channels",
            json={"name": name, "type": "webhook", "config": config},
            headers=ws.headers,
        )
        assert assert_error(r, 400)["field"] == field
    assert (await api.get("/api/v1/channels", ws)).json()["channels"] == []
    assert (await api.get("/api/v1/nodes", ws)).json()["total"] == 0


async def test_error_reasons_never_echo_a_huge_input(api: Api, ws: Workspace) -> None:
    huge = "z" * 100_000
    r = await api.client.patch(f"/api/v1/incidents/{uuid.uuid4()}", json={"status": huge},
                               headers=ws.headers)  # fmt: skip
    body = assert_error(r, 400)
    assert len(body["error"]) <= 300
    assert len(r.content) < 1000


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/api/v1/nodes?limit=0", "limit"),
        ("/api/v1/nodes?limit=101", "limit"),
        ("/api/v1/nodes?offset=-1", "offset"),
        (f"/api/v1/nodes?offset={MAX_OFFSET + 1}", "offset"),
        ("/api/v1/nodes?offset=99999999999999999999999999", "offset"),
        ("/api/v1/incidents?limit=1000", "limit"),
        (f"/api/v1/incidents?offset={2**63}", "offset"),
        ("/api/v1/channels/1/deliveries?limit=101", "limit"),
        (f"/api/v1/channels/{2**63}/deliveries", "channel_id"),
        (f"/api/v1/channels/{-(2**64)}/test", "channel_id"),
        ("/api/v1/analytics/summary?range=10y", "range"),
    ],
)
async def test_page_sizes_and_ids_out_of_range_are_400(
    api: Api, ws: Workspace, url: str, field: str
) -> None:
    method = "POST" if url.endswith("/test") else "GET"
    body = assert_error(await api.client.request(method, url, headers=ws.headers), 400)
    assert body["field"] == field, body


# ---- a real server (uvicorn) says the same ----------------------------------------------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with served_control(tmp_path, isolated=False, extra_args=["--max-body-bytes", "10000"]) as srv:
        yield srv


def test_served_body_limit_is_configurable(served: Served) -> None:
    ws = served.workspace("acme")
    served.start()
    r = served.request("POST", "/api/v1/nodes", headers=ws.headers,
                       json={"name": "n", "ip": "192.0.2.1", "os": "o" * 10_000})  # fmt: skip
    assert r.status_code == 413 and r.json()["ok"] is False
    r = served.request("POST", "/api/v1/nodes", headers=ws.headers,
                       json={"name": "n", "ip": "192.0.2.1", "os": "o" * 50})  # fmt: skip
    assert r.status_code == 201, r.text
    # Streamed without a Content-Length (chunked): counted as it arrives, the same answer.

    def chunks() -> Iterator[bytes]:
        yield b'{"name":"m","ip":"192.0.2.1","os":"'
        for _ in range(4):
            yield b"y" * 4096
        yield b'"}'

    r = served.request("POST", "/api/v1/nodes", headers=ws.headers, content=chunks())
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code == 413 and r.json()["ok"] is False
    nodes = served.request("GET", "/api/v1/nodes", headers=ws.headers).json()
    assert [n["name"] for n in nodes["nodes"]] == ["n"]


async def test_agent_api_strings_and_lists_are_bounded(api: Api, ws: Workspace) -> None:
    agent = await _node(api, ws)
    long = "x" * 2000

    def incident(**figures: Any) -> dict[str, Any]:
        return {"uuid": str(uuid.uuid4()), "started_at": time.time(),
                "figures": {"seq": 1, "family": "udp_flood", **figures}}  # fmt: skip

    for path, body, field in (
        ("/api/v1/agent/heartbeat", {"version": long, "xdp_mode": "native"}, "version"),
        ("/api/v1/agent/heartbeat", {"version": "1", "xdp_mode": "native", "interface": long},
         "interface"),
        ("/api/v1/agent/incidents", incident(family=long), "figures.family"),
        ("/api/v1/agent/incidents", incident(subtype=long), "figures.subtype"),
        ("/api/v1/agent/incidents", incident(rules=[{"kind": "source", "match": long * 2}]),
         "figures.rules[0].match"),
        ("/api/v1/agent/incidents", incident(top_sources=[{"ip": long}]),
         "figures.top_sources[0].ip"),
        ("/api/v1/agent/incidents", incident(top_sources=[{"ip": "192.0.2.1"}] * 1001),
         "figures.top_sources"),
        ("/api/v1/agent/incidents", incident(evidence={f"k{i}": i for i in range(65)}),
         "figures.evidence"),
        ("/api/v1/agent/commands/ack", {"acks": [{"id": 1, "ok": False, "error": long}]},
         "acks[0].error"),
        ("/api/v1/agent/metrics",
         {"points": [{"ts": time.time(), "pps": 1, "bps": 1, "protocols": {long: 1.0}}]},
         "points[0].protocols"),
    ):  # fmt: skip
        r = await api.client.post(path, json=body, headers=agent)
        assert assert_error(r, 400)["field"] == field, (path, r.text)
    node = agent["X-Node-UUID"]
    for body, field in (
        ({"allowlist": ["192.0.2.1"] * 10_001}, "allowlist"),
        ({"thresholds": {"floors": {long: 1.0}}}, "thresholds.floors"),
    ):
        url = f"/api/v1/nodes/{node}/agent-config"
        r = await api.client.put(url, json=body, headers=ws.headers)
        assert assert_error(r, 400)["field"] == field
    incidents = (await api.get("/api/v1/incidents", ws)).json()
    assert incidents["total"] == 0
