"""PCAP upload (multipart, size limit, stored with its SHA-256) and download with the
workspace token."""

from __future__ import annotations

import hashlib
import stat
import struct
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from control.agentapi.settings import AgentApiSettings
from tests.api.agentapi.conftest import Agent, deploy, settings_for
from tests.api.conftest import Api, Workspace, assert_error

LIMIT = 4096


@pytest.fixture
def agent_settings(tmp_path: Path) -> AgentApiSettings:
    return settings_for(tmp_path, pcap_max_bytes=LIMIT)


def pcap(packets: int) -> bytes:
    """A real classic pcap: global header + `packets` 60-byte Ethernet frames."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for i in range(packets):
        frame = bytes(range(60))
        out += struct.pack("<IIII", 1_700_000_000 + i, 0, len(frame), len(frame)) + frame
    return out


async def incident(api: Api, agent: Agent) -> str:
    inc = str(uuid.uuid4())
    r = await api.client.post(
        "/api/v1/agent/incidents",
        json={"uuid": inc, "started_at": time.time(), "figures": {"seq": 1, "family": "udp_flood"}},
        headers=agent.headers,
    )
    assert r.status_code == 201, r.text
    return inc


async def upload(api: Api, agent: Agent, inc: str, data: bytes) -> httpx.Response:
    return await api.client.post(
        f"/api/v1/agent/incidents/{inc}/pcap",
        files={"file": ("capture.pcap", data, "application/vnd.tcpdump.pcap")},
        headers=agent.headers,
    )


async def detail_pcap(api: Api, ws: Workspace, inc: str) -> Any:
    r = await api.client.get(f"/api/v1/incidents/{inc}", headers=ws.headers)
    assert r.status_code == 200, r.text
    return r.json()["incident"]["pcap"]


async def test_round_trip(api: Api, ws: Workspace, agent: Agent, tmp_path: Path) -> None:
    inc = await incident(api, agent)
    assert await detail_pcap(api, ws, inc) is None
    data = pcap(20)
    before = time.time()
    r = await upload(api, agent, inc, data)
    assert r.status_code == 200, r.text
    digest = hashlib.sha256(data).hexdigest()
    assert r.json() == {"ok": True, "sha256": digest, "size": len(data)}
    shown = await detail_pcap(api, ws, inc)
    assert shown is not None
    assert (shown["sha256"], shown["size"], shown["url"]) == (
        digest, len(data), f"/api/v1/incidents/{inc}/pcap"
    )  # fmt: skip
    uploaded = datetime.fromisoformat(shown["uploaded_at"].replace("Z", "+00:00")).timestamp()
    assert before - 1 <= uploaded <= time.time() + 1
    r = await api.client.get(shown["url"], headers=ws.headers)
    assert r.status_code == 200 and r.content == data
    stored = tmp_path / "data" / "pcap" / f"{inc}.pcap"
    assert stored.read_bytes() == data
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    r = await api.client.get(f"/api/v1/incidents/{inc}/pcap", headers=ws.headers)
    assert r.status_code == 200, r.text
    assert r.content == data
    assert r.headers["x-content-sha256"] == digest
    assert r.headers["content-type"].startswith("application/vnd.tcpdump.pcap")
    # a re-upload (retry) replaces it
    bigger = pcap(30)
    assert (await upload(api, agent, inc, bigger)).status_code == 200
    r = await api.client.get(f"/api/v1/incidents/{inc}/pcap", headers=ws.headers)
    assert r.content == bigger
    shown = await detail_pcap(api, ws, inc)
    assert (shown["sha256"], shown["size"]) == (hashlib.sha256(bigger).hexdigest(), len(bigger))


async def test_limits_and_bad_uploads(api: Api, agent: Agent) -> None:
    inc = await incident(api, agent)
    too_big = pcap(LIMIT // 76 + 1)
    assert len(too_big) > LIMIT
    assert_error(await upload(api, agent, inc, too_big), 413, str(LIMIT))
    assert_error(await upload(api, agent, inc, b"GIF89a" + b"\0" * 100), 400, "pcap")
    r = await api.client.post(
        f"/api/v1/agent/incidents/{inc}/pcap",
        files={"other": ("x.pcap", pcap(1))},
        headers=agent.headers,
    )
    assert_error(r, 400, "file")
    assert_error(await upload(api, agent, str(uuid.uuid4()), pcap(1)), 404)


async def test_download_is_scoped_to_the_workspace(
    api: Api, ws: Workspace, other: Workspace, agent: Agent
) -> None:
    inc = await incident(api, agent)
    await upload(api, agent, inc, pcap(2))
    assert_error(await api.client.get(f"/api/v1/incidents/{inc}/pcap", headers=other.headers), 404)
    assert_error(await api.client.get(f"/api/v1/incidents/{inc}/pcap"), 401)
    assert_error(await api.client.get(f"/api/v1/incidents/{inc}/pcap", headers=agent.headers), 401)
    # an incident without a pcap
    inc2 = await incident(api, agent)
    assert_error(await api.client.get(f"/api/v1/incidents/{inc2}/pcap", headers=ws.headers), 404)
    # another node of the same workspace cannot upload to this incident
    sibling = await deploy(api, ws, name="edge-2", ip="198.51.100.11")
    assert_error(await upload(api, sibling, inc, pcap(1)), 404)
